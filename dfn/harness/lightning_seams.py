"""Every private Lightning and W&B member dfn uses, behind public names, in this one module.

Lightning has no public form for these (checked against lightning 2.6.0 and 2.6.6 and wandb
0.17.0 and 0.31.0, the two ends CI tests: README, "Tested ranges"). When a release renames one,
this module is the only place to change, and the suite fails here first:

* :class:`CheckpointSeams` and :func:`save_schedule`: ``ModelCheckpoint``'s save schedule, the
  step it last saved, whether a save waits for the next validation, its monitor candidates and
  its ``last.ckpt`` writer.
* :class:`CLISeams`: ``LightningCLI``'s subcommand parsers, its checkpoint-path parsing and its
  subcommand runner, as overridable public methods.
* :func:`option_strings`, :func:`wandb_run_started`, :func:`drop_unset_anonymous`: a parser's
  options, whether a ``WandbLogger`` has started its run, and its deprecated ``anonymous`` setting.
"""
from __future__ import annotations

from typing import Any, Optional

from jsonargparse import ArgumentParser
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import WandbLogger
from torch import Tensor


class CheckpointSeams(ModelCheckpoint):
    """``ModelCheckpoint`` with public names for the private members dfn's writers need;
    subclasses override :meth:`monitor_candidates` and :meth:`save_last_checkpoint`."""

    @property
    def last_step_saved(self) -> int:
        """The global step of this callback's latest save."""
        return self._last_global_step_saved

    @property
    def save_waits_for_validation(self) -> bool:
        """Whether a due save waits for the monitored metric of the next validation."""
        return self._defer_save_until_validation

    @save_waits_for_validation.setter
    def save_waits_for_validation(self, value: bool) -> None:
        self._defer_save_until_validation = value

    def monitor_candidates(self, trainer: Trainer) -> dict[str, Tensor]:
        """The metrics a save can monitor and name its file with."""
        return ModelCheckpoint._monitor_candidates(self, trainer)

    def save_last_checkpoint(self, trainer: Trainer, monitor_candidates: dict[str, Tensor]) -> None:
        """Write ``last.ckpt`` now."""
        ModelCheckpoint._save_last_checkpoint(self, trainer, monitor_candidates)

    def _monitor_candidates(self, trainer: Trainer) -> dict[str, Tensor]:
        return self.monitor_candidates(trainer)

    def _save_last_checkpoint(self, trainer: Trainer, monitor_candidates: dict[str, Tensor]) -> None:
        self.save_last_checkpoint(trainer, monitor_candidates)


class CLISeams(LightningCLI):
    """``LightningCLI`` whose private steps are public methods a subclass overrides:
    :meth:`add_subcommands`, :meth:`check_ckpt_path` and :meth:`run_subcommand`."""

    def add_subcommands(self, parser: LightningArgumentParser, **kwargs: Any) -> None:
        """Add the ``fit|validate|test|predict`` parsers (LightningCLI's by default)."""
        LightningCLI._add_subcommands(self, parser, **kwargs)

    def subcommand_parser(self, stage: str, **kwargs: Any) -> LightningArgumentParser:
        """A parser of the trainer's ``stage`` method's arguments (``kwargs``: the parser's)."""
        return self._prepare_subcommand_parser(Trainer, stage, **kwargs)

    def keep_subcommand_parsers(self, parsers: dict[str, LightningArgumentParser]) -> None:
        """Record the stage parsers as LightningCLI keeps them."""
        self._subcommand_parsers = parsers

    def stage_parser(self, stage: str) -> Optional[LightningArgumentParser]:
        """The parser of ``stage``, once the subcommands exist (none with ``run=False``)."""
        return getattr(self, "_subcommand_parsers", {}).get(stage)

    def check_ckpt_path(self) -> None:
        """What LightningCLI does with ``--ckpt_path`` before building the objects."""
        LightningCLI._parse_ckpt_path(self)

    def run_subcommand(self, subcommand: str) -> None:
        """Run the trainer's ``subcommand`` method."""
        LightningCLI._run_subcommand(self, subcommand)

    def _add_subcommands(self, parser: LightningArgumentParser, **kwargs: Any) -> None:
        self.add_subcommands(parser, **kwargs)

    def _parse_ckpt_path(self) -> None:
        self.check_ckpt_path()

    def _run_subcommand(self, subcommand: str) -> None:
        self.run_subcommand(subcommand)


def save_schedule(callback: ModelCheckpoint) -> dict[str, Any]:
    """``every_n_train_steps`` and ``train_time_interval`` of ``callback`` as configured."""
    return {"every_n_train_steps": callback._every_n_train_steps,
            "train_time_interval": callback._train_time_interval}


def option_strings(parser: ArgumentParser) -> list[str]:
    """Every option ``parser`` accepts (``--trainer.max_steps``, ...)."""
    return [option for action in parser._actions for option in action.option_strings]


def wandb_run_started(logger: WandbLogger) -> bool:
    """Whether ``logger`` has started its W&B run (reading ``logger.experiment`` would start one)."""
    return logger._experiment is not None


def drop_unset_anonymous(logger: WandbLogger) -> None:
    """Drop ``anonymous=None`` from the settings ``logger`` will start W&B with: the setting is
    deprecated and wandb warns whenever it is passed, even unset."""
    if logger._wandb_init.get("anonymous", False) is None:
        del logger._wandb_init["anonymous"]
