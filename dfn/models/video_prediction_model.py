"""Video prediction (paper section 4.2): observe ``frames_in`` frames, predict ``frames_out``.
Stereo prediction (4.3) is the same with one frame each way: the left view in, the right out.

The predictor (:mod:`dfn.predictors`: the recurrent DFN, or a baseline) only predicts; this
module owns the loss, the metrics (:mod:`dfn.evaluation.metrics`) and what is logged, so that every method
is measured the same way. Batch contract: ``{"frames": (B, frames_in + frames_out, C, H, W)}``
in [0, 1].

With ground truth in the batch (``"disparity" (B, H, W)`` for stereo; ``"flow" (B, T, H, W, 2)``
for video, on each frame's own grid; ``"reads_from" (B, T, H, W, 2)``, the true offsets on the
predicted frames' grid, for Moving MNIST; NaN = unknown), validation and test also score the
filters' read-outs (:mod:`dfn.evaluation.readout`): ``disparity_epe``, ``disparity_pearson``,
``disparity_bad1``, ``disparity_epe_constant``; ``flow_epe``, ``flow_epe_zero`` (pooled over the
predicted steps; per step in the test results' curves).

Loss: ``bce`` (Moving MNIST: binary cross-entropy of the prediction clipped to [eps, 1 - eps],
summed over a frame's pixels, averaged over predicted frames and sequences, i.e. the paper's
number) or ``mse`` (squared error summed over a frame's pixels, averaged likewise).

``binocular`` (stereo, beyond the paper): the filter generator also sees the right view, the
frame it predicts; the filters still apply to the left view, so the read-out is unchanged.
"""
from __future__ import annotations

import inspect
from typing import Any, Optional

from lightning.pytorch.utilities import rank_zero_warn
import torch
from torch import Tensor, nn

from dfn.contracts import VideoPredictor, check
from dfn.errors import require_positive
from dfn.layers import filter_smoothness
from dfn.ops.geometry import Window
from dfn.evaluation.metrics import NAMES, FrameCurves, frame_bce, frame_se
from dfn.evaluation.readout import ReadoutScores, expected_shift, flow_on_source_grid, stereo_disparity
from dfn.models.base import (CompileMode, ConfigError, DFNModule, OptimizerFactory,
                             SchedulerFactory, adam)


