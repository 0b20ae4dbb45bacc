"""Steerable data: analytic filters, batch contract, seeded reproducible streams."""
import math

import pytest
import torch

from datamodules import SteerableDataModule
from datamodules.stream import ResumableEpochSampler, SeededBatches
from dfn.evaluation.analytic_steerable import gaussian_derivatives, steerable_filters


def test_steerable_filter_is_the_rotated_gaussian_derivative():
    gx, gy = gaussian_derivatives(9, 1.0)
    f = steerable_filters(torch.tensor([0.0, math.pi / 2, math.pi]), 9, 1.0)
    torch.testing.assert_close(f[0], gx)
    torch.testing.assert_close(f[1], gy, atol=1e-7, rtol=0)
    torch.testing.assert_close(f[2], -gx, atol=1e-7, rtol=0)
    assert gx[4, 0] > 0 > gx[4, 8]                      # -x * G: positive left, negative right
    assert gy.t().allclose(gx)                          # G_y is G_x mirrored about the diagonal


def test_batch_contract_and_target():
    data = SteerableDataModule(image_size=16, batch_size=5, seed=3)
    data.setup("fit")
    batch = SeededBatches(data._train_batch, seed=3)[0]
    assert batch["image"].shape == (5, 1, 16, 16) and batch["angle"].shape == (5,)
    assert batch["target"].shape == (5, 1, 16, 16) and batch["filter"].shape == (5, 9, 9)
    assert ((batch["angle"] >= 0) & (batch["angle"] < 2 * math.pi)).all()
    # interior pixel by hand: cross-correlation with the analytic filter
    img, f = batch["image"][0, 0], batch["filter"][0]
    by_hand = (img[4:13, 4:13] * f).sum()
    torch.testing.assert_close(batch["target"][0, 0, 8, 8], by_hand)


def test_stream_is_a_function_of_seed_rank_and_index():
    data = SteerableDataModule(image_size=8, batch_size=2)
    a, b = SeededBatches(data._train_batch, seed=1), SeededBatches(data._train_batch, seed=1)
    assert torch.equal(a[7]["image"], b[7]["image"])
    assert not torch.equal(a[7]["image"], a[8]["image"])
    other_rank = SeededBatches(data._train_batch, seed=1, rank=1)
    assert not torch.equal(a[7]["image"], other_rank[7]["image"])
    assert not torch.equal(a[7]["image"], SeededBatches(data._train_batch, seed=2)[7]["image"])


def test_sampler_resumes_mid_epoch_and_follows_epochs():
    position = {"now": 0}
    sampler = ResumableEpochSampler(lambda: position["now"], batches_per_epoch=4)
    assert list(sampler) == [0, 1, 2, 3]
    position["now"] = 6                                 # resumed after 6 batches: rest of epoch 1
    assert list(sampler) == [6, 7]
    position["now"] = 8
    assert list(sampler) == [8, 9, 10, 11]


def test_held_out_angles_and_fixed_validation_set():
    data = SteerableDataModule(image_size=8, val_angles=36, val_images_per_angle=2, seed=5)
    data.setup("validate")
    angles = data.held_out_angles() * 180 / math.pi
    torch.testing.assert_close(angles[:2], torch.tensor([5.0, 15.0]))
    assert data.val_batch["angle"].shape == (72,)
    again = SteerableDataModule(image_size=8, val_angles=36, val_images_per_angle=2, seed=5)
    again.setup("validate")
    assert torch.equal(data.val_batch["image"], again.val_batch["image"])


@pytest.mark.parametrize("kwargs,match", [
    (dict(filter_size=8), "odd"), (dict(batch_size=0), "batch_size"), (dict(sigma=0.0), "sigma")])
def test_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SteerableDataModule(**kwargs)


def test_worker_count_does_not_change_the_stream():
    """Workers regenerate the batches the sampler hands them: 0 and 2 workers give the same data."""
    data = SteerableDataModule(image_size=8, batch_size=3, batches_per_epoch=6, seed=11)
    sampler = ResumableEpochSampler(lambda: 0, 6)
    loaders = [torch.utils.data.DataLoader(SeededBatches(data._train_batch, 11), batch_size=None,
                                           sampler=sampler, num_workers=n) for n in (0, 2)]
    serial, parallel = ([b["image"] for b in loader] for loader in loaders)
    assert len(serial) == 6 and all(torch.equal(a, b) for a, b in zip(serial, parallel))
