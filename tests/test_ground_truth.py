"""Ground truth: the file formats, resizing with the frames, and `pack --disparity/--flow/--size`."""
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from dfn.footage.ground_truth import (GroundTruthError, read_disparity, read_flo, read_flow, read_pfm, resize_field,
                              write_flo, write_pfm)



def test_pfm_and_flo_round_trip_with_unknown_pixels(tmp_path):
    disparity = np.arange(12, dtype=np.float32).reshape(3, 4)
    disparity[0, 1] = np.nan
    write_pfm(tmp_path / "d.pfm", disparity)
    back = read_pfm(tmp_path / "d.pfm")
    np.testing.assert_array_equal(np.isnan(back), np.isnan(disparity))
    np.testing.assert_array_equal(back[~np.isnan(back)], disparity[~np.isnan(disparity)])
    flow = np.random.default_rng(0).standard_normal((3, 5, 2)).astype(np.float32)
    flow[2, 4] = np.nan
    write_flo(tmp_path / "f.flo", flow)
    back = read_flo(tmp_path / "f.flo")
    assert back.shape == (3, 5, 2) and np.isnan(back[2, 4]).all()
    np.testing.assert_array_equal(back[:2], flow[:2])


def test_pfm_rows_are_stored_bottom_up_and_big_endian_is_read(tmp_path):
    """A big-endian PFM written by hand (scale +1): its first stored row is the image's last."""
    rows = np.array([[1, 2], [3, 4]], dtype=">f4")                  # stored bottom row first
    (tmp_path / "b.pfm").write_bytes(b"Pf\n2 2\n1.0\n" + rows.tobytes())
    np.testing.assert_array_equal(read_pfm(tmp_path / "b.pfm"), [[3, 4], [1, 2]])


def test_kitti_png_and_npy_disparity(tmp_path):
    raw = np.array([[0, 256], [512, 1000]], dtype=np.uint16)
    Image.fromarray(raw).save(tmp_path / "k.png")
    values = read_disparity(tmp_path / "k.png")
    assert np.isnan(values[0, 0]) and values[0, 1] == 1.0 and values[1, 1] == pytest.approx(1000 / 256)
    np.save(tmp_path / "d.npy", np.array([[1.0, np.inf], [2.0, 3.0]]))
    assert np.isnan(read_disparity(tmp_path / "d.npy")[0, 1])
    np.save(tmp_path / "f.npy", np.zeros((2, 2, 3)))
    with pytest.raises(GroundTruthError, match="f.npy.*\\(H, W, 2\\)"):
        read_flow(tmp_path / "f.npy")


@pytest.mark.parametrize("content,match", [(b"PF\n2 2\n-1.0\n" + bytes(48), "one-channel PFM"),
                                           (b"Pf\n2 2\n-1.0\n" + bytes(8), "truncated"),
                                           (b"Pf\n2 x\n-1.0\n", "one-channel PFM")])
def test_malformed_pfm_names_the_file(tmp_path, content, match):
    (tmp_path / "bad.pfm").write_bytes(content)
    with pytest.raises(GroundTruthError, match=f"bad.pfm.*{match}"):
        read_pfm(tmp_path / "bad.pfm")


def test_malformed_flo_names_the_file(tmp_path):
    (tmp_path / "bad.flo").write_bytes(b"XXXX" + bytes(20))
    with pytest.raises(GroundTruthError, match="bad.flo: not a .flo"):
        read_flo(tmp_path / "bad.flo")
    write_flo(tmp_path / "short.flo", np.zeros((4, 4, 2), np.float32))
    (tmp_path / "short.flo").write_bytes((tmp_path / "short.flo").read_bytes()[:-8])
    with pytest.raises(GroundTruthError, match="short.flo.*truncated"):
        read_flo(tmp_path / "short.flo")


def test_resize_scales_values_and_averages_known_pixels_only():
    disparity = torch.full((1, 4, 8), 6.0)
    disparity[0, 0, 0] = float("nan")
    disparity[0, 0, 1] = 10.0
    small = resize_field(disparity, None, (2, 4))                   # width halves: values halve
    assert small[0, 0, 0] == pytest.approx(0.5 * (6 * 2 + 10) / 3)  # NaN left out of the average
    assert small[0, 1, 3] == pytest.approx(3.0)
    unknown = torch.full((1, 4, 4), float("nan"))
    unknown[0, 2:, 2:] = 1.0
    assert torch.isnan(resize_field(unknown, None, (2, 2))[0, 0, 0])      # nothing known there
    flow = torch.ones(1, 4, 8, 2)
    out = resize_field(flow, [0, 0, 4, 4], (8, 2))                  # crop 4x4, then 8 tall, 2 wide
    assert out.shape == (1, 8, 2, 2)
    assert out[0, 3, 1].tolist() == pytest.approx([0.5, 2.0])       # dx * 2/4, dy * 8/4


