"""The ``"loop"`` backend: portable dynamic local filtering, one tap at a time (``"auto"`` uses it
on the CPU where the C kernel cannot run, and on devices other than CUDA GPUs).

Each tap is one multiply-accumulate of a shifted window (a strided view of the padded input) into
an output that stays in cache, so nothing larger than the output is ever allocated, and only
elementwise ops are needed. At the paper's sizes it is 1.6-7x faster on the CPU than
:mod:`dfn.ops.tap_blocks` (``results/ops_cpu.md``), but launches one kernel per tap, which is what
a GPU can least afford. Layouts as in :mod:`dfn.ops.local_filter`: ``x (B, C, H, W)``, filters
``f7 (B, N, Cf, kh, kw, H, W)``, output / its gradient ``g5 (B, N, Co, H, W)``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from dfn.ops.geometry import Window, accumulation_dtype, pad, taps, unpad, windows


def forward(x: Tensor, f7: Tensor, w: Window) -> Tensor:
    """``out[b,n,co] = sum_{cf,u,v} f7[b,n,cf,u,v] * shift_{u,v}(x)[b, cf or co]`` -> (B, N, Co, H, W)."""
    B, N, Cf, kh, kw, H, W = f7.shape
    C = x.shape[1]
    out = torch.zeros((B, N, C if Cf == 1 else 1, H, W), dtype=accumulation_dtype(x.dtype),
                      device=x.device)
    win = windows(pad(x, w), kh, kw)[:, None]              # (B, 1, C, kh, kw, H, W)
    for cf in range(Cf):
        x_taps = taps(win if Cf == 1 else win[:, :, cf:cf + 1], 3)  # each (B, 1, C or 1, H, W)
        f_taps = taps(f7[:, :, cf:cf + 1], 3)                       # each (B, N, 1, H, W)
        for f_t, x_t in zip(f_taps, x_taps):
            out.addcmul_(f_t, x_t)
    return out.to(x.dtype)


def grad_filters(x: Tensor, g5: Tensor, shared: bool, w: Window) -> Tensor:
    """``df[b,n,cf,u,v] = sum_co g5[b,n,co] * shift_{u,v}(x)[b, cf or co]`` -> (B, N, Cf, kh, kw, H, W).

    One multiply per (filter channel, tap row) over all ``kw`` taps of the row at once: the row
    of shifted windows is a strided view, and the result is written straight into ``df``.
    """
    B, N, Co, H, W = g5.shape
    C, kh, kw = x.shape[1], w.kh, w.kw
    Cf = 1 if shared else C
    df = torch.empty((B, N, Cf, kh, kw, H, W), dtype=x.dtype, device=x.device)
    win = windows(pad(x, w), kh, kw)                       # (B, C, kh, kw, H, W)
    exact = accumulation_dtype(x.dtype) == x.dtype
    for cf in range(Cf):
        for u in range(kh):
            dst = df[:, :, cf, u]                               # (B, N, kw, H, W)
            # a half-precision sum over channels goes through a float32 row (zeroed, because a
            # half * half product written with out= would be rounded to half first)
            acc = dst if exact or Co == 1 else torch.zeros(dst.shape, dtype=torch.float32,
                                                           device=x.device)
            for co in range(Co):
                g = g5[:, :, co, None]                          # (B, N, 1, H, W)
                x_row = win[:, co if shared else cf, u, None]   # (B, 1, kw, H, W)
                if co == 0 and acc is dst:
                    torch.mul(g, x_row, out=acc)
                else:
                    acc.addcmul_(g, x_row)
            if acc is not dst:
                dst.copy_(acc)
    return df


def grad_input(f7: Tensor, g5: Tensor, channels: int, w: Window) -> Tensor:
    """``dx[b,c] = sum_{n,u,v} shift_{-u,-v}(f7[b,n,:,u,v] * g5[b,n])[c]`` -> (B, C, H, W).

    Accumulated window by window into a zero-padded buffer whose interior is ``dx``.
    """
    B, N, Cf, kh, kw, H, W = f7.shape
    dtype = accumulation_dtype(g5.dtype)
    dxp = torch.zeros((B, channels, H + kh - 1, W + kw - 1), dtype=dtype, device=g5.device)
    win = windows(dxp, kh, kw)                                  # (B, C, kh, kw, H, W), writable
    win_taps = taps(win, 2)
    for n in range(N):
        g = g5[:, n]                                            # (B, Co, H, W)
        for f_t, dst in zip(taps(f7[:, n], 2), win_taps):       # f_t (B, Cf, H, W)
            dst.addcmul_(f_t, g)
    return unpad(dxp, w).to(g5.dtype)
