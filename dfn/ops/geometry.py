"""Kernel geometry shared by every dynamic-filtering op: sizes, the window's origin, padding, windows.

Window convention (docs/design.md): tap ``(u, v)`` of a ``kh x kw`` filter at output pixel
``(y, x)`` reads input pixel ``(y + oy + u, x + ox + v)``, where the *origin* ``(oy, ox)`` is the
offset of tap ``(0, 0)``. The default origin ``(-(kh // 2), -(kw // 2))`` centres odd sizes; for
even sizes the anchor (the tap that reads ``(y, x)``) is tap ``(kh // 2, kw // 2)``, so the
window reaches one pixel further up/left than down/right (e.g. ``kh = 4``: offsets -2, -1, 0, 1).
Any other integer origin is allowed: ``(0, 0)`` gives the one-sided window ``0 .. k - 1`` (twice
the reach of a centred window for the same taps, as rectified stereo needs), and a window need
not contain the pixel itself. Outside the image the input is zero; the output has the input's size.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

KernelSize = Union[int, tuple[int, int]]
Origin = Optional[Sequence[int]]        # (oy, ox): the offset tap (0, 0) reads; None = centred


def kernel_hw(kernel_size: KernelSize) -> tuple[int, int]:
    """``9 -> (9, 9)``, ``(1, 13) -> (1, 13)``; raises ``ValueError`` on anything else."""
    if isinstance(kernel_size, int) and not isinstance(kernel_size, bool):
        kh = kw = kernel_size
    elif (isinstance(kernel_size, (tuple, list)) and len(kernel_size) == 2
          and all(isinstance(k, int) and not isinstance(k, bool) for k in kernel_size)):
        kh, kw = kernel_size
    else:
        raise ValueError(f"kernel_size must be an int or a pair (kh, kw) of ints, got {kernel_size!r}")
    if kh < 1 or kw < 1:
        raise ValueError(f"kernel_size must be positive, got ({kh}, {kw})")
    return kh, kw


class Window(NamedTuple):
    """A filter's footprint: ``kh x kw`` taps, tap ``(u, v)`` reading offset ``(oy + u, ox + v)``."""
    kh: int
    kw: int
    oy: int
    ox: int

    @property
    def taps(self) -> int:
        return self.kh * self.kw

    @property
    def centred(self) -> bool:
        return (self.oy, self.ox) == (-(self.kh // 2), -(self.kw // 2))

    def offsets(self, dtype: torch.dtype = torch.float32, device=None) -> tuple[Tensor, Tensor]:
        """``(dy, dx)``, each ``(kh*kw,)``: the offset every tap reads, taps row-major."""
        u = torch.arange(self.kh, dtype=dtype, device=device) + self.oy
        v = torch.arange(self.kw, dtype=dtype, device=device) + self.ox
        return u.repeat_interleave(self.kw), v.repeat(self.kh)

def window(kernel_size: KernelSize, origin: Origin = None) -> Window:
    """The :class:`Window` of ``kernel_size`` with ``origin (oy, ox)`` (``None``: centred).

    Raises ``ValueError`` on a bad size or an origin that is not a pair of ints."""
    kh, kw = kernel_hw(kernel_size)
    if origin is None:
        return Window(kh, kw, -(kh // 2), -(kw // 2))
    if (not isinstance(origin, (tuple, list)) or len(origin) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in origin)):
        raise ValueError(f"origin must be a pair (oy, ox) of ints, the offset tap (0, 0) reads; "
                         f"got {origin!r}")
    return Window(kh, kw, origin[0], origin[1])


def _block(t: Tensor, top: int, left: int, height: int, width: int) -> Tensor:
    """``t[..., top:top + height, left:left + width]`` of ``t`` extended by zeros in every direction."""
    h, w = t.shape[-2:]
    pads = (max(0, -left), max(0, left + width - w), max(0, -top), max(0, top + height - h))
    if any(pads):
        t = F.pad(t, pads)
    top, left = top + pads[2], left + pads[0]
    return t[..., top:top + height, left:left + width]


def pad(x: Tensor, w: Window) -> Tensor:
    """``(B, C, H, W) -> (B, C, H + kh - 1, W + kw - 1)``: every pixel the window's taps read,
    ``out[..., i, j] = x[..., i + oy, j + ox]``, zeros outside the image."""
    H, W = x.shape[-2:]
    return _block(x, w.oy, w.ox, H + w.kh - 1, W + w.kw - 1)


def unpad(xp: Tensor, w: Window) -> Tensor:
    """Inverse of :func:`pad`: ``(B, C, H, W)``, the image's pixels of a padded tensor (zero where
    the window's region does not reach)."""
    H, W = xp.shape[-2] - w.kh + 1, xp.shape[-1] - w.kw + 1
    return _block(xp, -w.oy, -w.ox, H, W)


def windows(xp: Tensor, kh: int, kw: int) -> Tensor:
    """All shifted copies of a padded image as one strided view (nothing is copied).

    Args:
        xp: padded input ``(B, C, H + kh - 1, W + kw - 1)``.
    Returns:
        ``(B, C, kh, kw, H, W)`` view with ``out[b, c, u, v, y, x] = xp[b, c, y + u, x + v]``.
    """
    return xp.unfold(2, kh, 1).unfold(3, kw, 1).permute(0, 1, 4, 5, 2, 3)


def taps(t: Tensor, dim: int) -> list[Tensor]:
    """Split the two tap dims ``(dim, dim + 1) = (kh, kw)`` into ``kh * kw`` views, row-major."""
    return [tap for row in t.unbind(dim) for tap in row.unbind(dim)]


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float16 / bfloat16 accumulate in float32; float32 and float64 in themselves."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
