"""Run-level callbacks of the harness: the W&B run id in checkpoints, and run-config saving."""
from __future__ import annotations

import os
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
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


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""


class StopOnNonFiniteLoss(Callback):
    """Stops training before a NaN / inf loss reaches the weights (checked ahead of backward), so
    the checkpoints on disk stay the last good ones; the error names the step and the way back."""

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: Any) -> None:
        if not bool(loss.isfinite().all()):
            last = getattr(trainer.checkpoint_callback, "last_model_path", "") or "none saved yet"
            raise NonFiniteLoss(
                f"training loss is {loss.item()} at step {trainer.global_step} (epoch "
                f"{trainer.current_epoch}); training stopped before the update, checkpoints are "
                f"untouched (last: {last}). Resume with --ckpt_path last and a lower learning rate, "
                "or check the data for NaNs.")


class LastCheckpoint(ModelCheckpoint):
    """Writes ``last.ckpt`` every ``every_n_train_steps`` steps and once more when training ends
    between two of them (``max_time`` reached, ``max_steps`` not a multiple), so a stopped run
    keeps its last steps."""

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.global_step != self._last_global_step_saved:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
