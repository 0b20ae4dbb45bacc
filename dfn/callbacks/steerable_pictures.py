"""Steerable-filter pictures: Figure 4 after each validation, and the PNG filter writer of `predict`."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from dfn.contracts import SteerableHeldOut, check
from dfn.callbacks.outputs import check_not_overwriting, publish_picture, run_folder
from dfn.evaluation.analytic_steerable import steerable_filters
from dfn.pictures.viz import filter_image, save_png, steerable_figure


class FilterPNGWriter(BasePredictionWriter):
    """Writes each predicted filter as a PNG: ``<output_dir>/filter_<angle>deg.png``.

    Expects ``predict_step`` to return ``{"angle": (B,) radians, "filter": (B, k, k)}``. Refuses to
    replace existing files unless ``overwrite`` is set; checks all names before writing any.

    Args:
        output_dir: destination folder (created if missing); default ``<run_dir>/predictions``.
        overwrite: replace files that already exist.
        scale: pixels per filter tap in the PNG.
    """

    def __init__(self, output_dir: Optional[str] = None, overwrite: bool = False, scale: int = 16) -> None:
        super().__init__(write_interval="batch")
        self.output_dir, self.overwrite, self.scale = output_dir, overwrite, scale

    def folder(self, trainer: Trainer) -> Path:
        return Path(self.output_dir) if self.output_dir else run_folder(trainer, "predictions")

    def paths(self, folder: Path, angles: Sequence[float]) -> list[Path]:
        return [folder / f"filter_{math.degrees(a) % 360:06.2f}deg.png" for a in angles]

    def write_on_batch_end(self, trainer: Trainer, pl_module: LightningModule, prediction: Any,
                           batch_indices: Optional[Sequence[int]], batch: Any, batch_idx: int,
                           dataloader_idx: int) -> None:
        folder = self.folder(trainer)
        paths = self.paths(folder, prediction["angle"].tolist())
        check_not_overwriting(paths, self.overwrite)
        folder.mkdir(parents=True, exist_ok=True)
        for path, filt in zip(paths, prediction["filter"]):
            save_png(filter_image(filt.detach().float().cpu(), scale=self.scale), path)


class SteerableFigure(Callback):
    """After each validation: the paper's Figure 4 (generated vs analytic filters at
    ``angles_deg``, and input / output / target of one held-out example), logged to every logger
    that takes images (W&B) and written to ``<run dir>/figures/steerable_step<N>.png``."""

    def __init__(self, angles_deg: Sequence[float] = (0.0, 45.0, 90.0, 139.2, 180.0, 242.9)) -> None:
        self.angles_deg = list(angles_deg)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        check(trainer.datamodule, SteerableHeldOut, "SteerableFigure draws from the DataModule; the DataModule",
              "use datamodules.SteerableDataModule or drop SteerableFigure from the callbacks")

    def figure(self, trainer: Trainer, pl_module: LightningModule):
        data = trainer.datamodule
        angles = torch.tensor(self.angles_deg, device=pl_module.device) * math.pi / 180
        batch = data.val_batch
        with torch.no_grad():
            generated = pl_module.filters(angles).float().cpu()
            output, _ = pl_module(batch["image"][:1].to(pl_module.device), batch["angle"][:1].to(pl_module.device))
        analytic = steerable_filters(angles.cpu().float(), data.filter_size, data.sigma)
        return steerable_figure(self.angles_deg, generated, analytic, batch["image"][0, 0],
                                output[0, 0].float().cpu(), batch["target"][0, 0])

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        publish_picture(trainer, "val/figure", self.figure(trainer, pl_module),
                        "generated vs analytic filters; input / output / target")
