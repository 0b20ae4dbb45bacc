"""Run-level callbacks of the harness: the W&B run id in checkpoints, the checkpoints as a W&B
artifact, run-config saving, the checkpoint writers (best and ``last.ckpt``), the NaN / inf stop
and the bfloat16 hint."""
from __future__ import annotations

import os
import sys
from typing import Any, Optional

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import Tensor

from dfn.callbacks.outputs import run_folder
from dfn.harness.checkpoint_info import read_checkpoint
from dfn.harness.lightning_seams import CheckpointSeams
from dfn.ops.profiling import cpu_name, native_bf16


class WandbRunId(Callback):
    """Stores the W&B run id in every checkpoint, so that a resumed fit continues the same run."""

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                checkpoint["wandb_run_id"] = logger.version


class CheckpointArtifacts(Callback):
    """When a fit ends, logs its checkpoints (``last.ckpt`` and the best files of every checkpoint
    callback) to each W&B logger as one artifact, ``checkpoints-<run id>`` of type ``model``,
    alias ``latest`` (offline runs keep it for ``wandb sync``), so a run on a cluster can be
    fetched and tested elsewhere. A fit stopped by SIGTERM logs them when its resumed fit ends."""

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        files = sorted({path for callback in trainer.checkpoint_callbacks
                        for path in (callback.last_model_path, callback.best_model_path, *callback.best_k_models)
                        if path and os.path.isfile(path)})
        loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        if not files or not loggers or not trainer.is_global_zero:
            return
        import wandb
        for logger in loggers:
            artifact = wandb.Artifact(f"checkpoints-{logger.version}", type="model",
                                      metadata={"global_step": trainer.global_step})
            for path in files:
                artifact.add_file(path, name=os.path.basename(path))
            logger.experiment.log_artifact(artifact, aliases=["latest"])


class RunConfigSaver(SaveConfigCallback):
    """Saves the config a run used in its run directory, whatever the logger (a CSV or
    TensorBoard logger's ``version_<n>/`` folder is not where ``test --config <run_dir>/config.yaml``
    looks): ``config.yaml``, and for each later command in the same run directory (a resume, a
    test, a predict) ``config.<stage>.<n>.yaml``, so that nothing already written is overwritten.
    Written through Lightning's public ``save_config`` hook (rank zero only)."""

    def __init__(self, parser, config, **kwargs: Any) -> None:
        super().__init__(parser, config, **{**kwargs, "save_to_log_dir": False})

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        folder = run_folder(trainer, "")
        name, n = self.config_filename, 0
        while (folder / name).exists():
            n += 1
            name = f"config.{getattr(stage, 'value', stage)}.{n}.yaml"
        folder.mkdir(parents=True, exist_ok=True)
        self.parser.save(self.config, str(folder / name), skip_none=False, multifile=self.multifile)


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""


def last_good_checkpoint(trainer: Trainer) -> str:
    """``<path> (step N)`` of the newest ``last.ckpt`` this fit wrote or resumed from, or a note
    that there is none yet."""
    for callback in trainer.checkpoint_callbacks:
        path = getattr(callback, "last_model_path", "")
        if path and os.path.isfile(path):
            return f"{path} (step {read_checkpoint(path)['global_step']})"
    return "none yet: nothing was saved before this step"


class StopOnNonFiniteLoss(Callback):
    """Stops training before a NaN / inf loss reaches the weights (checked ahead of backward), so
    the checkpoints on disk stay the last good ones; the error names the step, the checkpoint
    that holds the last good state, and how to resume it with another learning rate."""

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: Any) -> None:
        if not bool(loss.isfinite().all()):
            raise NonFiniteLoss(
                f"training loss is {loss.item()} at step {trainer.global_step} (epoch "
                f"{trainer.current_epoch}); training stopped before the update. Last good state: "
                f"{last_good_checkpoint(trainer)}. Resume it with a lower learning rate: "
                "--ckpt_path last --model.init_args.optimizer_overrides '{lr: 1e-4}' (or check the data for NaNs).")


