"""Run-level callbacks of the harness: the W&B run id in checkpoints, and run-config saving."""
from __future__ import annotations

import os
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger


class WandbRunId(Callback):
    """Stores the W&B run id in every checkpoint, so that a resumed fit continues the same run."""

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                checkpoint["wandb_run_id"] = logger.version


class RunConfigSaver(SaveConfigCallback):
    """Saves the config a run used beside its outputs: ``config.yaml``, and for each later
    command in the same run directory (a resume, a test, a predict) ``config.<stage>.<n>.yaml``,
    so that nothing already written is overwritten."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        log_dir = trainer.log_dir
        if log_dir is not None and trainer.is_global_zero:
            n = 0
            while os.path.exists(os.path.join(log_dir, self.config_filename)):
                n += 1
                self.config_filename = f"config.{getattr(stage, 'value', stage)}.{n}.yaml"
        super().setup(trainer, pl_module, stage)
