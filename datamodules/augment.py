"""Training augmentation that keeps the geometry the filters must learn (and the ground truth).

Drawn per sample from the training stream's seeded generator, so augmented runs stay
reproducible and resume exactly (:mod:`datamodules.stream`):

* ``gain`` and ``offset``: ``x -> gain * x + offset`` (clipped to [0, 1]), the same for every
  frame and both views of a sample: exposure changes that move nothing;
* ``vflip``: upside down; keeps a rectified pair's disparity, but a stereo DFN sees only the
  left view and reads depth from cues such as "lower in the view = nearer", which a flip hides
  (off in ``configs/stereo.yaml``: measured in ``results/real_footage.md``);
* ``hflip``: mirrored; keeps video motion (``dx`` changes sign). Not for stereo: a mirrored pair
  would need its views swapped;
* ``crop_scale``: a random window of ``[min, max]`` times the stored frame (or the configured
  crop) on each side, at the stored resolution, then resized to the working size; only the
  part of the range that stays at least the working size is used, so it does nothing when the
  stored frames are no larger than the working size. Disparity and flow scale with the window.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor

from dfn.errors import ConfigError


@dataclass(frozen=True)
class Augmentation:
    """Args: see the module docstring; ``[low, high]`` ranges, drawn uniformly."""

    gain: Sequence[float] = (0.8, 1.2)
    offset: Sequence[float] = (-0.05, 0.05)
    vflip: bool = False
    hflip: bool = False
    crop_scale: Sequence[float] = (0.75, 1.0)

    def __post_init__(self) -> None:
        for name in ("gain", "offset", "crop_scale"):
            low, high = getattr(self, name)
            if low > high:
                raise ConfigError(f"data.augment.{name} must be [low, high] with low <= high, got {[low, high]}")
        if self.gain[0] <= 0 or not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise ConfigError(f"data.augment: gain must be > 0 and crop_scale within (0, 1], got gain "
                              f"{list(self.gain)}, crop_scale {list(self.crop_scale)}")


@dataclass(frozen=True)
class Draw:
    """One sample's augmentation: ``crop [top, left, h, w]`` (stored pixels) or ``None``."""

    gain: float
    offset: float
    vflip: bool
    hflip: bool
    crop: Optional[tuple[int, int, int, int]]


def _uniform(generator: torch.Generator, bounds: Sequence[float]) -> float:
    return float(bounds[0] + (bounds[1] - bounds[0]) * torch.rand((), generator=generator))


def draw(augmentation: Augmentation, generator: torch.Generator, region: Sequence[int],
         size: Optional[Sequence[int]]) -> Draw:
    """Draw one sample's augmentation; ``region [top, left, H, W]`` is the stored area in use and
    ``size`` the working ``[h, w]`` (``None``: the region's)."""
    gain = _uniform(generator, augmentation.gain)
    offset = _uniform(generator, augmentation.offset)
    vflip = augmentation.vflip and bool(torch.rand((), generator=generator) < 0.5)
    hflip = augmentation.hflip and bool(torch.rand((), generator=generator) < 0.5)
    top, left, H, W = region
    smallest = max(augmentation.crop_scale[0], *(() if size is None else (size[0] / H, size[1] / W)))
    scale = _uniform(generator, (min(smallest, augmentation.crop_scale[1]), augmentation.crop_scale[1]))
    h, w = max(1, round(H * scale)), max(1, round(W * scale))
    crop = None
    if (h, w) != (H, W):
        dy = int(torch.randint(0, H - h + 1, (), generator=generator))
        dx = int(torch.randint(0, W - w + 1, (), generator=generator))
        crop = (top + dy, left + dx, h, w)
    return Draw(gain, offset, vflip, hflip, crop)


def apply(sample: Draw, frames: Tensor, truth: Optional[Tensor] = None) -> tuple[Tensor, Optional[Tensor]]:
    """Gain, offset and flips on ``frames (T, C, H, W)`` and on ground truth, disparity
    ``(T, H, W)`` or flow ``(T, H, W, 2)`` (``(dx, dy)``: a flip negates its component)."""
    frames = (frames * sample.gain + sample.offset).clamp(0, 1)
    for flipped, frame_dim, truth_dim, component in ((sample.vflip, -2, 1, 1), (sample.hflip, -1, 2, 0)):
        if not flipped:
            continue
        frames = frames.flip(frame_dim)
        if truth is not None:
            truth = truth.flip(truth_dim)
            if truth.ndim == 4:
                truth = truth.clone()
                truth[..., component] = -truth[..., component]
    return frames, truth
