"""Highway driving and stereo prediction on generated HDF5 files: the paper's networks, learning,
exact resume, and the stereo read-out against a known disparity."""
import json

import numpy as np
import pytest
import skimage
import torch
from PIL import Image

from dfn.harness.cli import DfnCLI, main
from dfn.layers import CostPrior
from dfn.evaluation.readout import expected_shift
from hdf5_data import moving_texture, stereo_planes
from helpers import ROOT, assert_same_weights


@pytest.mark.parametrize("config,make,parameters", [("highway", moving_texture, 368_122),
                                                     ("stereo", stereo_planes, 464_494)])
def test_paper_networks_from_the_configs(tmp_path, config, make, parameters):
    path = make(tmp_path / "data.h5", size=64)
    cli = DfnCLI(args=["--config", str(ROOT / f"configs/{config}.yaml"), "--data.init_args.path", str(path),
                       "--run_dir", str(tmp_path / "run")], run=False)
    assert not (tmp_path / "run").exists()              # building objects writes no run directory
    assert sum(p.numel() for p in cli.model.parameters()) == parameters
    batch = cli.datamodule._train_batch(torch.Generator().manual_seed(0))
    prediction, filters = cli.model(batch["frames"][:, :cli.model.frames_in], return_filters=True)
    assert prediction.shape == batch["frames"][:, cli.model.frames_in:].shape
    assert filters.shape[2] == (121 if config == "highway" else 13)


@pytest.mark.slow
def test_highway_training_beats_copying_the_last_frame(tmp_path, highway_tiny):
    tiny = highway_tiny(moving_texture(tmp_path / "v.h5", frames=120, velocity=(1, 1)))
    DfnCLI(args=["fit", *tiny, "--run_dir", str(tmp_path / "dfn"), "--trainer.max_steps", "150",
                 "--model.init_args.optimizer.init_args.lr", "3e-3"])
    DfnCLI(args=["test", *tiny, "--run_dir", str(tmp_path / "dfn"),
                 "--ckpt_path", str(tmp_path / "dfn/checkpoints/last.ckpt")])
    DfnCLI(args=["test", *tiny, "--config", str(ROOT / "configs/baselines/copy_last.yaml"),
                 "--run_dir", str(tmp_path / "copy")])
    dfn = json.loads((tmp_path / "dfn/test_results_step0000150.json").read_text())["metrics"]["test/mse"]
    copy = json.loads((tmp_path / "copy/test_results_step0000000.json").read_text())["metrics"]["test/mse"]
    assert dfn < 0.5 * copy, (dfn, copy)


@pytest.mark.slow
def test_stereo_read_out_has_the_sign_and_size_of_the_disparity(tmp_path, stereo_tiny):
    """Planes at 2 px (top half) and 4 px (bottom half): the predicted disparity map says so. The
    only depth cue in the left view is the row, which vertical flips would hide, and the tiny net
    moves its filters off a peaked (identity) start slowly: the paper's start, no augmentation."""
    tiny = stereo_tiny(stereo_planes(tmp_path / "s.h5", frames=60, disparities=(2, 4))) + [
        "--model.init_args.predictor.init_args.start", "paper", "--model.init_args.scheduler", "null",
        "--data.init_args.augment", "null"]
    run = tmp_path / "run"
    DfnCLI(args=["fit", *tiny, "--run_dir", str(run), "--trainer.max_steps", "500",
                 "--model.init_args.optimizer.init_args.lr", "3e-3"])
    DfnCLI(args=["predict", *tiny, "--run_dir", str(run), "--data.init_args.predict_samples", "4",
                 "--ckpt_path", str(run / "checkpoints/last.ckpt")])
    maps = [np.load(p) for p in sorted((run / "predictions").glob("*_disparity.npy"))]
    assert len(maps) == 4 and maps[0].shape == (32, 32) and maps[0].dtype == np.float32
    inner = np.stack(maps)[:, :, 4:-4]                    # away from the zero-padded side borders
    top, bottom = np.median(inner[:, 2:14]), np.median(inner[:, 18:30])
    assert 1.5 < top < 2.5 and 3.5 < bottom < 4.5, (top, bottom)
    assert len(list((run / "predictions").glob("*_disparity.png"))) == 4


