"""``python -m dfn fit|validate|test|predict --config configs/X.yaml``: LightningCLI for every experiment.

What it adds to LightningCLI:

* ``--run_dir`` (config value): one folder per run holding ``config.yaml``, ``checkpoints/``
  (``last.ckpt`` and the best by ``--checkpoint.monitor``), ``wandb/``, ``figures/`` and, after
  ``test``, ``test_results_step<N>.json``.
* Weights & Biases by default, offline unless ``WANDB_MODE`` or ``WANDB_API_KEY`` is set.
* ``fit --ckpt_path last`` (or a path) resumes the run exactly and continues its W&B run; a fresh
  ``fit`` refuses a run directory that already holds checkpoints instead of overwriting them.
* Checkpoints written whole on any file system (:mod:`dfn.harness.checkpoint_io`); SIGTERM and Ctrl-C
  save the current step before exiting (:mod:`dfn.harness.signals`).
* Clear errors: bad command lines, values, files and checkpoints are one line naming the fix
  (exit status 2, :mod:`dfn.harness.failures`); no prefix of an option is taken for the option.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Optional

from jsonargparse import ArgumentError, Namespace
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_warn

import datamodules  # noqa: F401  (dfn's DataModules and models, listed by --help as known subclasses)
import dfn.models  # noqa: F401
from dfn.harness import help_text, run_summary
from dfn.atomic import remove_partials
from dfn.callbacks import (Bf16Hint, CheckpointArtifacts, LastCheckpoint, RunCheckpoint, RunConfigSaver,
                           StopOnNonFiniteLoss, TestResultsWriter, WandbRunId)
from dfn.harness.checkpoint_info import read_checkpoint
from dfn.harness.checkpoint_io import use_atomic_checkpoints
from dfn.harness.cpu_share import threads_within_quota
from dfn.errors import CheckpointMismatch, ConfigError
from dfn.harness.failures import (check_config_files, explain, readable_parse_error, trainer_setting,
                                  wandb_setting)
from dfn.harness.lightning_seams import (CLISeams, drop_unset_anonymous, option_strings, save_schedule,
                                         wandb_run_started)
from dfn.models.base import DFNModule
from dfn.ops.profiling import cpu_name, native_bf16
from dfn.harness.signals import stop_gracefully_on_interrupt

WANDB_LOGGER = "lightning.pytorch.loggers.WandbLogger"
# every parser: a mistake raises (main prints one line) instead of printing the usage and exiting,
# and no option is taken for a prefix of another (--trainer.max_step is not --trainer.max_steps)
STRICT = {"exit_on_error": False, "allow_abbrev": False}


def default_wandb_mode() -> None:
    """W&B stays offline unless the user asked for something else (a mode or an API key); an
    empty ``WANDB_MODE`` or ``WANDB_API_KEY`` counts as unset (wandb itself refuses an empty mode)."""
    for name in ("WANDB_MODE", "WANDB_API_KEY"):
        if not os.environ.get(name, "").strip():
            os.environ.pop(name, None)
    if "WANDB_MODE" not in os.environ and "WANDB_API_KEY" not in os.environ:
        os.environ["WANDB_MODE"] = "offline"


class _NoAdvertisement(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("💡 Tip")


def silence_library_noise() -> None:
    """Hide what is noise and not the user's to fix: Lightning's LitLogger tip on every run and its
    ``LeafSpec`` deprecation warning (between Lightning and torch). W&B's "anonymous setting has no
    effect" warning is avoided where the logger is made (:meth:`DfnCLI.instantiate_trainer`)."""
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(NO_ADVERTISEMENT)


NO_ADVERTISEMENT = _NoAdvertisement()


