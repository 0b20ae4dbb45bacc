"""Matching costs of a frame against a guide at every tap of a filter window (binocular stereo).

``costs[b, k, y, x]`` is the mean over channels of ``|frame[b, :, y + dy_k, x + dx_k] - guide[b, :,
y, x]|``, ``(dy_k, dx_k)`` the offset tap ``k`` reads (zero outside the frame). For a left view
and its right view with the stereo window, tap ``k``'s cost is low where the disparity is its
offset: a cost volume (as in correlation-based stereo nets) that the filter generator reads
alongside the two views.
"""
from __future__ import annotations

from torch import Tensor

from dfn.ops.geometry import Window, pad, windows


def matching_costs(frame: Tensor, guide: Tensor, w: Window) -> Tensor:
    """``frame, guide (B, C, H, W)`` -> ``(B, kh*kw, H, W)``, taps row-major."""
    if frame.shape != guide.shape:
        raise ValueError(f"frame {tuple(frame.shape)} and guide {tuple(guide.shape)} must be one shape")
    patches = windows(pad(frame, w), w.kh, w.kw).flatten(2, 3)          # (B, C, taps, H, W)
    return (patches - guide[:, :, None]).abs().mean(1)