@pytest.mark.parametrize("experiment,make", [("highway_tiny", moving_texture), ("stereo_tiny", stereo_planes)])
def test_exact_resume(tmp_path, request, experiment, make):
    tiny = request.getfixturevalue(experiment)(make(tmp_path / "data.h5"))
    DfnCLI(args=["fit", *tiny, "--run_dir", str(tmp_path / "a"), "--trainer.max_steps", "4"])
    DfnCLI(args=["fit", *tiny, "--run_dir", str(tmp_path / "b"), "--trainer.max_steps", "2"])
    DfnCLI(args=["fit", *tiny, "--run_dir", str(tmp_path / "b"), "--trainer.max_steps", "4", "--ckpt_path", "last"])
    assert_same_weights(tmp_path / "a", tmp_path / "b")


def test_colour_frames_need_matching_generator_channels(tmp_path, capsys, highway_tiny):
    """RGB data (grayscale: false): 2 context frames x 3 channels. The mismatch with the
    configured 2 input channels is one clear line; with 6 it trains and draws colour pictures."""
    tiny = highway_tiny(moving_texture(tmp_path / "rgb.h5", channels=3)) + ["--data.init_args.grayscale", "false"]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *tiny, "--run_dir", str(tmp_path / "bad"), "--trainer.max_steps", "1"])
    assert exit_info.value.code == 2 and "set the net's in_channels to 6" in capsys.readouterr().err
    run = tmp_path / "good"
    DfnCLI(args=["fit", *tiny, "--model.init_args.predictor.init_args.net.init_args.in_channels", "6", "--run_dir", str(run), "--trainer.max_steps", "2",
                 "--trainer.val_check_interval", "2"])
    strips = np.asarray(Image.open(run / "figures/val_strips_step0000002.png"))
    assert (strips[..., 0] != strips[..., 1]).any()          # colour, not grey


BINOCULAR = ["--config", str(ROOT / "configs/stereo_binocular.yaml"),       # one-sided 1 x 9 taps, tiny head
             "--model.init_args.predictor.init_args.kernel_size", "[1, 9]",
             "--model.init_args.predictor.init_args.net.init_args.head", "[16, 9]",
             "--model.init_args.predictor.init_args.net.init_args.in_channels", "11"]


COST_PRIOR = ["--model.init_args.predictor.init_args.cost_prior", "100",       # as configs/sizes/binocular_128.yaml
              "--model.init_args.predictor.init_args.start", "uniform"]


def test_a_binocular_generator_sees_the_right_view(tmp_path, stereo_tiny):
    """Binocular: another right view changes the filters (the monocular paper net's do not
    change); the filters still apply to the left view, and the model needs the right view. The
    paper's start: the identity start's first filters depend on no input."""
    tiny = stereo_tiny(stereo_planes(tmp_path / "s.h5")) + ["--model.init_args.predictor.init_args.start", "paper"]
    models = {name: DfnCLI(args=[*tiny, *extra, "--run_dir", str(tmp_path / name)], run=False).model
              for name, extra in (("monocular", []), ("binocular", BINOCULAR))}
    assert models["binocular"].binocular and models["binocular"].filter_window.ox == 0
    left, right = torch.rand(2, 1, 1, 32, 32), torch.rand(2, 1, 1, 32, 32)
    for name, model in models.items():
        _, filters = model(left, return_filters=True, future=right)
        _, other = model(left, return_filters=True, future=torch.rand(2, 1, 1, 32, 32))
        assert torch.equal(filters, other) == (name == "monocular"), name
    with pytest.raises(ValueError, match="sees the right view"):
        models["binocular"](left)


@pytest.mark.parametrize("extra,message", [
    (["--model.init_args.frames_in", "2"], "model.binocular is for stereo"),
    (["--config", str(ROOT / "configs/baselines/copy_last.yaml"), "--model.init_args.binocular", "true"],
     "CopyLastFrame cannot"),
    (["--model.init_args.predictor.init_args.net.init_args.in_channels", "2"], "set the net's in_channels to 11")])