class DfnCLI(CLISeams):
    """LightningCLI with dfn's run directory, W&B defaults, checkpointing and resume."""

    def __init__(self, args: Optional[list[str]] = None, run: bool = True) -> None:
        self.new_run_dir: Optional[Path] = None            # made by this command, gone if it fails
        try:
            self._build_and_run(args, run)
        except BaseException:
            if self.new_run_dir is not None and self.new_run_dir.is_dir() and not any(self.new_run_dir.iterdir()):
                self.new_run_dir.rmdir()
            raise

    def _build_and_run(self, args: Optional[list[str]], run: bool) -> None:
        silence_library_noise()
        wandb = {"project": "dfn", "mode": os.environ.get("WANDB_MODE")}   # --print_config shows the real mode
        super().__init__(
            model_class=DFNModule, subclass_mode_model=True,
            datamodule_class=LightningDataModule, subclass_mode_data=True,
            save_config_callback=RunConfigSaver,
            parser_kwargs={"parser_mode": "omegaconf", "prog": "python -m dfn", **STRICT,
                           "description": help_text.MAIN, "formatter_class": help_text.HelpFormatter},
            trainer_defaults={"logger": {"class_path": WANDB_LOGGER, "init_args": wandb},
                              "max_epochs": -1, "use_distributed_sampler": False,
                              "callbacks": [WandbRunId(), CheckpointArtifacts(), StopOnNonFiniteLoss(),
                                            TestResultsWriter(), Bf16Hint()]},
            auto_configure_optimizers=False, args=args, run=run)

    def add_subcommands(self, parser: LightningArgumentParser, **kwargs: Any) -> None:
        """LightningCLI's, with dfn's descriptions (Lightning's are cut mid-sentence), strict
        parsers, and ``test`` printing dfn's results table instead of Lightning's."""
        parsers: dict[str, LightningArgumentParser] = {}
        subcommands = parser.add_subcommands()
        for stage, what in help_text.STAGES.items():
            stage_parser = self.subcommand_parser(
                stage, **STRICT, description=help_text.STAGE.format(what=what),
                formatter_class=help_text.HelpFormatter, parser_mode="omegaconf", prog=f"python -m dfn {stage}",
                usage=f"python -m dfn {stage} --config configs/X.yaml [options]")
            if stage == "test":
                stage_parser.set_defaults(verbose=False)
            parsers[stage] = stage_parser
            subcommands.add_subcommand(stage, stage_parser, help=what)
        self.keep_subcommand_parsers(parsers)

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """LightningCLI's; a mistake becomes one line with "did you mean" for an unknown option
        close to a known one, and where the options are listed."""
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as error:
            stage = next((a for a in (args or sys.argv[1:]) if a in help_text.STAGES), None)
            stage_parser = self.stage_parser(stage) if stage is not None else None   # none with run=False
            message = readable_parse_error(" ".join(str(error).split()))   # jsonargparse's multi-line ones
            unknown = re.findall(r"(--[\w.]+)", message) if "unrecognized arguments" in message else []
            if unknown and stage_parser is not None:
                options = [o for o in option_strings(stage_parser) if o.count(".") == unknown[0].count(".")]
                close = difflib.get_close_matches(unknown[0], options, n=1, cutoff=0.8)
                message += f"; did you mean {close[0]}?" if close else ""
            help_command = " ".join(["python -m dfn", *([stage] if stage else []), "--help"])
            raise ArgumentError(None, f"{message.rstrip('.')} (all options: {help_command})") from error
        config = self.config[self.config.subcommand] if self.config.get("subcommand") else self.config
        seed = config.get("seed_everything")
        if not isinstance(seed, bool) and isinstance(seed, int) and not 0 <= seed < 2 ** 32:
            raise ConfigError(f"--seed_everything {seed}: expected an integer from 0 to {2 ** 32 - 1} "
                              "(or true for a random seed)")

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--run_dir", type=str, default="runs/default",
                            help="Folder of this run: config.yaml, checkpoints/, wandb/, figures/.")
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.filename": "step{step:07d}",
                             "checkpoint.auto_insert_metric_name": False})
        parser.link_arguments("run_dir", "checkpoint.dirpath", compute_fn=lambda d: str(Path(d) / "checkpoints"))
        parser.link_arguments("run_dir", "trainer.default_root_dir")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        run_dir = Path(config.run_dir)
        loggers = config.trainer.logger
        loggers = [logger for logger in (loggers if isinstance(loggers, list) else [loggers])
                   if isinstance(logger, Namespace)]
        # a resumed fit continues its W&B run: the run id stored in the checkpoint
        run_id = _resumed_wandb_run(config.ckpt_path, run_dir) if self.subcommand == "fit" else None
        _data_frames_from_model(config)
        for logger in loggers:
            if logger.init_args.get("save_dir") in (None, "."):   # every logger writes into the run
                logger.init_args.save_dir = str(run_dir)
            if logger.class_path == WANDB_LOGGER and logger.init_args.get("name") is None:
                logger.init_args.name = run_dir.name
            if logger.class_path == WANDB_LOGGER and run_id is not None and logger.init_args.get("id") is None:
                logger.init_args.id = run_id                      # WandbLogger resumes an id ("allow")
        if self.subcommand is None:                        # objects only (run=False): no run, no folders
            return
        if not run_dir.exists():
            self.new_run_dir = run_dir
        _check_writable(run_dir)
        checkpoint_dir = run_dir / "checkpoints"
        if self.subcommand == "fit":
            for folder in (checkpoint_dir, run_dir):      # left by a process killed mid-write
                for path in remove_partials(folder):
                    print(f"dfn: removed {path}, an unfinished write of a killed run", file=sys.stderr)
            self._check_fresh_or_resuming(config, checkpoint_dir)
        if config.ckpt_path == "last" and not (checkpoint_dir / "last.ckpt").is_file():
            use = (" to resume from. Run fit without --ckpt_path first" if self.subcommand == "fit" else
                   f"; {self.subcommand} would run untrained weights. Train first (python -m dfn fit ...)")
            raise ConfigError(f"--ckpt_path last: there is no {checkpoint_dir / 'last.ckpt'}{use}, or "
                              "pass a checkpoint file.")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Adds the ``last.ckpt`` writer: every ``checkpoint.every_n_train_steps`` whether or not
        the monitored metric exists yet (Lightning defers a monitoring checkpoint until it does),
        so a crash loses at most the steps since, and at the end of training (``max_time``).
        The ``checkpoint`` group keeps the best ones."""
        try:
            trainer = super().instantiate_trainer(**kwargs)
        except (ValueError, TypeError, MisconfigurationException) as refused:   # a trainer value
            raise ConfigError(trainer_setting(str(refused))) from refused
        warn_if_emulated_bf16(trainer)
        use_atomic_checkpoints(trainer)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                drop_unset_anonymous(logger)
        best = trainer.checkpoint_callback
        if best is not None:
            best.save_last = False
            trainer.callbacks.append(LastCheckpoint(
                dirpath=best.dirpath, save_top_k=0, save_last=True,
                **save_schedule(best)))
        return trainer

    @staticmethod
    def _check_fresh_or_resuming(config: Namespace, checkpoint_dir: Path) -> None:
        existing = sorted(checkpoint_dir.glob("*.ckpt")) if checkpoint_dir.is_dir() else []
        if config.ckpt_path is None and _slurm_requeue_checkpoint(checkpoint_dir.parent) is not None:
            return   # a requeued SLURM job: Lightning resumes from its hpc checkpoint
        if config.ckpt_path is None and existing:
            raise ConfigError(
                f"run_dir {checkpoint_dir.parent} already holds checkpoints of an earlier run "
                f"({existing[0].name}, ...). Resume it with --ckpt_path last, or start a new run "
                "with another --run_dir; nothing was overwritten.")

    def check_ckpt_path(self) -> None:
        """Replaces LightningCLI's: a checkpoint never silently swaps the configured model for the
        one that wrote it; a checkpoint of another model class is refused with a clear error."""
        if not self.config.get("subcommand"):
            return
        ckpt_path = self.config[self.config.subcommand].get("ckpt_path")
        if not ckpt_path or ckpt_path in ("last", "best"):
            return
        path = Path(ckpt_path)
        if not path.is_file():
            raise ConfigError(f"--ckpt_path {ckpt_path}: no such file. Pass an existing .ckpt "
                              "(e.g. <run_dir>/checkpoints/last.ckpt) or 'last'.")
        written = read_checkpoint(path).get("dfn_model", {}).get("model")
        configured = self.config[self.config.subcommand].model.class_path.rsplit(".", 1)[-1]
        if written is not None and written != configured:
            raise CheckpointMismatch(
                f"checkpoint {path} was written by {written}, but the config builds {configured}. "
                "Use a checkpoint of this experiment, or the config it was trained with "
                "(config.yaml in its run directory).")

    def run_subcommand(self, subcommand: str) -> None:
        """Runs the subcommand, then closes its W&B run (marked failed if the command raised), so
        that the next command in the same process starts its own run, and says what it wrote where."""
        failed = True
        run_dir = Path(self.trainer.default_root_dir)
        before = run_summary.snapshot(run_dir)
        checkpoint = _checkpoint_file(self.config[subcommand].ckpt_path, run_dir)
        if checkpoint is not None and isinstance(self.model, DFNModule):     # before W&B starts a run
            self.model.check_fits(read_checkpoint(checkpoint))
        for logger in self.trainer.loggers:
            if isinstance(logger, WandbLogger):
                start_wandb_run(logger)
        try:
            if subcommand == "fit":
                with stop_gracefully_on_interrupt(self.trainer):
                    super().run_subcommand(subcommand)
            else:
                super().run_subcommand(subcommand)
            failed = False
        finally:
            for logger in self.trainer.loggers:
                if isinstance(logger, WandbLogger) and wandb_run_started(logger):
                    logger.experiment.finish(exit_code=1 if failed else 0)
            outputs = run_summary.written(run_dir, before)
            if not failed and outputs and self.trainer.is_global_zero:
                print(f"dfn: {subcommand} wrote to {outputs}", file=sys.stderr)


def start_wandb_run(logger: WandbLogger) -> None:
    """Starts the logger's W&B run (as Lightning would at the first log) so that a setting W&B
    refuses is one line naming it, before any training."""
    try:
        logger.experiment
    except Exception as refused:          # W&B's own errors: pydantic's ValidationError, wandb's ConfigError
        raise ConfigError(wandb_setting(refused)) from refused


def warn_if_emulated_bf16(trainer: Trainer) -> None:
    """One warning when bfloat16 runs on a CPU that only emulates it (no AVX512-BF16, AMX or ARM
    BF16): there PyTorch's bf16 convolutions are many times slower than float32 (README,
    'Precision')."""
    if (str(trainer.precision).startswith("bf16") and trainer.strategy.root_device.type == "cpu"
            and not native_bf16()):
        rank_zero_warn(f"--trainer.precision {trainer.precision} on this CPU ({cpu_name()}), which "
                       "has no native bfloat16 (AVX512-BF16, AMX or ARM BF16): PyTorch runs its bf16 "
                       "convolutions through a slow fallback (78x slower than float32 on a 2-core AVX2 "
                       "CPU; python benchmarks/bf16_cpu.py measures this one). Use --trainer.precision "
                       "32-true here.")


def _data_frames_from_model(config: Namespace) -> None:
    """``frames_in`` and ``frames_out`` are written once, under ``model``; a DataModule that takes
    them gets the model's. A different value given under ``data`` (not its default) is refused."""
    if not isinstance(config.get("model"), Namespace) or not isinstance(config.get("data"), Namespace):
        return
    model, data = config.model.get("init_args") or Namespace(), config.data.get("init_args")
    module, _, name = config.data.class_path.rpartition(".")
    accepted = inspect.signature(getattr(importlib.import_module(module), name)).parameters
    for key in ("frames_in", "frames_out"):
        if key not in accepted or model.get(key) is None or data is None:
            continue
        given = data.get(key, accepted[key].default)
        if given not in (model[key], accepted[key].default):
            raise ConfigError(f"data.{key} {given} differs from model.{key} {model[key]}: set it once, "
                              f"under model (--model.init_args.{key}); the data follows it")
        data[key] = model[key]