class VideoPredictionModel(DFNModule):
    """Args:
        predictor: ``predictor(observed, future, return_filters) -> (predictions, filters)``
            with a ``filter_window`` (:class:`dfn.contracts.VideoPredictor`).
        frames_in, frames_out: observed and predicted frames.
        loss: ``"bce"`` or ``"mse"`` (see the module docstring).
        smoothness_weight: weight of :func:`dfn.layers.filter_smoothness` on the filters.
        binocular: stereo only (one frame each way): the generator sees both views (the
            predictor must take a ``guide``, as :class:`~dfn.predictors.DynamicFilterPredictor`
            does, and its net ``in_channels`` must count the right view's channels too).
        optimizer, scheduler, scheduler_interval, compile, optimizer_overrides,
            channels_last: see
            :class:`dfn.models.base.DFNModule`.
    """

    network_attribute = "predictor"

    def __init__(self, predictor: nn.Module, frames_in: int = 10, frames_out: int = 10,
                 loss: str = "bce", smoothness_weight: float = 0.0, binocular: bool = False, optimizer: OptimizerFactory = adam,
                 scheduler: Optional[SchedulerFactory] = None, scheduler_interval: str = "step",
                 compile: CompileMode = False, optimizer_overrides: Optional[dict[str, Any]] = None,
                 channels_last: bool = True) -> None:
        super().__init__(optimizer, scheduler, scheduler_interval, compile, optimizer_overrides,
                         channels_last)
        self.save_hyperparameters(ignore=["predictor"])
        if loss not in ("bce", "mse"):
            raise ConfigError(f"model.loss must be 'bce' or 'mse', got {loss!r}")
        if smoothness_weight < 0:
            raise ConfigError(f"model.smoothness_weight must be >= 0, got {smoothness_weight}")
        check(predictor, VideoPredictor, "model.predictor", "use one of dfn.predictors, or give it these members")
        require_positive("model.", frames_in=frames_in, frames_out=frames_out)
        if binocular and (frames_in, frames_out) != (1, 1):
            raise ConfigError(f"model.binocular is for stereo (frames_in 1, frames_out 1), got frames_in "
                              f"{frames_in} and frames_out {frames_out}: set binocular false")
        if binocular and "guide" not in inspect.signature(predictor.forward).parameters:
            raise ConfigError(f"model.binocular needs a predictor whose filter generator can see the right view "
                              f"(dfn.predictors.DynamicFilterPredictor); {type(predictor).__name__} cannot: "
                              f"set binocular false")
        self.predictor, self.frames_in, self.frames_out = predictor, frames_in, frames_out
        self.binocular = binocular
        self.loss_name, self.smoothness_weight = loss, smoothness_weight
        self.val_curves, self.val_readout = FrameCurves(frames_out), ReadoutScores(frames_out)
        self.test_curves = nn.ModuleList([FrameCurves(frames_out)])  # one per test dataloader
        self.test_readouts = nn.ModuleList([ReadoutScores(frames_out)])
        self._test_report: list[dict[str, list[float]]] = []
        if any(p.requires_grad for p in self.parameters()):
            self.check_optimizer()

    def forward(self, observed: Tensor, return_filters: bool = False, future: Optional[Tensor] = None
                ) -> tuple[Tensor, Optional[Tensor]]:
        """``observed (B, frames_in, C, H, W)`` -> predictions ``(B, frames_out, C, H, W)``, filters.
        ``future (B, frames_out, C, H, W)``: the true frames, which a binocular model's generator
        sees (the right view); other models ignore it."""
        if not self.binocular:
            return self.predictor(observed, self.frames_out, return_filters)
        if future is None:
            raise ValueError("a binocular model sees the right view: call it as model(observed, future=right)")
        return self.predictor(observed, self.frames_out, return_filters, guide=future)

    @property
    def filter_window(self) -> Optional[Window]:
        """The :class:`~dfn.ops.geometry.Window` (size and origin) of the filters that ``forward``
        returns; ``None`` for a predictor without filters (a baseline)."""
        return self.predictor.filter_window

    def on_fit_start(self) -> None:
        """Warns when the data's estimated disparities (a stereo DataModule's ``disparity_range``)
        lie beyond the offsets the filters read."""
        estimate, window = getattr(self.trainer.datamodule, "disparity_range", None), self.filter_window
        if estimate is None or window is None:
            return
        (low, high), reach = estimate, (window.ox, window.ox + window.kw - 1)
        if low < reach[0] - 0.5 or high > reach[1] + 0.5:
            rank_zero_warn(f"the data's disparities ({low:.1f} to {high:.1f} px at the working width, as "
                           f"`python -m dfn pack` estimated them) reach beyond the filters' offsets "
                           f"({reach[0]} to {reach[1]} px): widen kernel_size [1, K] with the net's head, or "
                           f"set origin [0, 0] for one-sided filters (README, 'Wider disparities')")

    def split_frames(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """``batch["frames"] (B, frames_in + frames_out, C, H, W)`` -> observed ``(B, frames_in,
        C, H, W)`` and future ``(B, frames_out, C, H, W)``."""
        frames = batch["frames"]
        if frames.shape[1] != self.frames_in + self.frames_out:
            raise ValueError(f"batches hold {frames.shape[1]} frames, the model expects frames_in + "
                             f"frames_out = {self.frames_in + self.frames_out}: make data and model agree")
        return frames[:, :self.frames_in], frames[:, self.frames_in:]

    def test_report(self) -> list[dict[str, list[float]]]:
        """Per-step curves (bce, mse, ... and read-out errors) of each test set of the last ``test``."""
        return self._test_report

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        observed, future = self.split_frames(batch)
        prediction, filters = self(observed, return_filters=self.smoothness_weight > 0, future=future)
        loss = (frame_bce if self.loss_name == "bce" else frame_se)(prediction, future).mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=len(observed))
        if filters is not None:
            penalty = self.smoothness_weight * filter_smoothness(filters.flatten(0, 1))
            self.log("train/smoothness", penalty, batch_size=len(observed))
            loss = loss + penalty
        return loss

    def _evaluate(self, batch: dict[str, Tensor], curves: FrameCurves, readout: ReadoutScores) -> None:
        observed, future = self.split_frames(batch)
        truth = next((key for key in ("disparity", "flow", "reads_from") if key in batch), None)
        window = self.filter_window
        prediction, filters = self(observed, return_filters=truth is not None and window is not None, future=future)
        # Scores in float32 whatever the training precision: under bf16 autocast SSIM's
        # convolutions would run in bfloat16, whose variances cancel (SSIM 0.93 for 0.99).
        with torch.autocast(prediction.device.type, enabled=False):
            self._score(batch, prediction.float(), future.float(), filters, truth, curves, readout)

    def _score(self, batch: dict[str, Tensor], prediction: Tensor, future: Tensor,
               filters: Optional[Tensor], truth: Optional[str], curves: FrameCurves,
               readout: ReadoutScores) -> None:
        """Frame metrics of ``prediction (B, T, C, H, W)`` and, with ground ``truth``, the filters'
        read-out scores."""
        curves.update(prediction, future)
        if filters is None:
            return
        window = self.filter_window
        shift = expected_shift(filters.float(), window)                          # (B, T, 2, H, W)
        if truth == "disparity":
            readout.update(stereo_disparity(shift[:, 0, 1], prediction[:, 0], future[:, 0]), batch["disparity"])
            return
        steps = shift.shape[1]           # step k applied its filters to frame frames_in - 1 + k
        if truth == "reads_from":        # on the predicted frames' grid: the offsets themselves
            readout.update(shift.flip(2).permute(0, 1, 3, 4, 2), batch["reads_from"][:, self.frames_in:])
            return
        flow = flow_on_source_grid(shift.flatten(0, 1)).unflatten(0, (-1, steps))
        readout.update(flow, batch["flow"][:, self.frames_in - 1:self.frames_in - 1 + steps])

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.val_curves, self.val_readout)

    def on_test_start(self) -> None:
        loaders = len(self.trainer.test_dataloaders) if isinstance(self.trainer.test_dataloaders, list) else 1
        self.test_curves = nn.ModuleList([FrameCurves(self.frames_out) for _ in range(loaders)]).to(self.device)
        self.test_readouts = nn.ModuleList([ReadoutScores(self.frames_out) for _ in range(loaders)]).to(self.device)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(batch, self.test_curves[dataloader_idx], self.test_readouts[dataloader_idx])

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Any]:
        """``{"frames", "prediction", "filters" (or None), "index"}`` for the prediction writer."""
        observed, future = self.split_frames(batch)
        prediction, filters = self(observed, return_filters=True, future=future)
        return {"frames": batch["frames"].cpu(), "prediction": prediction.cpu(),
                "filters": None if filters is None else filters.cpu(), "index": batch["index"].cpu()}

    def _log_curves(self, prefix: str, curves: FrameCurves, readout: ReadoutScores) -> dict[str, list[float]]:
        """Logs ``<prefix>/<metric>`` (mean over predicted frames) and the read-out scores, if any;
        returns the curves."""
        values = curves.compute()
        for name in NAMES:
            self.log(f"{prefix}/{name}", values[name].mean().float())
        if readout.update_called:
            for name, value in readout.compute().items():
                self.log(f"{prefix}/{name}", value)
            values.update(readout.flow_curves())
        curves.reset()
        readout.reset()
        return {name: v.tolist() for name, v in values.items()}

    def on_validation_epoch_end(self) -> None:
        self._log_curves("val", self.val_curves, self.val_readout)

    def on_test_epoch_end(self) -> None:
        """One set of numbers per test dataloader: ``test/...`` for the first, ``test<k>/...`` next."""
        self._test_report = [self._log_curves("test" if k == 0 else f"test{k}", curves, readout)
                             for k, (curves, readout) in enumerate(zip(self.test_curves, self.test_readouts))]
