"""Filter smoothness penalty: neighbouring pixels should generate similar filters.

``penalty = (mean_vertical + mean_horizontal) / 2``, where each term is the squared Euclidean
distance between the whole filters (all taps, channels and filters) of two neighbouring pixels,
averaged over the batch and over the neighbour pairs in that direction.
"""
from __future__ import annotations

from torch import Tensor, nn


def filter_smoothness(filters: Tensor) -> Tensor:
    """Scalar penalty of a filter field ``(B, ..., H, W)``, e.g. ``(B, kh*kw, H, W)``."""
    if filters.ndim < 3 or filters.shape[-1] < 2 or filters.shape[-2] < 2:
        raise ValueError(f"filters must be (B, ..., H, W) with H, W >= 2, got {tuple(filters.shape)}")
    dy = filters[..., 1:, :] - filters[..., :-1, :]
    dx = filters[..., :, 1:] - filters[..., :, :-1]
    return 0.5 * (_mean_pair_distance(dy) + _mean_pair_distance(dx))


def _mean_pair_distance(diff: Tensor) -> Tensor:
    """Sum of squares of ``diff (B, ..., H', W')`` over everything, per (sample, pair)."""
    return diff.pow(2).sum() / (diff.shape[0] * diff.shape[-2] * diff.shape[-1])


class FilterSmoothness(nn.Module):
    """``weight * filter_smoothness(filters)``; a weight of 0 returns an exact zero."""

    def __init__(self, weight: float = 0.0) -> None:
        super().__init__()
        if weight < 0:
            raise ValueError(f"smoothness weight must be >= 0, got {weight}")
        self.weight = weight

    def forward(self, filters: Tensor) -> Tensor:
        if self.weight == 0:
            return filters.new_zeros(())
        return self.weight * filter_smoothness(filters)

    def extra_repr(self) -> str:
        return f"weight={self.weight}"
