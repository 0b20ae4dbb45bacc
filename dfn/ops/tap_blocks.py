"""The ``"blocks"`` backend: portable dynamic local filtering on blocks of tap rows (``"auto"``
uses it on CUDA GPUs).

Each block of tap rows is one broadcast multiply of the shifted windows (a strided view of the
padded input) with the filters, then one reduction, or for ``dx`` one ``F.fold`` that scatters
the products back to the pixels they read. A call is a handful of kernel launches whatever the
filter size (a 9x9 filter would be 81 launches per direction one tap at a time), which matters
where a training step is bound by launches. The product of a block is a transient buffer no
larger than the filters themselves and than :data:`BLOCK_ELEMENTS` (rows are grouped to stay
under both, down to one row), so the ``C``-fold unfold buffer is never built when ``C > 1``, and
nothing of it is kept for backward. ``F.fold`` computes each pixel of ``dx`` as a gather of its
contributions (no atomics) and runs in parallel on a GPU (on the CPU it is serial, another reason
the CPU keeps the tap loop). On the CPU, where these buffers leave the cache, :mod:`dfn.ops.tap_loop`
is faster. Layouts as in :mod:`dfn.ops.local_filter`: ``x (B, C, H, W)``, filters
``f7 (B, N, Cf, kh, kw, H, W)``, output / its gradient ``g5 (B, N, Co, H, W)``. Float16 and
bfloat16 are computed in float32 and rounded once at the end.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dfn.ops.geometry import Window, accumulation_dtype, pad, unpad, windows

BLOCK_ELEMENTS = 1 << 26                # 256 MB of float32 products at most, per block


def _row_blocks(kh: int, row_elements: int, filter_elements: int) -> list[slice]:
    """Consecutive blocks of the ``kh`` tap rows whose product (``row_elements`` per row) stays
    within ``filter_elements`` and :data:`BLOCK_ELEMENTS`; a single row is never split."""
    budget = min(filter_elements, BLOCK_ELEMENTS)
    rows = max(1, min(kh, budget // max(row_elements, 1)))
    return [slice(u, min(u + rows, kh)) for u in range(0, kh, rows)]


def forward(x: Tensor, f7: Tensor, w: Window) -> Tensor:
    """``out[b,n,co] = sum_{cf,u,v} f7[b,n,cf,u,v] * shift_{u,v}(x)[b, cf or co]`` -> (B, N, Co, H, W)."""
    B, N, Cf, kh, kw, H, W = f7.shape
    C = x.shape[1]
    acc = accumulation_dtype(x.dtype)
    win = windows(pad(x.to(acc), w), kh, kw)[:, None]         # (B, 1, C, kh, kw, H, W)
    f7 = f7.to(acc)
    out = None
    for rows in _row_blocks(kh, B * N * C * kw * H * W, f7.numel()):
        prod = win[:, :, :, rows] * f7[:, :, :, rows]          # (B, N, C, rows, kw, H, W)
        part = prod.sum((3, 4)) if Cf == 1 else prod.sum((2, 3, 4)).unsqueeze(2)
        out = part if out is None else out.add_(part)
    return out.to(x.dtype)


def grad_filters(x: Tensor, g5: Tensor, shared: bool, w: Window) -> Tensor:
    """``df[b,n,cf,u,v] = sum_co g5[b,n,co] * shift_{u,v}(x)[b, cf or co]`` -> (B, N, Cf, kh, kw, H, W)."""
    B, N, Co, H, W = g5.shape
    C, kh, kw = x.shape[1], w.kh, w.kw
    Cf = 1 if shared else C
    acc = accumulation_dtype(x.dtype)
    win = windows(pad(x.to(acc), w), kh, kw)[:, None]         # (B, 1, C, kh, kw, H, W)
    g7 = g5.to(acc)[:, :, :, None, None]                      # (B, N, Co, 1, 1, H, W)
    parts = []
    for rows in _row_blocks(kh, B * N * C * kw * H * W, B * N * Cf * kh * kw * H * W):
        part = win[:, :, :, rows] * g7                         # (B, N, C, rows, kw, H, W)
        parts.append(part.sum(2, keepdim=True) if part.shape[2] > Cf else part)
    df = parts[0] if len(parts) == 1 else torch.cat(parts, dim=3)
    return df.to(x.dtype)


def grad_input(f7: Tensor, g5: Tensor, channels: int, w: Window) -> Tensor:
    """``dx[b,c] = sum_{n,u,v} shift_{-u,-v}(f7[b,n,:,u,v] * g5[b,n])[c]`` -> (B, C, H, W).

    A block of rows ``u0 .. u0 + r - 1`` reaches rows ``u0 .. u0 + H + r - 2`` of the zero-padded
    ``dx``; ``F.fold`` with an ``(r, kw)`` kernel adds each product to the pixel it read there.
    """
    B, N, Cf, kh, kw, H, W = f7.shape
    acc = accumulation_dtype(g5.dtype)
    f7, g7 = f7.to(acc), g5.to(acc)[:, :, :, None, None]      # g7 (B, N, Co, 1, 1, H, W)
    blocks = _row_blocks(kh, B * N * channels * kw * H * W, f7.numel())
    dxp = None if len(blocks) == 1 else torch.zeros(
        (B, channels, H + kh - 1, W + kw - 1), dtype=acc, device=g5.device)
    for rows in blocks:
        r = rows.stop - rows.start
        prod = f7[:, :, :, rows] * g7                          # (B, N, C, r, kw, H, W)
        prod = prod[:, 0] if N == 1 else prod.sum(1)
        part = F.fold(prod.reshape(B, channels * r * kw, H * W), (H + r - 1, W + kw - 1), (r, kw))
        if dxp is None:
            dxp = part
        else:
            dxp[:, :, rows.start:rows.start + H + r - 1] += part
    return unpad(dxp, w).to(g5.dtype)