def write_pair_folders(root: Path, pairs: int = 3, height: int = 30, width: int = 40) -> Path:
    rng = np.random.default_rng(0)
    for name in ("left", "right", "disp"):
        (root / name).mkdir(parents=True)
    for i in range(pairs):
        for name in ("left", "right"):
            Image.fromarray(rng.integers(0, 255, (height, width), dtype=np.uint8)).save(root / name / f"{i}.png")
        write_pfm(root / "disp" / f"{i}.pfm", np.full((height, width), 4.0 + i, np.float32))
    return root


def test_pack_keeps_the_aspect_ratio_and_scales_disparity(tmp_path, dfn_main):
    root = write_pair_folders(tmp_path)
    out = tmp_path / "s.h5"
    status, err = dfn_main(["pack", str(root / "left"), str(root / "right"), str(out), "--size", "10", "10",
                       "--disparity", str(root / "disp"), "--no-progress"])
    assert status == 0, err
    with h5py.File(out) as f:
        assert list(f.attrs["crop"]) == [0, 5, 30, 30]             # 40 wide -> the centre 30
        assert f.attrs["resize"].startswith("centre crop")
        assert f["disparity"].shape == (3, 10, 10)
        np.testing.assert_allclose(f["disparity"][2], (4 + 2) * 10 / 30, rtol=1e-6)
    stretched = tmp_path / "st.h5"
    assert dfn_main(["pack", str(root / "left"), str(root / "right"), str(stretched), "--size", "10", "10",
                "--stretch", "--disparity", str(root / "disp"), "--no-progress"])[0] == 0
    with h5py.File(stretched) as f:
        assert f.attrs["resize"] == "stretch" and "crop" not in f.attrs
        np.testing.assert_allclose(f["disparity"][0], 4 * 10 / 40, rtol=1e-6)


def test_pack_flow_for_a_video_folder(tmp_path, dfn_main):
    (tmp_path / "frames").mkdir()
    (tmp_path / "flow").mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(tmp_path / "frames" / f"{i}.png")
        write_flo(tmp_path / "flow" / f"{i}.flo", np.full((8, 8, 2), [2.0, -1.0], np.float32))
    out = tmp_path / "v.h5"
    status, err = dfn_main(["pack", str(tmp_path / "frames"), str(out), "--size", "4", "4",
                       "--flow", str(tmp_path / "flow"), "--no-progress"])
    assert status == 0, err
    with h5py.File(out) as f:
        assert f["flow"].shape == (4, 4, 4, 2)
        np.testing.assert_allclose(f["flow"][3], np.broadcast_to([1.0, -0.5], (4, 4, 2)))


@pytest.mark.parametrize("fault,match", [("shape", "ground truth must be at the frames' resolution"),
                                         ("unknown", "every disparity value is unknown"),
                                         ("count", "2 ground-truth files .* for 3 frames"),
                                         ("header", "not a one-channel PFM")])
def test_pack_refuses_bad_ground_truth_naming_the_file(tmp_path, dfn_main, fault, match):
    root = write_pair_folders(tmp_path)
    bad = root / "disp" / "1.pfm"
    if fault == "shape":
        write_pfm(bad, np.ones((10, 10), np.float32))
    elif fault == "unknown":
        for file in (root / "disp").iterdir():
            write_pfm(file, np.full((30, 40), np.nan, np.float32))
    elif fault == "count":
        bad.unlink()
    else:
        bad.write_bytes(b"P5\n")
    out = tmp_path / "s.h5"
    status, err = dfn_main(["pack", str(root / "left"), str(root / "right"), str(out),
                       "--disparity", str(root / "disp"), "--no-progress"])
    assert status == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("dfn: error: ") and "disp" in line
    assert re.search(match, line), line
    assert not out.exists() and not list(tmp_path.glob(".s.h5*"))     # nothing half-written left
