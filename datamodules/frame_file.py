"""Frames streamed from an HDF5 file (dfn's schema), opened lazily in each process.

Schema (written by ``python -m dfn pack``; any tool may write it):

* video: dataset ``frames``, ``uint8 (N, H, W, C)`` with ``C`` 1 or 3, chunked one frame per
  chunk ``(1, H, W, C)``;
* stereo: datasets ``left`` and ``right`` of that same form and the same shape, frame ``i`` of
  both taken at the same time;
* optional ground truth, ``float32`` with NaN = unknown, in pixels at the stored resolution:
  stereo ``disparity (N, H, W)`` on the left view's grid (the right view shows at ``x`` what the
  left shows at ``x + disparity``); video ``flow (N, H, W, 2)`` as ``(dx, dy)``, the motion of
  each pixel of frame ``i`` to frame ``i + 1``;
* attributes on the file: ``source`` (what it was packed from), ``fps``, and how frames were
  resized (``resize``, ``crop``).

:class:`FrameFile` checks the schema once, reads only the frames asked for (one contiguous slice
per sample) and applies a :class:`FrameTransform`. Its h5py handle is opened on first use in
each process, so DataLoader workers never share one (h5py handles do not survive a fork).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dfn.errors import ConfigError
from dfn.footage.ground_truth import resize_field

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's "L" mode


class FrameFileError(ConfigError):
    """An HDF5 frame file that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class FrameTransform:
    """``uint8 (T, H, W, C)`` -> ``float (T, C', h, w)`` in [0, 1]: crop, resize, grayscale.

    Args:
        crop: ``[top, left, height, width]`` in stored pixels, or ``None`` for the whole frame.
        size: ``[height, width]`` after resizing (area averaging when shrinking, bilinear when
            enlarging), or ``None`` to keep the cropped size.
        grayscale: luma (BT.601) as one channel; RGB files become 1-channel.
    """

    crop: Optional[Sequence[int]] = None
    size: Optional[Sequence[int]] = (64, 64)
    grayscale: bool = True

    def __post_init__(self) -> None:
        if self.crop is not None and (len(self.crop) != 4 or min(self.crop[2:]) < 1 or min(self.crop[:2]) < 0):
            raise ConfigError(f"crop must be [top, left, height, width] with positive height/width, got {self.crop}")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise ConfigError(f"size must be [height, width] >= 1, got {self.size}")

    def check(self, frame_shape: Sequence[int], path: Path) -> None:
        """Fail early if the crop does not fit frames of ``(H, W, C)``."""
        H, W = frame_shape[:2]
        if self.crop is not None:
            top, left, h, w = self.crop
            if top + h > H or left + w > W:
                raise FrameFileError(f"{path}: crop {list(self.crop)} reaches outside the stored "
                                     f"{H}x{W} frames; choose a crop inside them")

    def region(self, frame_shape: Sequence[int]) -> tuple[int, int, int, int]:
        """``[top, left, height, width]`` of stored pixels in use: the crop, or the whole frame."""
        return tuple(self.crop) if self.crop is not None else (0, 0, frame_shape[0], frame_shape[1])

    def __call__(self, frames: np.ndarray, crop: Optional[Sequence[int]] = None) -> Tensor:
        """``frames uint8 (T, H, W, C)`` -> ``(T, C', h, w)``; ``crop`` replaces the configured one
        (augmentation's random crops)."""
        crop = self.crop if crop is None else crop
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
        if crop is not None:
            top, left, h, w = crop
            x = x[:, :, top:top + h, left:left + w]
        if self.grayscale and x.shape[1] == 3:
            x = (x * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
        if self.size is not None and tuple(x.shape[-2:]) != tuple(self.size):
            shrink = self.size[0] <= x.shape[-2] and self.size[1] <= x.shape[-1]
            x = F.interpolate(x, size=tuple(self.size), mode="area" if shrink else "bilinear",
                              **({} if shrink else {"align_corners": False}))
        return x.clamp_(0, 1)

    def truth(self, values: np.ndarray) -> Tensor:
        """Ground truth ``(T, H, W)`` or ``(T, H, W, 2)`` through the same crop and resize as the
        frames (values rescaled, :func:`dfn.footage.ground_truth.resize_field`)."""
        return resize_field(torch.from_numpy(np.asarray(values)), self.crop, self.size)


GROUND_TRUTH = {("frames",): "flow", ("left", "right"): "disparity"}


class FrameFile:
    """Datasets ``names`` of one HDF5 file, checked against the schema; ``read(start, stop)``, and
    ``read_truth(start, stop)`` when the file has ground truth (``truth`` names it, else ``None``).

    Args:
        path: the ``.h5`` file.
        names: ``("frames",)`` for video, ``("left", "right")`` for stereo.
        transform: applied to every read.
    """

    def __init__(self, path: str | Path, names: Sequence[str], transform: FrameTransform) -> None:
        self.path, self.names, self.transform = Path(path), tuple(names), transform
        self._handle: Optional[h5py.File] = None
        self._pid: Optional[int] = None
        with self._open() as f:
            shapes = [self._check_dataset(f, name) for name in self.names]
            self.attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
            name = GROUND_TRUTH.get(self.names)
            self.truth: Optional[str] = name if name in f else None
            if self.truth is not None:
                self._check_truth(f[self.truth], shapes[0])
        if len(set(shapes)) != 1:
            described = ", ".join(f"{n} {s}" for n, s in zip(self.names, shapes))
            raise FrameFileError(f"{self.path}: {described} differ; stereo views must hold the same "
                                 "number of frames of the same size (repack the pair with `python -m dfn pack`)")
        self.length, self.frame_shape = shapes[0][0], shapes[0][1:]
        transform.check(self.frame_shape, self.path)

    def _open(self) -> h5py.File:
        if not self.path.is_file():
            raise FrameFileError(f"{self.path}: no such file. Point data.init_args.path at an HDF5 "
                                 "file made by `python -m dfn pack` (see README, 'HDF5 data').")
        try:
            return h5py.File(self.path, "r")
        except OSError as error:
            raise FrameFileError(f"{self.path}: not a readable HDF5 file ({error}); it may be truncated "
                                 "or corrupt: pack it again with `python -m dfn pack`") from error

    def _check_dataset(self, f: h5py.File, name: str) -> tuple[int, ...]:
        if name not in f or not isinstance(f[name], h5py.Dataset):
            raise FrameFileError(f"{self.path}: no dataset '{name}' (it has {sorted(f.keys())}); a "
                                 f"{'stereo' if name in ('left', 'right') else 'video'} file needs "
                                 f"{' and '.join(repr(n) for n in self.names)} (see README, 'HDF5 data')")
        ds = f[name]
        if ds.dtype != np.uint8:
            raise FrameFileError(f"{self.path}: dataset '{name}' is {ds.dtype}, expected uint8 pixels "
                                 "0-255; convert it (`python -m dfn pack` writes uint8)")
        if ds.ndim != 4 or ds.shape[-1] not in (1, 3):
            raise FrameFileError(f"{self.path}: dataset '{name}' has shape {ds.shape}, expected "
                                 "(N, H, W, C) with C = 1 or 3")
        return tuple(ds.shape)

    def _check_truth(self, ds: h5py.Dataset, frames: tuple[int, ...]) -> None:
        expected = frames[:3] + ((2,) if self.truth == "flow" else ())
        if not isinstance(ds, h5py.Dataset) or ds.shape != expected or ds.dtype.kind != "f":
            found = f"{ds.dtype} {ds.shape}" if isinstance(ds, h5py.Dataset) else "a group"
            raise FrameFileError(f"{self.path}: ground truth '{self.truth}' is {found}, expected float "
                                 f"{expected} to match the frames; repack with `python -m dfn pack "
                                 f"--{self.truth} PATH`")

    @property
    def handle(self) -> h5py.File:
        """This process's handle, opened on first use (and again after a fork)."""
        if self._handle is None or self._pid != os.getpid():
            self._handle, self._pid = self._open(), os.getpid()
        return self._handle

    def read(self, start: int, stop: int, crop: Optional[Sequence[int]] = None) -> list[Tensor]:
        """Frames ``start:stop`` of each dataset: ``[float (stop - start, C', h, w)]`` in [0, 1]
        (``crop``: see :meth:`FrameTransform.__call__`)."""
        return [self.transform(frames, crop) for frames in self._read(self.names, start, stop)]

    def read_truth(self, start: int, stop: int) -> Tensor:
        """Ground truth of frames ``start:stop``: ``(T, h, w)`` or ``(T, h, w, 2)``, NaN = unknown."""
        return self.transform.truth(self._read((self.truth,), start, stop)[0])

    def _read(self, names: Sequence[str], start: int, stop: int) -> list[np.ndarray]:
        try:
            return [self.handle[name][start:stop] for name in names]
        except (OSError, RuntimeError) as error:  # a damaged chunk shows up only when read
            raise FrameFileError(f"{self.path}: {self._damaged(names, start, stop)} cannot be read ({error}); "
                                 "the file is truncated or corrupt: pack it again") from error

    def _damaged(self, names: Sequence[str], start: int, stop: int) -> str:
        """The first frame of ``start:stop`` that fails to read, e.g. ``frame 3 of 'left'``
        (a checksum mismatch in files packed with Fletcher-32, or a truncated chunk)."""
        for name in names:
            for index in range(start, stop):
                try:
                    self.handle[name][index]
                except (OSError, RuntimeError):
                    return f"frame {index} of '{name}'"
        return f"frames {start}:{stop}"

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handle": None, "_pid": None}   # workers open their own

    def close(self) -> None:
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = None


def split_ranges(length: int, train_fraction: float = 0.8, train_frames: Optional[Sequence[int]] = None,
                 test_frames: Optional[Sequence[int]] = None) -> tuple[range, range]:
    """Train and test frame ranges: the first ``train_fraction`` of the frames train, the rest
    test (as the paper: 16,000 + 4,000), or explicit ``[start, stop)`` pairs. Samples are drawn
    inside one range, so no segment crosses the split."""
    if train_frames is None and test_frames is None:
        if not 0 < train_fraction < 1:
            raise ConfigError(f"train_fraction must be in (0, 1), got {train_fraction}")
        cut = int(round(length * train_fraction))
        return range(0, cut), range(cut, length)
    if train_frames is None or test_frames is None:
        raise ConfigError("give both train_frames and test_frames ([start, stop) each), or neither")
    ranges = []
    for name, pair in (("train_frames", train_frames), ("test_frames", test_frames)):
        if len(pair) != 2 or not 0 <= pair[0] < pair[1] <= length:
            raise ConfigError(f"{name} {list(pair)} must be [start, stop) with 0 <= start < stop <= {length}")
        ranges.append(range(pair[0], pair[1]))
    train, test = ranges
    if train.start < test.stop and test.start < train.stop:
        raise ConfigError(f"train_frames {list(train_frames)} and test_frames {list(test_frames)} overlap")
    return train, test
