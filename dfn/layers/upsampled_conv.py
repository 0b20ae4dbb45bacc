"""A 3x3 convolution of a nearest-upsampled image, computed at the low resolution.

Nearest upsampling by ``r`` repeats each pixel ``r x r`` times, so a 3x3 window of the upsampled
image covers at most 2 x 2 pixels of the original: each of the ``r x r`` output phases ``(py, px)``
(output pixel ``(r*Y + py, r*X + px)``) is a 2x2 convolution of the original image whose weights
are sums of the 3x3 ones. All phases come out of one 2x2 convolution with ``r*r*C_out`` channels
over the original, then are interleaved: 4 taps per phase at ``(S/r + 1)^2`` pixels instead of 9
at ``S^2``, 2.25x fewer multiply-adds, the same values (to rounding) and the same parameters
(those of the ``nn.Conv2d``, so checkpoints do not change).
"""
from __future__ import annotations

import functools

import torch
from torch import Tensor, nn


def _phase_offsets(scale: int) -> list[list[int]]:
    """For each phase ``p``, the original pixel (relative to the phase's own) that each of the
    upsampled window's 3 taps reads."""
    return [[(p + a - 1) // scale for a in range(3)] for p in range(scale)]


@functools.lru_cache(maxsize=None)
def _phase_taps(scale: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``A (scale, 2, 3)``: ``A[p, j, a] = 1`` where tap ``a`` of the upsampled window of phase
    ``p`` reads original pixel ``start[p] + j`` (``start[p]``: the lowest it reads); built once per
    scale, dtype and device (on a GPU, no copy from the host per call)."""
    taps = [[[float(offsets[a] - min(offsets) == j) for a in range(3)] for j in range(2)]
            for offsets in _phase_offsets(scale)]
    return torch.tensor(taps, dtype=dtype, device=device)


def upsampled_conv(x: Tensor, conv: nn.Conv2d, scale: int) -> Tensor:
    """``conv(interpolate(x, scale_factor=scale, mode="nearest"))`` for a 3x3, stride-1,
    padding-1 ``conv``: ``x (B, C_in, h, w)`` -> ``(B, C_out, h*scale, w*scale)``."""
    if conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.padding != (1, 1) \
            or conv.dilation != (1, 1) or conv.groups != 1 or scale < 2:
        raise ValueError(f"upsampled_conv needs a plain 3x3 conv with padding 1 and scale >= 2, got "
                         f"{conv} and scale {scale}")
    B, _, h, w = x.shape
    taps = _phase_taps(scale, conv.weight.dtype, conv.weight.device)
    start = [min(offsets) for offsets in _phase_offsets(scale)]
    # weights (py, px, C_out, C_in, 2, 2): the 3x3 kernel summed onto each phase's 2x2 support
    phases = torch.einsum("pja,oiab,qkb->pqoijk", taps, conv.weight, taps)
    out = nn.functional.conv2d(x, phases.flatten(0, 2), padding=1)       # (B, r*r*C_out, h+1, w+1)
    out = out.unflatten(1, (scale, scale, conv.out_channels))
    # phase (py, px) with window start (sy, sx) sits at rows sy + 1 .. sy + h, columns sx + 1 ..
    rows = [out[:, py, :, :, start[py] + 1:start[py] + 1 + h] for py in range(scale)]
    grid = torch.stack([torch.stack([row[:, px, :, :, start[px] + 1:start[px] + 1 + w]
                                     for px in range(scale)], dim=-1) for row in rows], dim=3)
    out = grid.reshape(B, conv.out_channels, h * scale, w * scale)     # (B, C_out, h, py, w, px)
    return out if conv.bias is None else out + conv.bias[:, None, None]
