"""Baseline: predict that nothing moves (every future frame is the last observed frame)."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn


class CopyLastFrame(nn.Module):
    """``forward(observed (B, T_in, C, H, W), future) -> (B, future, C, H, W)``; no parameters."""

    filter_window = None  # no generated filters

    def forward(self, observed: Tensor, future: int, return_filters: bool = False
                ) -> tuple[Tensor, Optional[Tensor]]:
        last = observed[:, -1:]
        return last.expand(-1, future, *last.shape[2:]).contiguous(), None
