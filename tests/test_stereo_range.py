"""The disparity range estimated by block matching, on pairs generated from real photographs:
its accuracy, its sign, where pack records it and how training reads it."""
import h5py
import numpy as np
import pytest

from datamodules.hdf5_frames import StereoHDF5DataModule
from dfn.footage.scenes import SceneSettings, photographs, stereo_pair
from dfn.harness.cli import DfnCLI, main
from dfn.footage.stereo_range import disparity_range


def _pairs(count: int, size: int, max_disparity: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` generated ``layers`` pairs as uint8 ``(N, size, size)`` and their disparity."""
    rng, photos = np.random.default_rng(0), photographs()
    settings = SceneSettings(size=(size, size), max_disparity=max_disparity)
    left, right, truth = zip(*(stereo_pair(photos, rng, settings) for _ in range(count)))
    as_bytes = lambda views: (np.stack(views) * 255).round().astype(np.uint8)  # noqa: E731
    return as_bytes(left), as_bytes(right), np.stack(truth)


@pytest.mark.parametrize("size,max_disparity", [(64, 5), (64, 12), (128, 24), (256, 40)])
def test_the_estimate_brackets_the_true_disparities(size, max_disparity):
    left, right, truth = _pairs(6, size, max_disparity)
    low, high = disparity_range(left, right)
    true_low, true_high = np.percentile(truth, [1, 99])
    tolerance = max(1.5, 0.1 * true_high)
    assert abs(high - true_high) < tolerance and abs(low - true_low) < tolerance, (low, high, true_low, true_high)


def test_swapped_views_read_negative_and_flat_views_read_nothing():
    left, right, truth = _pairs(4, 64, 10)
    low, high = disparity_range(right, left)                 # the views swapped: the sign flips
    assert high < 1 and low < -0.6 * truth.max()
    flat = np.full_like(left, 128)
    assert disparity_range(flat, flat) is None


def test_pack_records_the_range_and_training_warns_beyond_the_filters_reach(tmp_path, capsys):
    """Pairs rendered at 96x128 with disparities up to 16 px, packed to 64x64 (crop 96x96, so
    x 2/3: about 10.7 px stored), beyond the paper's centred 1x13 filters (6 px); a DataModule
    working at half the stored width reads half the range."""
    main(["scenes", "stereo", str(tmp_path / "scenes"), "--count", "4", "--size", "96", "128",
          "--max-disparity", "16"])
    path = tmp_path / "s.h5"
    main(["pack", str(tmp_path / "scenes/left"), str(tmp_path / "scenes/right"), str(path), "--size", "64", "64",
          "--disparity", str(tmp_path / "scenes/disparity"), "--no-progress"])
    assert "estimated disparity:" in capsys.readouterr().out
    with h5py.File(path) as f:
        stored, truth = f.attrs["disparity_range"], f["disparity"][:]
    assert abs(stored[1] - np.percentile(truth, 99)) < 1.5                   # both in px at the stored 64
    half = StereoHDF5DataModule(str(path), size=[32, 32], test_on_training_frames=True)
    assert half.disparity_range == pytest.approx((stored[0] / 2, stored[1] / 2))
    tiny = ["--config", "configs/stereo.yaml", "--data.init_args.path", str(path),
            "--data.init_args.test_on_training_frames", "true", "--trainer.max_steps", "1",
            "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--run_dir", str(tmp_path / "run")]
    with pytest.warns(UserWarning, match=r"beyond the filters' offsets \(-6 to 6 px\)"):
        DfnCLI(args=["fit", *tiny])
