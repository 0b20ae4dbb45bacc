"""Writing pictures and prediction files: to the run directory, to the loggers, never over old files."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from lightning.pytorch import Trainer
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.loggers import WandbLogger

from dfn.harness.checkpoint_info import read_checkpoint
from dfn.errors import ConfigError
from dfn.pictures.viz import save_png


def run_folder(trainer: Trainer, name: str) -> Path:
    """``<run_dir>/<name>``. (``trainer.default_root_dir`` is the run dir; ``trainer.log_dir``
    would be a collective call under DDP and hang code that runs on rank 0 only.)"""
    return Path(trainer.default_root_dir) / name


def weights_step(trainer: Trainer) -> int:
    """The training step of the weights in use: the trainer's while fitting; in validate / test /
    predict from a checkpoint, the checkpoint's (which those stages do not restore)."""
    if trainer.state.fn == TrainerFn.FITTING or not trainer.ckpt_path:
        return trainer.global_step
    return int(read_checkpoint(trainer.ckpt_path)["global_step"])


def check_not_overwriting(paths: Sequence[Path], overwrite: bool) -> None:
    """Raise a ``ConfigError`` naming the first existing file unless ``overwrite``; call it
    before writing anything, so that a refused command leaves no partial output."""
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise ConfigError(
            f"{len(existing)} prediction file(s) already exist, e.g. {existing[0]}; nothing was "
            "written. Choose another output folder or allow replacing them with "
            "--trainer.callbacks.init_args.overwrite true (or overwrite: true in the config).")


def publish_picture(trainer: Trainer, key: str, image: np.ndarray, caption: str) -> Path:
    """Write ``<run_dir>/figures/<key with / as _>_step<N>.png`` (N: :func:`weights_step`) and log
    it to every logger that takes images (W&B); returns the file."""
    path = run_folder(trainer, "figures") / f"{key.replace('/', '_')}_step{weights_step(trainer):07d}.png"
    save_png(image, path)
    for logger in trainer.loggers:
        if hasattr(logger, "log_image"):
            logger.log_image(key, [image], step=trainer.global_step, caption=[caption])
    return path


def publish_gif(trainer: Trainer, key: str, path: Path) -> None:
    """Log a GIF already written to ``path`` to the W&B loggers."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            import wandb
            logger.experiment.log({key: wandb.Video(str(path), format="gif"),
                                   "trainer/global_step": trainer.global_step})
