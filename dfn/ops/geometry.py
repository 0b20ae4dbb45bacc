"""Kernel geometry shared by every dynamic-filtering op: sizes, the anchor, padding and windows.

Anchor convention (docs/design.md): tap ``(u, v)`` of a ``kh x kw`` filter at output pixel ``(y, x)``
reads input pixel ``(y + u - kh // 2, x + v - kw // 2)``. For odd sizes the filter is centred;
for even sizes the anchor (the tap that reads ``(y, x)``) is tap ``(kh // 2, kw // 2)``, so the
window reaches one pixel further up/left than down/right (e.g. ``kh = 4``: offsets -2, -1, 0, 1).
Outside the image the input is zero (zero padding); the output has the input's size.
"""
from __future__ import annotations

from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor

KernelSize = Union[int, tuple[int, int]]


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


def padding(kh: int, kw: int) -> tuple[int, int, int, int]:
    """Zero padding ``(left, right, top, bottom)`` that realises the anchor convention."""
    return kw // 2, kw - 1 - kw // 2, kh // 2, kh - 1 - kh // 2


def pad(x: Tensor, kh: int, kw: int) -> Tensor:
    """``(B, C, H, W) -> (B, C, H + kh - 1, W + kw - 1)``, zeros around the image."""
    return F.pad(x, padding(kh, kw))


def unpad(xp: Tensor, kh: int, kw: int) -> Tensor:
    """Inverse of :func:`pad`: the ``(B, C, H, W)`` interior view of a padded tensor."""
    left, right, top, bottom = padding(kh, kw)
    return xp[..., top:xp.shape[-2] - bottom, left:xp.shape[-1] - right]


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
