"""The paper's claim made measurable: generated filters read out as disparity and flow, scored.

A filter at pixel ``p`` of a predicted frame reads the input around ``p``; its expected offset
``s(p) = E[(dy, dx)]`` (:func:`expected_shift`) says where the content comes from. The
prediction's grid is the *target's* (the right view; the next frame), while ground truth lives on
the *source's* grid (disparity on the left view, flow on frame ``t``). Read-outs are moved there
by solving for each source pixel where its content went:

* stereo: the right view at ``x`` shows the left view at ``x + s(x)``: each right pixel's offset
  is carried to that left pixel (colliding claims settled by how well each explains the right
  view; pixels hidden from the right camera take the farther of the surfaces beside them);
* video: the next frame at ``p`` shows frame ``t`` at ``p + s(p)``, so the flow of pixel ``q`` of
  frame ``t`` is ``f(q) = -s(q + f(q))``.

The video's fixed points are found by iteration with linear interpolation (exact for constant
offsets; pixels that no filter reads from, occluded ones, take a neighbouring surface's value).
:class:`ReadoutScores` then compares with ground truth on its known (non-NaN) pixels.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from dfn.ops.geometry import Window

ITERATIONS = 20


def disparity_on_left_grid(shift_x: Tensor, cost: Optional[Tensor] = None, iterations: int = ITERATIONS) -> Tensor:
    """Horizontal offsets ``(B, H, W)`` on the right view's grid -> disparity ``(B, H, W)`` on the
    left view's grid (positive: the left view's content appears further left in the right view).

    Each right-view pixel ``x`` is splatted to the left pixel nearest ``x + s(x)``. True
    correspondences never land two on one left pixel (it shows one surface), so where several do,
    all but one are wrong, typically right-view pixels the left camera cannot see, whose filters
    read a look-alike: given ``cost (B, H, W)`` (how badly each right pixel was predicted), the
    claim that explains the right view best wins; without it the largest disparity (the nearer
    surface) does, as in a z-buffer. Left pixels that nothing lands on are hidden from the right
    camera: by a nearer surface beside them, so they lie on the farther one, and take the smaller
    of the nearest claimed disparities to their left and right on the row (the background); a row
    without any claim takes the fixed point of ``d(x_L) = s(x_L - d(x_L))``."""
    B, H, W = shift_x.shape
    rows = shift_x.reshape(-1, W)
    x = torch.arange(W, dtype=rows.dtype, device=rows.device).expand_as(rows)
    target = (x + rows).round().long()
    inside = (target >= 0) & (target < W)
    target = target.clamp(0, W - 1)
    never = torch.full_like(rows, float("-inf"))
    if cost is not None:                                       # keep, per left pixel, its cheapest claims
        key = torch.where(inside, -cost.reshape(-1, W).to(rows.dtype), never)
        best = never.scatter_reduce(1, target, key, reduce="amax", include_self=True)
        inside = inside & (key == best.gather(1, target))
    splat = never.scatter_reduce(1, target, torch.where(inside, rows, never), reduce="amax", include_self=True)
    filled = _background_fill(splat)
    return torch.where(torch.isfinite(filled), filled, _fixed_point(rows, iterations)).reshape(B, H, W)


def _background_fill(rows: Tensor) -> Tensor:
    """``rows (N, W)`` with ``-inf`` holes -> each hole the smaller of the nearest values to its
    left and right (``inf`` where a row has none)."""
    N, W = rows.shape
    claimed = torch.isfinite(rows)
    index = torch.arange(W, device=rows.device).expand(N, W)
    left = torch.where(claimed, index, -1).cummax(1).values
    right = torch.where(claimed, index, W).flip(1).cummin(1).values.flip(1)
    far = torch.full_like(rows, float("inf"))
    from_left = torch.where(left >= 0, rows.gather(1, left.clamp(min=0)), far)
    from_right = torch.where(right < W, rows.gather(1, right.clamp(max=W - 1)), far)
    return torch.where(claimed, rows, torch.minimum(from_left, from_right))


def _fixed_point(rows: Tensor, iterations: int) -> Tensor:
    """``d(x) = s(x - d(x))`` by iteration with linear interpolation, for offsets ``rows (N, W)``."""
    W = rows.shape[1]
    x = torch.arange(W, dtype=rows.dtype, device=rows.device).expand_as(rows)
    d = rows
    for _ in range(iterations):
        position = (x - d).clamp(0, W - 1)
        lower = position.floor().long().clamp(max=max(W - 2, 0))
        upper = (lower + 1).clamp(max=W - 1)
        frac = position - lower
        d = rows.gather(1, lower) * (1 - frac) + rows.gather(1, upper) * frac
    return d


def prediction_cost(predicted: Tensor, truth: Tensor) -> Tensor:
    """``(B, C, H, W)`` prediction and truth -> ``(B, H, W)``: the absolute error, averaged over
    channels and a 3x3 neighbourhood (the ``cost`` of :func:`disparity_on_left_grid`)."""
    error = (predicted.float() - truth.float()).abs().mean(1, keepdim=True)
    return F.avg_pool2d(error, 3, stride=1, padding=1, count_include_pad=False)[:, 0]


def stereo_disparity(shift_x: Tensor, predicted: Tensor, right: Tensor) -> Tensor:
    """The filters' horizontal offsets ``(N, H, W)`` on the right view's grid, with the predicted
    and true right views ``(N, C, H, W)`` -> disparity ``(N, H, W)`` on the left view's grid, the
    colliding claims settled by :func:`prediction_cost`."""
    return disparity_on_left_grid(shift_x, prediction_cost(predicted, right))


def flow_on_source_grid(shift: Tensor, iterations: int = ITERATIONS) -> Tensor:
    """Offsets ``(B, 2, H, W)`` as ``(dy, dx)`` on the predicted frame's grid -> flow
    ``(B, H, W, 2)`` as ``(dx, dy)`` on the grid of the frame the filters were applied to."""
    B, _, H, W = shift.shape
    field = shift.flip(1)                                      # (dx, dy)
    y, x = torch.meshgrid(torch.arange(H, dtype=shift.dtype, device=shift.device),
                          torch.arange(W, dtype=shift.dtype, device=shift.device), indexing="ij")
    flow = -field
    for _ in range(iterations):
        px, py = x + flow[:, 0], y + flow[:, 1]
        grid = torch.stack([2 * px / max(W - 1, 1) - 1, 2 * py / max(H - 1, 1) - 1], -1)
        flow = -F.grid_sample(field, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return flow.permute(0, 2, 3, 1)


def expected_shift(filters: Tensor, window: Window) -> Tensor:
    """Per-pixel filters ``(..., kh*kw, H, W)`` -> the offset they read from on average,
    ``(..., 2, H, W)`` as ``(dy, dx)`` in pixels (tap (u, v) reads ``(y + oy + u, x + ox + v)``)."""
    dy, dx = window.offsets(filters.dtype, filters.device)
    return torch.stack([(filters * dy.view(-1, 1, 1)).sum(-3), (filters * dx.view(-1, 1, 1)).sum(-3)], -3)


class ReadoutScores(Metric):
    """Scores of read-outs against ground truth with NaN for unknown pixels, pooled over every
    known pixel of every sample (synced across DDP ranks).

    ``update_disparity(predicted (B, H, W), truth (B, H, W))`` gives ``disparity_epe`` (mean
    absolute error, px), ``disparity_bad1`` (share of pixels more than 1 px off),
    ``disparity_pearson`` (correlation) and ``disparity_epe_constant`` (the error of guessing
    each sample's ground-truth mean). ``update_flow(predicted (B, T, H, W, 2), truth (B, T, H,
    W, 2))`` with ``T = steps`` gives ``flow_epe`` (mean end-point error, px) and ``flow_epe_zero``
    (that of predicting no motion), pooled over the steps; :meth:`flow_curves` has them per step.
    ``compute()`` returns only the scores that were updated."""

    full_state_update = False
    SUMS = ("d_n", "d_abs", "d_bad1", "d_const", "d_x", "d_y", "d_xx", "d_yy", "d_xy")
    STEP_SUMS = ("f_n", "f_epe", "f_zero")

    def __init__(self, steps: int = 1) -> None:
        super().__init__()
        for name in self.SUMS:
            self.add_state(name, default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        for name in self.STEP_SUMS:
            self.add_state(name, default=torch.zeros(steps, dtype=torch.float64), dist_reduce_fx="sum")

    def _add(self, name: str, value: Tensor) -> None:
        setattr(self, name, getattr(self, name) + value.double().sum())

    def update(self, predicted: Tensor, truth: Tensor) -> None:
        """Disparity ``(B, H, W)`` or flow ``(B, T, H, W, 2)``, told apart by the shape of ``truth``."""
        if truth.ndim == 3:
            self.update_disparity(predicted, truth)
        else:
            self.update_flow(predicted, truth)

    def update_disparity(self, predicted: Tensor, truth: Tensor) -> None:
        known = torch.isfinite(truth)
        p, t = predicted.double()[known], truth.double()[known]
        counts = known.flatten(1).sum(1).clamp(min=1)
        means = torch.where(known, truth.double(), 0.0).flatten(1).sum(1) / counts
        constant = (truth.double() - means.view(-1, 1, 1)).abs()[known]
        error = (p - t).abs()
        for name, value in (("d_n", known.sum()), ("d_abs", error), ("d_bad1", (error > 1).double()),
                            ("d_const", constant), ("d_x", p), ("d_y", t), ("d_xx", p * p), ("d_yy", t * t),
                            ("d_xy", p * t)):
            self._add(name, value)

    def update_flow(self, predicted: Tensor, truth: Tensor) -> None:
        known = torch.isfinite(truth).all(-1)                                  # (B, T, H, W)
        t = torch.where(known[..., None], truth.double(), 0.0)
        self.f_n += known.double().sum((0, 2, 3))
        self.f_epe += ((predicted.double() - t).norm(dim=-1) * known).sum((0, 2, 3))
        self.f_zero += (t.norm(dim=-1) * known).sum((0, 2, 3))

    def flow_curves(self) -> dict[str, Tensor]:
        """``flow_epe`` and ``flow_epe_zero`` per predicted step ``(T,)`` (NaN where nothing is
        known); empty without flow updates."""
        if self.f_n.sum() == 0:
            return {}
        n = self.f_n.clamp(min=1)
        unknown = self.f_n == 0
        return {name: torch.where(unknown, float("nan"), total / n).float()
                for name, total in (("flow_epe", self.f_epe), ("flow_epe_zero", self.f_zero))}

    def compute(self) -> dict[str, Tensor]:
        scores = {}
        if self.d_n > 0:
            n = self.d_n
            cov = self.d_xy / n - self.d_x / n * self.d_y / n
            var_p, var_t = self.d_xx / n - (self.d_x / n) ** 2, self.d_yy / n - (self.d_y / n) ** 2
            scores.update(disparity_epe=self.d_abs / n, disparity_bad1=self.d_bad1 / n,
                          disparity_pearson=cov / (var_p * var_t).clamp(min=1e-24).sqrt(),
                          disparity_epe_constant=self.d_const / n)
        if self.f_n.sum() > 0:
            n = self.f_n.sum()
            scores.update(flow_epe=self.f_epe.sum() / n, flow_epe_zero=self.f_zero.sum() / n)
        return {name: value.float() for name, value in scores.items()}
