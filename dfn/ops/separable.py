"""Separable dynamic local filtering: a vertical ``kh x 1`` and a horizontal ``1 x kw`` filter per pixel.

Semantics: the **outer product**. Pixel ``(y, x)`` is filtered with the full ``kh x kw`` filter
``vertical[:, u, y, x] * horizontal[:, v, y, x]`` (as in adaptive separable convolution), so the
result equals :func:`dfn.ops.dynamic_local_filter` with that filter exactly. (Two consecutive passes
would instead mix the filters of neighbouring pixels; for dynamic *convolution* the two agree.)

Cost: the generator emits ``kh + kw`` numbers per pixel instead of ``kh * kw``; the op builds the
full ``(B, kh*kw, H, W)`` filter field (not the ``C``-times larger unfold buffer) and runs the full op.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from dfn.ops.local_filter import dynamic_local_filter


def separable_filters(vertical: Tensor, horizontal: Tensor, softmax: bool = False) -> Tensor:
    """Factors ``(..., kh, H, W)`` and ``(..., kw, H, W)`` (tap dim third from the end) -> the
    full per-pixel filters ``(..., kh*kw, H, W)``: their outer product, each factor softmaxed first
    if ``softmax``."""
    if vertical.ndim not in (4, 6) or vertical.ndim != horizontal.ndim:
        raise ValueError("vertical and horizontal must both be (B, taps, H, W) or both "
                         f"(B, n, C, taps, H, W); got {tuple(vertical.shape)} and "
                         f"{tuple(horizontal.shape)}")
    tap_dim = vertical.ndim - 3
    if softmax:
        vertical, horizontal = torch.softmax(vertical, tap_dim), torch.softmax(horizontal, tap_dim)
    full = vertical.unsqueeze(tap_dim + 1) * horizontal.unsqueeze(tap_dim)  # (..., kh, kw, H, W)
    return full.flatten(tap_dim, tap_dim + 1)


def separable_local_filter(x: Tensor, vertical: Tensor, horizontal: Tensor, *,
                           softmax: bool = False, bias: Optional[Tensor] = None) -> Tensor:
    """Filter every pixel with the outer product of its vertical and horizontal filter.

    Args:
        x: input ``(B, C, H, W)``.
        vertical: ``(B, kh, H, W)`` (shared across channels) or ``(B, n, C, kh, H, W)``.
        horizontal: ``(B, kw, H, W)`` or ``(B, n, C, kw, H, W)``, the same form as ``vertical``.
        softmax: normalise each factor over its taps (then the product also sums to one).
        bias: dynamic per-pixel bias ``(B, 1 or C, H, W)`` added to ``x`` before filtering.
    Returns:
        ``(B, C, H, W)`` for the shared form, ``(B, n, H, W)`` for the general form.
    """
    full = separable_filters(vertical, horizontal, softmax)
    kernel = (vertical.shape[-3], horizontal.shape[-3])
    return dynamic_local_filter(x, full, kernel, bias=bias)