class Bf16Hint(Callback):
    """A float32 fit on a CPU with native bfloat16 (AVX512-BF16, AMX or ARM BF16) says once, when
    training starts, that bf16-mixed is the faster choice there (README, 'Precision')."""

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if (trainer.strategy.root_device.type == "cpu" and str(trainer.precision).startswith("32")
                and native_bf16() and trainer.is_global_zero):
            print(f"dfn: this CPU ({cpu_name()}) has native bfloat16: --trainer.precision bf16-mixed "
                  "trains about twice as fast and learns as well (README, 'Precision')", file=sys.stderr)


class RunCheckpoint(CheckpointSeams):
    """``ModelCheckpoint`` whose resumed runs keep the checkpoints a straight run keeps.

    * The latest value of the monitored metric, and whether a save waits for the next validation,
      are saved with its state. Lightning forgets both on resume, so the first saves after a
      resume would differ from the straight run's (other best files, two "best" files with
      ``save_top_k: 1``).
    * It follows its run directory: when a run directory was copied or moved and is resumed from
      its new place, the paths it remembers (best, top k, last) move into the new folder, so best
      tracking continues and ``last.ckpt`` is replaced instead of a ``last-v1.ckpt`` beside it.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._trainer: Optional[Trainer] = None
        self._restored_monitored: Optional[Tensor] = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.monitor is not None and self._trainer is not None:
            value = self._trainer.callback_metrics.get(self.monitor, self._restored_monitored)
            state["monitored_value"] = None if value is None else value.detach().cpu()
        state["defer_save_until_validation"] = self.save_waits_for_validation
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restored_monitored = state_dict.get("monitored_value")
        self.save_waits_for_validation = state_dict.get("defer_save_until_validation", False)
        old = state_dict.get("dirpath")
        if old is None or self.dirpath is None or os.path.abspath(old) == os.path.abspath(self.dirpath):
            return super().load_state_dict(state_dict)

        def moved(path: str) -> str:
            if not path or os.path.dirname(os.path.abspath(path)) != os.path.abspath(old):
                return path
            return os.path.join(self.dirpath, os.path.basename(path))

        state = {**state_dict, "dirpath": self.dirpath,
                 "best_k_models": {moved(k): v for k, v in state_dict.get("best_k_models", {}).items()}}
        for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
            if key in state_dict:
                state[key] = moved(state_dict[key])
        super().load_state_dict(state)

    def monitor_candidates(self, trainer: Trainer) -> dict[str, Tensor]:
        candidates = super().monitor_candidates(trainer)
        if self.monitor is not None and self.monitor not in candidates and self._restored_monitored is not None:
            candidates[self.monitor] = self._restored_monitored.to(trainer.strategy.root_device)
        return candidates


class LastCheckpoint(RunCheckpoint):
    """Writes ``last.ckpt`` every ``every_n_train_steps`` steps, once more when training ends
    between two of them (``max_time`` reached, ``max_steps`` not a multiple), and when the process
    is asked to stop (SIGTERM, as a cluster preempts a job, or Ctrl-C, which the CLI turns into
    one): Lightning stops at the end of the current step, and that step is saved. So a stopped
    run keeps its last steps. It always replaces ``last.ckpt`` (no ``last-v1.ckpt``).

    When the other checkpoint callbacks change their best files after ``last.ckpt`` was written
    for the same step (a best save waits for the validation that follows the step), it is
    written again, so that a resume knows the best files that exist."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(enable_version_counter=False, **kwargs)
        self._best_files_saved: Optional[list[tuple[str, list[str]]]] = None

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if (trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking
                and trainer.global_step == self.last_step_saved
                and self._best_files(trainer) != self._best_files_saved):
            self.save_last_checkpoint(trainer, self.monitor_candidates(trainer))

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._save_if_behind(trainer)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException) and trainer.state.fn == TrainerFn.FITTING:
            self._save_if_behind(trainer)

    def save_last_checkpoint(self, trainer: Trainer, monitor_candidates: dict[str, Tensor]) -> None:
        self._best_files_saved = self._best_files(trainer)
        super().save_last_checkpoint(trainer, monitor_candidates)

    def _best_files(self, trainer: Trainer) -> list[tuple[str, list[str]]]:
        return [(c.best_model_path, sorted(c.best_k_models)) for c in trainer.checkpoint_callbacks if c is not self]

    def _save_if_behind(self, trainer: Trainer) -> None:
        if trainer.global_step != self.last_step_saved:
            self.save_last_checkpoint(trainer, self.monitor_candidates(trainer))
