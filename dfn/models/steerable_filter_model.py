"""Learning steerable filters (paper section 4.1, Figure 4).

A filter-generating network turns an angle into a ``k x k`` filter; dynamic convolution applies
it to the image; the loss is the mean squared error to the image filtered with the analytic
steerable filter of that angle. The metric that matters is how close the generated filters are
to the analytic ones: cosine similarity at held-out angles (``val/filter_cos_min`` and ``_mean``).
"""
from __future__ import annotations

import math
from typing import Any, Optional

import torch.nn.functional as F
from torch import Tensor, nn

from dfn.errors import require_positive
from dfn.layers import DynamicConv
from dfn.models.base import (CompileMode, DFNModule, OptimizerFactory,
                             SchedulerFactory, adam)
from dfn.ops import dynamic_conv


def filter_cosine(a: Tensor, b: Tensor) -> Tensor:
    """Cosine similarity of two filter batches ``(B, k, k)`` -> ``(B,)``."""
    return F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)


class SteerableFilterModel(DFNModule):
    """Angle -> filter -> filtered image.

    Args:
        net: filter generator taking the angle as a ``(B, 1, 1, 1)`` image (the angle in radians
            mapped to ``theta / pi - 1`` in ``[-1, 1)``) and returning ``(B, k*k, 1, 1)``,
            e.g. ``PixelMLP(1, [64, 128], 81)``.
        kernel_size: ``k``, the generated filter size.
        optimizer, scheduler, scheduler_interval, compile, optimizer_overrides, channels_last: see
            :class:`dfn.models.base.DFNModule`.
    """

    def __init__(self, net: nn.Module, kernel_size: int = 9, optimizer: OptimizerFactory = adam,
                 scheduler: Optional[SchedulerFactory] = None, scheduler_interval: str = "step",
                 compile: CompileMode = False, optimizer_overrides: Optional[dict[str, Any]] = None,
                 channels_last: bool = True) -> None:
        super().__init__(optimizer, scheduler, scheduler_interval, compile, optimizer_overrides,
                         channels_last)
        self.save_hyperparameters(ignore=["net"])
        self.net = net
        require_positive("model.", kernel_size=kernel_size)
        self.filter_layer = DynamicConv(kernel_size)
        self.filter_layer.check_generator(net, f"model.kernel_size {kernel_size}", "angle")
        self.check_optimizer()

    def filters(self, angle: Tensor) -> Tensor:
        """``angle (B,)`` radians -> generated filters ``(B, k, k)``."""
        code = (angle / math.pi - 1).to(self.dtype)[:, None, None, None]       # (B, 1, 1, 1)
        filters, _ = self.filter_layer.split(self.net(code))
        return filters

    def forward(self, image: Tensor, angle: Tensor) -> tuple[Tensor, Tensor]:
        """``image (B, 1, H, W)``, ``angle (B,)`` -> output ``(B, 1, H, W)``, filters ``(B, k, k)``."""
        filters = self.filters(angle)
        return dynamic_conv(image, filters), filters

    def _shared_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        output, filters = self(batch["image"], batch["angle"])
        loss = F.mse_loss(output, batch["target"])
        evaluating = stage != "train"
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=len(batch["angle"]), sync_dist=evaluating)
        if evaluating:   # every rank evaluates the same held-out batch; sync keeps ranks in step
            cos = filter_cosine(filters, batch["filter"])
            self.log(f"{stage}/filter_cos_min", cos.min(), batch_size=len(cos), sync_dist=True)
            self.log(f"{stage}/filter_cos_mean", cos.mean(), batch_size=len(cos), sync_dist=True)
        return loss

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "test")

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return {"angle": batch["angle"], "filter": self.filters(batch["angle"])}