def _checkpoint_file(ckpt_path: Optional[str], run_dir: Path) -> Optional[Path]:
    """The file ``--ckpt_path`` names (``last``: the run's ``last.ckpt``; none given: a requeued
    SLURM job's), if it exists; ``None`` for none or ``best`` (Lightning resolves that one)."""
    if ckpt_path is None:
        path = _slurm_requeue_checkpoint(run_dir)
    elif ckpt_path == "best":
        return None
    else:
        path = run_dir / "checkpoints" / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    return path if path is not None and path.is_file() else None


def _resumed_wandb_run(ckpt_path: Optional[str], run_dir: Path) -> Optional[str]:
    """The W&B run id stored in the checkpoint a fit resumes from (``--ckpt_path last`` or a path,
    or a requeued SLURM job's), else ``None``."""
    path = _checkpoint_file(ckpt_path, run_dir)
    return read_checkpoint(path).get("wandb_run_id") if path is not None else None


def _slurm_requeue_checkpoint(run_dir: Path) -> Optional[Path]:
    """The newest ``hpc_ckpt_<n>.ckpt`` that Lightning's SLURM auto-requeue saved in the run
    directory, when running under SLURM; ``None`` otherwise."""
    if not SLURMEnvironment.detect():
        return None
    saved = sorted(run_dir.glob("hpc_ckpt_*.ckpt"), key=lambda p: int(p.stem.rsplit("_", 1)[-1]))
    return saved[-1] if saved else None


def _check_writable(run_dir: Path) -> None:
    """Fail at start-up, naming the folder, if the run directory cannot be written."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".dfn_write_probe"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"cannot write to run_dir {run_dir}: {error.strerror or error}. Choose a "
                          "writable --run_dir (or free disk space there).") from error


def main(args: Optional[list[str]] = None) -> None:
    """Entry point of ``python -m dfn``: runs the CLI (or ``pack``, :mod:`dfn.footage.pack`); a failure
    ends in one line and an exit status where :func:`dfn.harness.failures.explain` knows it."""
    default_wandb_mode()
    threads_within_quota()
    argv = sys.argv[1:] if args is None else list(args)
    try:
        if argv[:1] == ["pack"]:                      # not a Lightning stage: video / images -> HDF5
            from dfn.footage.pack import main as pack
            pack(argv[1:])
        elif argv[:1] == ["scenes"]:                  # scenes with known geometry from photographs
            from dfn.footage.scenes import main as scenes
            scenes(argv[1:])
        else:
            check_config_files(argv)
            DfnCLI(args=args)
    except Exception as error:
        explained = explain(error)
        if explained is None:
            raise
        line, status = explained
        print(line, file=sys.stderr)
        raise SystemExit(status) from None
