"""Ground-truth files: disparity and optical flow in the formats datasets ship, and resizing them.

Readers return ``float32`` with NaN for unknown pixels:

* disparity ``(H, W)``: PFM (Middlebury; ``inf`` = unknown), 16-bit PNG (KITTI: value / 256,
  0 = unknown), ``.npy`` (``inf`` or NaN = unknown);
* flow ``(H, W, 2)`` as ``(dx, dy)``: ``.flo`` (Middlebury / Sintel; components above 1e9 =
  unknown), ``.npy`` ``(H, W, 2)``.

:func:`resize_field` is the one place where ground truth follows a crop and resize: values scale
with the width (and height) ratio and averaging uses only known pixels.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dfn.errors import ConfigError

FLO_MAGIC = 202021.25


class GroundTruthError(ConfigError):
    """A ground-truth file that cannot be used; the message names the file and the fix."""


def read_pfm(path: Path) -> np.ndarray:
    """A one-channel PFM (``Pf``) -> ``float32 (H, W)``, top row first; ``inf`` -> NaN."""
    with open(path, "rb") as f:
        header = f.readline().strip()
        dims = f.readline().decode("ascii", "replace").split()
        scale_line = f.readline().decode("ascii", "replace").strip()
        if header != b"Pf" or len(dims) != 2 or not all(d.isdigit() for d in dims):
            raise GroundTruthError(f"{path}: not a one-channel PFM (header {header[:8]!r}, size {dims}); "
                                   "disparity PFMs start with 'Pf' and 'WIDTH HEIGHT'")
        try:
            scale = float(scale_line)
        except ValueError:
            raise GroundTruthError(f"{path}: malformed PFM scale line {scale_line!r}") from None
        width, height = int(dims[0]), int(dims[1])
        data = np.frombuffer(f.read(), dtype="<f4" if scale < 0 else ">f4")
    if data.size != width * height:
        raise GroundTruthError(f"{path}: PFM says {width}x{height} but holds {data.size} values; "
                               "the file is truncated")
    values = np.flipud(data.reshape(height, width)).astype(np.float32)
    values[~np.isfinite(values)] = np.nan
    return values


def write_pfm(path: Path, values: np.ndarray) -> None:
    """``float32 (H, W)`` -> little-endian one-channel PFM (NaN written as ``inf``)."""
    data = np.where(np.isnan(values), np.inf, values).astype("<f4")
    with open(path, "wb") as f:
        f.write(b"Pf\n%d %d\n-1.0\n" % (values.shape[1], values.shape[0]))
        f.write(np.flipud(data).tobytes())


def read_flo(path: Path) -> np.ndarray:
    """A Middlebury ``.flo`` -> ``float32 (H, W, 2)``; components above 1e9 -> NaN."""
    raw = Path(path).read_bytes()
    if len(raw) < 12 or np.frombuffer(raw[:4], "<f4")[0] != FLO_MAGIC:
        raise GroundTruthError(f"{path}: not a .flo file (no 'PIEH' tag at the start)")
    width, height = np.frombuffer(raw[4:12], "<i4")
    data = np.frombuffer(raw[12:], "<f4")
    if width < 1 or height < 1 or data.size != 2 * width * height:
        raise GroundTruthError(f"{path}: .flo says {width}x{height} but holds {data.size} values; "
                               "the file is truncated")
    flow = data.reshape(height, width, 2).astype(np.float32)
    flow[np.abs(flow) > 1e9] = np.nan
    return flow


def write_flo(path: Path, flow: np.ndarray) -> None:
    """``float32 (H, W, 2)`` -> ``.flo`` (NaN written as 1e10, "unknown")."""
    with open(path, "wb") as f:
        f.write(np.array([FLO_MAGIC], "<f4").tobytes())
        f.write(np.array([flow.shape[1], flow.shape[0]], "<i4").tobytes())
        f.write(np.where(np.isnan(flow), 1e10, flow).astype("<f4").tobytes())


def read_kitti_png(path: Path) -> np.ndarray:
    """A KITTI disparity PNG (16-bit, value / 256, 0 = unknown) -> ``float32 (H, W)``."""
    from PIL import Image
    with Image.open(path) as image:
        values, mode = np.asarray(image), image.mode
    if values.dtype != np.uint16 and mode not in ("I;16", "I"):
        raise GroundTruthError(f"{path}: a disparity PNG must be 16-bit (KITTI: value / 256, "
                               f"0 = unknown); this one is {mode}")
    values = values.astype(np.float32) / 256.0
    values[values == 0] = np.nan
    return values


def read_flow_npy(path: Path) -> np.ndarray:
    """A ``.npy`` flow field ``(H, W, 2)`` ``(dx, dy)`` -> ``float32``, inf and NaN -> NaN."""
    values = _read_npy(path, 3)
    if values.shape[-1] != 2:
        raise GroundTruthError(f"{path}: flow .npy must be (H, W, 2) (dx, dy), got {values.shape}")
    return values


DISPARITY_READERS = {".pfm": read_pfm, ".png": read_kitti_png, ".npy": lambda path: _read_npy(path, 2)}
FLOW_READERS = {".flo": read_flo, ".npy": read_flow_npy}


def read_disparity(path: Path) -> np.ndarray:
    """One disparity map ``float32 (H, W)``, NaN = unknown, by file suffix."""
    return _read_by_suffix(Path(path), DISPARITY_READERS, "disparity")


def read_flow(path: Path) -> np.ndarray:
    """One flow field ``float32 (H, W, 2)`` ``(dx, dy)``, NaN = unknown, by file suffix."""
    return _read_by_suffix(Path(path), FLOW_READERS, "flow")


def _read_by_suffix(path: Path, readers: dict, kind: str) -> np.ndarray:
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise GroundTruthError(f"{path}: unknown {kind} format {path.suffix!r}; use {', '.join(readers)}")
    return reader(path)


def _read_npy(path: Path, ndim: int) -> np.ndarray:
    """A numeric ``.npy`` of ``ndim`` dimensions as ``float32``, inf and NaN -> NaN."""
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise GroundTruthError(f"{path}: not a readable .npy file ({error})") from error
    if values.ndim != ndim or not np.issubdtype(values.dtype, np.number):
        raise GroundTruthError(f"{path}: expected a numeric array with {ndim} dimensions, got "
                               f"{values.dtype} {values.shape}")
    values = values.astype(np.float32)
    values[~np.isfinite(values)] = np.nan
    return values


DISPARITY_SUFFIXES, FLOW_SUFFIXES = tuple(DISPARITY_READERS), tuple(FLOW_READERS)


def ground_truth_files(path: Path, suffixes: Sequence[str], count: Optional[int]) -> list[Path]:
    """``path`` itself, or the files with ``suffixes`` in the folder ``path`` in natural order of
    their names; there must be ``count`` of them when it is known."""
    path = Path(path)
    if not path.exists():
        raise GroundTruthError(f"{path}: no such file or folder")
    if path.is_file():
        files = [path]
    else:
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in suffixes),
                       key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])
    if count is not None and len(files) != count:
        raise GroundTruthError(f"{path}: {len(files)} ground-truth files ({', '.join(suffixes)}) for "
                               f"{count} frames; give one per frame, in the frames' order")
    return files


def resize_field(values: torch.Tensor, crop: Optional[Sequence[int]], size: Optional[Sequence[int]]
                 ) -> torch.Tensor:
    """Ground truth ``(T, H, W)`` (disparity) or ``(T, H, W, 2)`` (flow ``dx, dy``), NaN =
    unknown, cropped to ``[top, left, height, width]`` and resized to ``[h, w]`` like the frames:
    area averaging over known pixels only when shrinking (a pixel is unknown when none of its area
    is known), bilinear over known pixels when enlarging; ``dx`` (and disparity) scale with
    ``w / width``, ``dy`` with ``h / height``."""
    x = values.float()
    if crop is not None:
        top, left, h, w = crop
        x = x[:, top:top + h, left:left + w]
    if size is None or tuple(x.shape[1:3]) == tuple(size):
        return x.clone()
    channels_last = x.ndim == 4
    x = x.permute(0, 3, 1, 2) if channels_last else x[:, None]          # (T, C, H, W)
    known = torch.isfinite(x).all(1, keepdim=True).float()
    filled = torch.where(known.bool(), x, torch.zeros(()))
    shrink = size[0] <= x.shape[-2] and size[1] <= x.shape[-1]
    mode = {"mode": "area"} if shrink else {"mode": "bilinear", "align_corners": False}
    weight = F.interpolate(known, size=tuple(size), **mode)
    out = F.interpolate(filled * known, size=tuple(size), **mode) / weight.clamp(min=1e-12)
    ratios = torch.tensor([size[1] / x.shape[-1], size[0] / x.shape[-2]][:out.shape[1]]).view(1, -1, 1, 1)
    out = torch.where(weight > 1e-6, out * ratios, torch.full((), float("nan")))
    return out.permute(0, 2, 3, 1) if channels_last else out[:, 0]
