"""Slow, obviously-correct unfold implementation of :func:`dfn.ops.dynamic_local_filter`.

It materialises the ``(B, C, kh*kw, H, W)`` unfold buffer, so it is only the oracle for the tests
and the baseline of ``benchmarks/ops.py``; never use it in a model.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from dfn.ops.geometry import KernelSize, Origin, pad, window


def local_filter_reference(x: Tensor, filters: Tensor, kernel_size: KernelSize, *,
                           softmax: bool = False, bias: Optional[Tensor] = None,
                           origin: Origin = None) -> Tensor:
    """Same contract as :func:`dfn.ops.dynamic_local_filter`, computed through ``F.unfold``."""
    w = window(kernel_size, origin)
    kh, kw = w.kh, w.kw
    if bias is not None:
        x = x + bias
    B, C, H, W = x.shape
    cols = F.unfold(pad(x, w), (kh, kw)).view(B, C, kh * kw, H, W)
    if filters.ndim == 4:                                       # (B, T, H, W): shared
        f = torch.softmax(filters, 1) if softmax else filters
        return (cols * f[:, None]).sum(2)
    f = torch.softmax(filters, 3) if softmax else filters       # (B, n, C, T, H, W)
    return (cols[:, None] * f).sum((2, 3))
