"""HDF5 frame files: schema checks, split, transforms, lazy per-worker reading, clear errors."""
import pickle
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from datamodules import StereoHDF5DataModule, VideoHDF5DataModule
from dfn.errors import ConfigError
from datamodules.frame_file import LUMA, FrameFile, FrameFileError, FrameTransform, split_ranges
from hdf5_data import moving_texture, stereo_planes, write_frames
from helpers import ROOT


def test_paper_split_and_segments_stay_inside_it(tmp_path):
    data = VideoHDF5DataModule(str(moving_texture(tmp_path / "v.h5", frames=60)), size=[32, 32],
                               batch_size=4, seed=0)
    # 48 training frames: the last 6 (one segment, more than 10 %) validate, 42 train
    assert (data.train_range, data.test_range) == (range(0, 42), range(48, 60))
    assert data.test_starts == [48, 54]                      # in order, non-overlapping 6-frame segments
    assert data.val_starts == [42]
    for index in range(20):
        batch = data._train_batch(torch.Generator().manual_seed(index))
        assert batch["frames"].shape == (4, 6, 1, 32, 32)
        assert (batch["index"] + 6 <= 42).all()             # no training segment reaches validation
    sample = data.test_sets[0][1]
    with h5py.File(data.source.path) as f:
        torch.testing.assert_close(sample["frames"][:, 0], torch.from_numpy(f["frames"][54:60, ..., 0]) / 255.0)


def test_validation_comes_from_the_training_frames_or_on_request_the_test_walk(tmp_path):
    path = str(stereo_planes(tmp_path / "s.h5", frames=40))
    held_out = StereoHDF5DataModule(path, size=[16, 16], val_fraction=0.25)
    assert held_out.train_range == range(0, 24) and held_out.test_range == range(32, 40)
    assert held_out.val_starts == list(range(24, 32))       # the end of the training frames, held out
    paper = StereoHDF5DataModule(path, size=[16, 16], val_from="test", val_samples=3)
    assert paper.train_range == range(0, 32) and paper.val_starts == [32, 36, 39]
    single = StereoHDF5DataModule(path, size=[16, 16], test_on_training_frames=True)
    assert single.train_range == range(40) and single.val_starts == list(range(40))
    with pytest.raises(ConfigError, match="data.val_from must be 'training' or 'test', got 'train'"):
        StereoHDF5DataModule(path, val_from="train")
    with pytest.raises(ConfigError, match=r"data.val_fraction must be in \(0, 1\), got 1.5"):
        StereoHDF5DataModule(path, val_fraction=1.5)
    with pytest.raises(FrameFileError, match="too short to hold out .* set data.val_from to test"):
        VideoHDF5DataModule(str(moving_texture(tmp_path / "v.h5", frames=12)), size=[16, 16],
                            train_frames=[0, 6], test_frames=[6, 12], frames_in=2, frames_out=2)


def test_explicit_split_ranges():
    assert split_ranges(100, train_frames=[20, 100], test_frames=[0, 20]) == (range(20, 100), range(0, 20))
    with pytest.raises(ValueError, match="overlap"):
        split_ranges(100, train_frames=[0, 60], test_frames=[50, 100])
    with pytest.raises(ValueError, match="both"):
        split_ranges(100, train_frames=[0, 60])


def test_transform_crops_resizes_and_takes_luma():
    frames = np.random.default_rng(0).integers(0, 256, (2, 8, 12, 3), dtype=np.uint8)
    out = FrameTransform(crop=[2, 4, 4, 8], size=[2, 4], grayscale=True)(frames)
    luma = (torch.from_numpy(frames[:, 2:6, 4:12]).float() / 255 * torch.tensor(LUMA)).sum(-1)
    expected = torch.nn.functional.avg_pool2d(luma[:, None], 2)          # area resize 4x8 -> 2x4
    torch.testing.assert_close(out, expected)
    assert FrameTransform(size=None, grayscale=False)(frames).shape == (2, 3, 8, 12)


def test_workers_open_their_own_handle_and_read_the_same(tmp_path):
    path = stereo_planes(tmp_path / "s.h5", frames=20)
    data = StereoHDF5DataModule(str(path), size=None, batch_size=3)
    assert data.source.handle.filename == str(path) and data.source.handle["left"].shape[0] == 20
    copy = pickle.loads(pickle.dumps(data.source))            # what a worker receives: its own handle
    assert copy.handle is not data.source.handle and copy.handle.filename == str(path)
    serial = [b["frames"] for b in DataLoader(data.test_sets[0], batch_size=2)]
    parallel = [b["frames"] for b in DataLoader(data.test_sets[0], batch_size=2, num_workers=2)]
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel))
    assert serial[0].shape == (2, 2, 1, 32, 32)              # (B, left + right, C, H, W)


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str, type]]:
    """name -> (file, expected words in the error, DataModule)."""
    good = moving_texture(tmp_path / "good.h5", frames=30)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)
    frames = np.zeros((30, 8, 8, 1), np.uint8)
    return {
        "missing file": (tmp_path / "nope.h5", "no such file", VideoHDF5DataModule),
        "missing dataset": (write_frames(tmp_path / "other.h5", images=frames), "no dataset 'frames'",
                            VideoHDF5DataModule),
        "wrong dtype": (write_frames(tmp_path / "float.h5", frames=frames.astype(np.float32)),
                        "float32, expected uint8", VideoHDF5DataModule),
        "wrong ndim": (write_frames(tmp_path / "ndim.h5", frames=frames[..., 0]), "expected (N, H, W, C)",
                       VideoHDF5DataModule),
        "too few frames": (write_frames(tmp_path / "short.h5", frames=frames[:8]), "fewer than one sample of 6",
                           VideoHDF5DataModule),
        "stereo lengths": (write_frames(tmp_path / "lr.h5", left=frames, right=frames[:20]),
                           "left (30, 8, 8, 1), right (20, 8, 8, 1) differ", StereoHDF5DataModule),
        "truncated": (truncated, "truncated or corrupt", VideoHDF5DataModule),
        "corrupt": (corrupt, "truncated or corrupt", VideoHDF5DataModule),
    }


@pytest.mark.parametrize("case", ["missing file", "missing dataset", "wrong dtype", "wrong ndim",
                                  "too few frames", "stereo lengths", "truncated", "corrupt"])
def test_bad_files_give_one_clear_error_naming_the_file(tmp_path, case):
    path, words, module = bad_files(tmp_path)[case]
    with pytest.raises(FrameFileError) as error:
        module(str(path), size=None)
    assert words in str(error.value) and str(path) in str(error.value)


def test_a_file_cut_short_before_a_worker_opens_it_is_named(tmp_path):
    path = moving_texture(tmp_path / "v.h5", frames=30)
    source = FrameFile(path, ["frames"], FrameTransform(size=None))
    in_worker = pickle.loads(pickle.dumps(source))            # what a DataLoader worker receives
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    with pytest.raises(FrameFileError, match="truncated or corrupt"):
        in_worker.read(0, 6)


def test_the_cli_reports_a_bad_file_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "dfn", "fit", "--config", str(ROOT / "configs/highway.yaml"),
                           "--data.init_args.path", str(tmp_path / "absent.h5"), "--run_dir", str(tmp_path / "run"),
                           "--trainer.logger", "false"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("dfn: error:") and "absent.h5: no such file" in last and "pack" in last