def test_a_binocular_model_that_cannot_see_both_views_is_one_clear_error(tmp_path, stereo_tiny, dfn_main, extra,
                                                                          message):
    tiny = stereo_tiny(stereo_planes(tmp_path / "s.h5"))
    status, err = dfn_main(["fit", *tiny, *BINOCULAR, *extra, "--run_dir", str(tmp_path / "run"),
                            "--trainer.max_steps", "1"])
    assert status == 2 and message in err and err.count("\n") == 1, err


@pytest.mark.slow
def test_a_binocular_net_reads_disparities_the_left_view_cannot_tell(tmp_path, stereo_tiny):
    """Half the pairs swap which half of the view is at 2 px and which at 4 px: the left view
    alone cannot tell them apart (the monocular net's best is the mean, 3 px everywhere), both
    views can. The test's read-out scores the filters against the stored truth."""
    tiny = stereo_tiny(stereo_planes(tmp_path / "s.h5", frames=60, swap_halves=True)) + BINOCULAR + [
        "--data.init_args.augment", "null", "--data.init_args.val_from", "test"]
    run = tmp_path / "run"
    DfnCLI(args=["fit", *tiny, "--run_dir", str(run), "--trainer.max_steps", "300",
                 "--model.init_args.optimizer.init_args.lr", "3e-3"])
    DfnCLI(args=["test", *tiny, "--run_dir", str(run), "--ckpt_path", str(run / "checkpoints/last.ckpt")])
    metrics = json.loads((run / "test_results_step0000300.json").read_text())["metrics"]
    assert metrics["test/disparity_epe"] < 0.5 < metrics["test/disparity_epe_constant"], metrics


def test_the_cost_prior_is_the_box_averaged_costs_scaled():
    """Each tap's logit is ``-scale`` times its cost averaged over the pixels of a 3x3 box that
    lie in the frame (fewer at an edge), written out by hand at a corner and inside."""
    costs = torch.rand(1, 4, 6, 7)
    logits = CostPrior(scale=10.0, size=3)(costs)
    assert torch.allclose(logits[0, :, 0, 0], -10 * costs[0, :, :2, :2].mean((-2, -1)))
    assert torch.allclose(logits[0, :, 3, 4], -10 * costs[0, :, 2:5, 3:6].mean((-2, -1)))
    with pytest.raises(ValueError, match="odd size"):
        CostPrior(scale=10.0, size=4)


def test_with_the_cost_prior_the_first_filters_read_out_the_disparity(tmp_path, stereo_tiny):
    """The start of configs/sizes/binocular_128.yaml (uniform logits plus the cost prior) on a
    textured patch of a real photograph whose right view is its left view moved 5 px: before any
    training the filters' read-out is 5 px away from the edges (the identity start would read 0)."""
    photo = torch.tensor(skimage.data.camera()[450:482, 400:432] / 255.0, dtype=torch.float32)
    left = photo.view(1, 1, 1, 32, 32)
    right = torch.zeros_like(left)
    right[..., :-5] = left[..., 5:]                                # right(x) = left(x + 5)
    model = DfnCLI(args=[*stereo_tiny(stereo_planes(tmp_path / "s.h5")), *BINOCULAR, *COST_PRIOR,
                         "--run_dir", str(tmp_path / "run")], run=False).model
    _, filters = model(left, return_filters=True, future=right)
    shift = expected_shift(filters[:, 0], model.filter_window)[0, 1]          # (32, 32), px
    inside = shift[3:-3, 3:-10]
    assert (inside - 5).abs().median() < 0.1 and (inside - 5).abs().mean() < 0.5, inside


def test_a_cost_prior_without_matching_costs_is_one_clear_error(tmp_path, stereo_tiny, dfn_main):
    status, err = dfn_main(["fit", *stereo_tiny(stereo_planes(tmp_path / "s.h5")), *BINOCULAR, *COST_PRIOR,
                            "--model.init_args.predictor.init_args.matching_costs", "false",
                            "--model.init_args.predictor.init_args.net.init_args.in_channels", "2",
                            "--run_dir", str(tmp_path / "run"), "--trainer.max_steps", "1"])
    assert status == 2 and "set matching_costs true" in err and err.count("\n") == 1, err
