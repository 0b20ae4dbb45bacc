"""Dynamic convolution: one generated filter per sample, applied at every pixel (paper section 3.3).

It is a grouped convolution over the batch, run as a single ``conv2d`` call:
``conv2d(x.view(1, B*C, H, W), w.view(B*n, C, kh, kw), groups=B)``. Padding and the anchor of
even sizes follow :mod:`dfn.ops.geometry`, so ``dynamic_conv`` equals
:func:`dfn.ops.dynamic_local_filter` with the filter repeated at every pixel.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dfn.ops.geometry import pad, window


def dynamic_conv(x: Tensor, filters: Tensor, *, softmax: bool = False) -> Tensor:
    """Convolve each sample with its own filter(s).

    Args:
        x: input ``(B, C, H, W)``.
        filters: ``(B, kh, kw)``, one filter per sample applied to every channel, or
            ``(B, n, C, kh, kw)``, ``n`` filters per sample that sum over the channels.
        softmax: treat ``filters`` as logits and normalise each filter over its ``kh*kw`` taps.
    Returns:
        ``(B, C, H, W)`` for ``(B, kh, kw)`` filters, ``(B, n, H, W)`` for ``(B, n, C, kh, kw)``.
    """
    if x.ndim != 4:
        raise ValueError(f"x must be (B, C, H, W), got shape {tuple(x.shape)}")
    B, C, H, W = x.shape
    shared = filters.ndim == 3 and filters.shape[0] == B
    general = filters.ndim == 5 and filters.shape[0] == B and filters.shape[2] == C
    if not (shared or general):
        raise ValueError(f"filters must be (B, kh, kw) = ({B}, kh, kw) or (B, n, C, kh, kw) = "
                         f"({B}, n, {C}, kh, kw) for x of shape {tuple(x.shape)}; "
                         f"got {tuple(filters.shape)}")
    kh, kw = filters.shape[-2:]
    dtype = torch.promote_types(x.dtype, filters.dtype)
    x, filters = x.to(dtype), filters.to(dtype)
    if softmax:
        filters = torch.softmax(filters.flatten(-2), -1).view(filters.shape)
    xp = pad(x, window((kh, kw))).reshape(1, B * C, H + kh - 1, W + kw - 1)
    if shared:                                                  # depthwise: one group per (b, c)
        weight = filters[:, None].expand(B, C, kh, kw).reshape(B * C, 1, kh, kw)
        return F.conv2d(xp, weight, groups=B * C).view(B, C, H, W)
    n = filters.shape[1]
    return F.conv2d(xp, filters.reshape(B * n, C, kh, kw), groups=B).view(B, n, H, W)
