"""``python -m dfn pack``: videos, image folders and stereo pairs into the HDF5 schema; no partial files."""
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from datamodules import VideoHDF5DataModule
from dfn.footage.pack import FrameSource, pack


def image_folder(folder: Path, n: int, shape=(24, 32, 3), seed: int = 0) -> list[np.ndarray]:
    folder.mkdir(parents=True)
    frames = [np.random.default_rng(seed + i).integers(0, 256, shape, dtype=np.uint8) for i in range(n)]
    for i, frame in enumerate(frames):                  # 2.png sorts before 10.png
        Image.fromarray(frame.squeeze()).save(folder / f"{i}.png")
    return frames



def test_folder_in_natural_order_with_attributes(tmp_path, dfn_main):
    frames = image_folder(tmp_path / "frames", 12)
    status, _ = dfn_main(["pack", str(tmp_path / "frames"), str(tmp_path / "v.h5"), "--fps", "25", "--no-progress"])
    assert status == 0
    with h5py.File(tmp_path / "v.h5") as f:
        assert f["frames"].shape == (12, 24, 32, 3) and f["frames"].dtype == np.uint8
        assert f["frames"].chunks == (1, 24, 32, 3)
        assert np.array_equal(f["frames"][10], frames[10]) and f.attrs["fps"] == 25.0
        assert str((tmp_path / "frames").resolve()) in f.attrs["source"]
    data = VideoHDF5DataModule(str(tmp_path / "v.h5"), frames_in=1, frames_out=1, size=None, grayscale=False)
    assert data.test_starts == [10]                                     # 12 frames: 10 train, 2 test
    expected = np.stack(frames[10:12]).transpose(0, 3, 1, 2) / 255.0
    assert np.allclose(data.test_sets[0][0]["frames"].numpy(), expected)


def test_video_file_resized_to_grayscale(tmp_path):
    av = pytest.importorskip("av")                       # the [video] extra; CI installs it
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(15):
            frame = np.full((48, 64, 3), 10 + 15 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    out = pack([FrameSource(path, size=(24, 32), grayscale=True)], tmp_path / "v.h5", ["frames"], progress=False)
    with h5py.File(out) as f:
        assert f["frames"].shape == (15, 24, 32, 1) and f.attrs["fps"] == 10.0
        means = f["frames"][:].reshape(15, -1).mean(1)
    assert np.all(np.abs(means - (10 + 15 * np.arange(15))) < 4)     # the frames, in order


def test_stereo_pair_and_mismatched_lengths_leave_nothing(tmp_path, dfn_main):
    left, right = image_folder(tmp_path / "left", 6), image_folder(tmp_path / "right", 6, seed=100)
    status, _ = dfn_main(["pack", str(tmp_path / "left"), str(tmp_path / "right"), str(tmp_path / "s.h5"),
                     "--no-progress"])
    assert status == 0
    with h5py.File(tmp_path / "s.h5") as f:
        assert np.array_equal(f["left"][5], left[5]) and np.array_equal(f["right"][5], right[5])
    (tmp_path / "right" / "5.png").unlink()
    status, err = dfn_main(["pack", str(tmp_path / "left"), str(tmp_path / "right"), str(tmp_path / "bad.h5")])
    assert status == 2 and "differ in length" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["left", "right", "s.h5"]


def test_refuses_to_overwrite_and_a_failure_midway_leaves_no_file(tmp_path, dfn_main):
    image_folder(tmp_path / "frames", 8)
    out = tmp_path / "v.h5"
    assert dfn_main(["pack", str(tmp_path / "frames"), str(out), "--no-progress"])[0] == 0
    before = out.read_bytes()
    status, err = dfn_main(["pack", str(tmp_path / "frames"), str(out)])
    assert status == 2 and "already exists" in err and "--overwrite" in err and out.read_bytes() == before
    (tmp_path / "frames" / "6.png").write_bytes(b"not a png")       # decoding fails at frame 6
    status, err = dfn_main(["pack", str(tmp_path / "frames"), str(out), "--overwrite", "--no-progress"])
    assert status == 2 and "6.png: cannot read this image" in err
    assert out.read_bytes() == before                                 # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "v.h5"]   # no temporary left


@pytest.mark.parametrize("args,words", [(["missing_dir"], "no such file or folder"),
                                        (["empty"], "no images"),
                                        (["notvideo.txt"], "not a video")])
def test_bad_sources_are_named(tmp_path, dfn_main, args, words):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notvideo.txt").write_text("hello")
    status, err = dfn_main(["pack", *(str(tmp_path / a) for a in args), str(tmp_path / "o.h5")])
    assert status == 2 and words in err and not (tmp_path / "o.h5").exists()


@pytest.mark.parametrize("workers", [0, 1])
def test_a_corrupted_chunk_is_named_by_file_and_frame(tmp_path, dfn_main, workers):
    """pack writes Fletcher-32 checksums: bytes overwritten in the middle of frame 3's chunk are
    caught when it is read (lzf alone decodes them into wrong pixels without a word)."""
    image_folder(tmp_path / "frames", 16, shape=(32, 32, 1))
    packed = tmp_path / "v.h5"
    assert dfn_main(["pack", str(tmp_path / "frames"), str(packed), "--no-progress"])[0] == 0
    with h5py.File(packed) as f:
        assert f["frames"].fletcher32
        chunk = f["frames"].id.get_chunk_info(3)
    with open(packed, "r+b") as f:
        f.seek(chunk.byte_offset + chunk.size // 2)
        f.write(b"\x00\xff" * 8)
    config = ["--config", "configs/highway.yaml", "--data.init_args.path", str(packed),
              "--data.init_args.size", "[32, 32]", "--data.init_args.num_workers", str(workers),
              "--data.init_args.test_frames", "[0, 8]", "--data.init_args.train_frames", "[8, 16]",
              "--data.init_args.val_from", "test"]
    status, err = dfn_main(["test", *config, "--run_dir", str(tmp_path / "run"),
                       "--trainer.logger", "false", "--trainer.enable_progress_bar", "false"])
    assert status == 2
    assert err.strip().splitlines()[-1].startswith(f"dfn: error: {packed}: frame 3 of 'frames' cannot be read")
