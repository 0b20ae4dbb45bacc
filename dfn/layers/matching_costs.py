"""Matching costs of a frame against a guide at every tap of a filter window (binocular stereo).

``costs[b, k, y, x]`` is the mean over channels of ``|frame[b, :, y + dy_k, x + dx_k] - guide[b, :,
y, x]|``, ``(dy_k, dx_k)`` the offset tap ``k`` reads (zero outside the frame). For a left view
and its right view with the stereo window, tap ``k``'s cost is low where the disparity is its
offset: a cost volume (as in correlation-based stereo nets) that the filter generator reads
alongside the two views. :class:`CostPrior` turns it into filter logits: the softmax of
``-scale * cost`` is a soft winner-take-all over the taps (as in cost-volume stereo nets).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dfn.ops.geometry import Window, pad, windows


def matching_costs(frame: Tensor, guide: Tensor, w: Window) -> Tensor:
    """``frame, guide (B, C, H, W)`` -> ``(B, kh*kw, H, W)``, taps row-major."""
    if frame.shape != guide.shape:
        raise ValueError(f"frame {tuple(frame.shape)} and guide {tuple(guide.shape)} must be one shape")
    patches = windows(pad(frame, w), w.kh, w.kw).flatten(2, 3)          # (B, C, taps, H, W)
    return (patches - guide[:, :, None]).abs().mean(1)


class CostPrior(nn.Module):
    """``costs (B, taps, H, W)`` -> filter logits ``-scale * box(costs)`` of the same shape.

    Each tap's cost is averaged over a ``size x size`` box of pixels first (one pixel's cost is
    too noisy to match on; block matching aggregates the same way), and ``scale`` (> 0) is learned
    from its start value. Added to the generator's logits, the first filters are the cost
    volume's soft winner-take-all and the net learns the correction.
    """

    def __init__(self, scale: float, size: int = 5) -> None:
        super().__init__()
        if scale <= 0 or size < 1 or size % 2 == 0:
            raise ValueError(f"cost prior needs scale > 0 and an odd size >= 1, got {scale} and {size}")
        self.size = size
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)))

    def forward(self, costs: Tensor) -> Tensor:
        box = F.avg_pool2d(costs, self.size, 1, self.size // 2, count_include_pad=False)
        return -self.log_scale.exp() * box

    def extra_repr(self) -> str:
        return f"scale={self.log_scale.exp().item():.3g}, size={self.size}"
