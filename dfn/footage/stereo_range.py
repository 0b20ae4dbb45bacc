"""The disparity range of rectified stereo pairs, estimated without labels by block matching.

For each candidate shift ``d`` the cost of a pixel is the absolute difference between the right
view at ``x`` and the left view at ``x + d`` (dfn's convention: the right view shows at ``x`` what
the left shows at ``x + disparity``), averaged over a square block. Each pixel takes its cheapest
shift; pixels whose cheapest cost is not well below their mean cost over all shifts (flat or
ambiguous regions) are left out, and the range is a low and a high percentile of the rest. It is
a coarse estimate, meant to size filters and colour scales, not a disparity map. Views wider
than ``MATCH_WIDTH`` are matched at an integer fraction of their size (area-averaged) and the
range scaled back, which keeps ``pack`` quick on large footage.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

MATCH_WIDTH = 128


def _gray(frames: np.ndarray) -> torch.Tensor:
    """``uint8 (N, H, W[, C])`` -> ``float (N, 1, H, W)`` in [0, 1], the channels averaged."""
    x = torch.from_numpy(np.asarray(frames, dtype=np.float32) / 255)
    return (x.mean(-1) if x.ndim == 4 else x)[:, None]


def disparity_range(left: np.ndarray, right: np.ndarray, max_shift: Optional[int] = None,
                    block: Optional[int] = None, percentiles: tuple[float, float] = (1.0, 99.0),
                    confidence: float = 0.3) -> Optional[tuple[float, float]]:
    """``left``, ``right``: ``uint8 (N, H, W[, C])`` pairs -> ``(low, high)`` disparity in px at
    their resolution, or ``None`` where no pixel matches with confidence (textureless views).

    Args:
        max_shift: shifts ``-max_shift .. max_shift`` are tried (default half the width).
        block: side of the square block the costs are averaged over, in px of the matched size
            (odd; default an eighth of the matched width, at least 7).
        percentiles: of the confident pixels' winning shifts.
        confidence: a pixel counts where its best cost is below ``confidence`` x its mean cost.
    """
    l, r = _gray(left), _gray(right)
    factor = -(-l.shape[-1] // MATCH_WIDTH)
    if factor > 1:
        l, r = F.avg_pool2d(l, factor), F.avg_pool2d(r, factor)
    width = l.shape[-1]
    max_shift = width // 2 if max_shift is None else -(-max_shift // factor)    # in matched px
    block = max(7, width // 8) | 1 if block is None else block
    best = torch.full(r.shape, float("inf"))
    winner = torch.zeros(r.shape)
    total, tried = torch.zeros(r.shape), torch.zeros(width)
    for d in range(-max_shift, max_shift + 1):
        shifted = torch.roll(l, -d, dims=-1)               # shifted[..., x] = l[..., x + d]
        cost = F.avg_pool2d((shifted - r).abs(), block, stride=1, padding=block // 2, count_include_pad=False)
        cost[..., max(0, width - d):] = float("inf")       # x + d beyond the right edge
        cost[..., :max(0, -d)] = float("inf")               # x + d beyond the left edge
        better = cost < best
        best, winner = torch.where(better, cost, best), torch.where(better, float(d), winner)
        total += torch.where(torch.isfinite(cost), cost, 0)
        tried[max(0, -d):max(0, width - d)] += 1
    confident = best < confidence * total / tried.clamp(min=1)
    if not confident.any():
        return None
    low, high = np.percentile(winner[confident].numpy(), percentiles)
    return float(low) * factor, float(high) * factor
