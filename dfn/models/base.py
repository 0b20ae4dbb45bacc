"""What every dfn LightningModule shares: injected optimizer / scheduler, and checkpoint identity.

Subclasses take ``net: nn.Module`` plus their science arguments, call
``super().__init__(optimizer, scheduler)`` and ``self.save_hyperparameters(ignore=["net"])``.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Optional, Union

import torch
from lightning.pytorch import LightningModule
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from dfn.errors import CheckpointMismatch, ConfigError

__all__ = ["COMPILE_MODES", "CheckpointMismatch", "CompileMode", "ConfigError", "DFNModule", "adam"]

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
CompileMode = Union[bool, str]
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
SchedulerFactory = Callable[[Optimizer], LRScheduler]


def adam(params: Iterable[nn.Parameter]) -> Optimizer:
    """The default optimizer: Adam, learning rate 1e-3 (as the paper's released code)."""
    return torch.optim.Adam(params, lr=1e-3)


class DFNModule(LightningModule):
    """Base LightningModule.

    Args:
        optimizer: ``params -> Optimizer`` (LightningCLI: ``class_path: torch.optim.Adam``).
        scheduler: ``optimizer -> LRScheduler``, stepped every ``scheduler_interval``.
        scheduler_interval: ``"step"`` or ``"epoch"``.
        compile: compile the network with ``torch.compile`` when fitting (``nn.Module.compile``,
            in place, so checkpoints keep their parameter names): ``True`` in its default mode, or
            a mode by name, e.g. ``"reduce-overhead"`` (CUDA graphs on a GPU).
        optimizer_overrides: optimizer hyperparameters set on every parameter group when ``fit``
            starts, *after* a resumed checkpoint restored its optimizer state (which otherwise
            brings back its own learning rate), e.g. ``{lr: 1e-4}`` to resume with a lower one.
            A scheduler continues from the new values.
        channels_last: keep the network's 4-D weights, and so its convolutions' activations, in
            channels-last memory order (NHWC), the order oneDNN's and cuDNN's fast convolutions
            work in; the values (to rounding) and the checkpoints are the same either way (README,
            "Memory layout").
    """

    network_attribute = "net"  # attribute holding the network that `compile` and `channels_last` act on

    def __init__(self, optimizer: OptimizerFactory = adam, scheduler: Optional[SchedulerFactory] = None,
                 scheduler_interval: str = "step", compile: CompileMode = False,
                 optimizer_overrides: Optional[dict[str, Any]] = None, channels_last: bool = True) -> None:
        super().__init__()
        if not isinstance(compile, bool) and compile not in COMPILE_MODES:
            raise ConfigError(f"model.compile must be true, false or a torch.compile mode "
                              f"({', '.join(COMPILE_MODES)}), got {compile!r}")
        self.compile_network, self.channels_last = compile, channels_last
        if scheduler_interval not in ("step", "epoch"):
            raise ConfigError(f"model.scheduler_interval must be 'step' or 'epoch', got {scheduler_interval!r}")
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.scheduler_interval = scheduler_interval
        self.optimizer_overrides = dict(optimizer_overrides or {})

    def test_report(self) -> Optional[list[dict[str, list[float]]]]:
        """Per-step curves of the last ``test``, one dict per test set, for the results file
        (:class:`dfn.callbacks.TestResultsWriter`); ``None`` where a model has none."""
        return None

    def setup(self, stage: str) -> None:
        network = getattr(self, self.network_attribute)
        if self.channels_last:
            network.to(memory_format=torch.channels_last)
        if self.compile_network and stage == "fit":
            mode = None if self.compile_network is True else self.compile_network
            network.compile(mode=mode)

    def check_optimizer(self) -> None:
        """Build the optimizer once on this model's parameters, so bad values fail at start-up."""
        try:
            optimizer = self.optimizer_factory(self.parameters())
            if self.scheduler_factory is not None:
                self.scheduler_factory(optimizer)
        except (ValueError, TypeError, KeyError) as error:
            reason = str(error.args[0] if isinstance(error, KeyError) else error).splitlines()[0].rstrip(".")
            hint = ("a positive learning rate: --model.init_args.optimizer.init_args.lr 1e-3" if "learning rate" in reason
                    else "the value under --model.init_args.optimizer or --model.init_args.scheduler")
            raise ConfigError(f"model.optimizer / model.scheduler: {reason}. Use {hint}") from error

    def configure_optimizers(self) -> Any:
        if not any(p.requires_grad for p in self.parameters()):
            raise ConfigError(f"{type(self).__name__} has no parameters to train here (e.g. the copy-last "
                              "baseline); evaluate it with `python -m dfn test` and the same configs "
                              "instead of fit")
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval}}

    def on_train_start(self) -> None:
        """Apply ``optimizer_overrides`` (after Lightning restored a checkpoint's optimizer)."""
        overrides = self.optimizer_overrides
        if not overrides:
            return
        for optimizer in self.trainer.optimizers:
            unknown = sorted(set(overrides) - set(optimizer.param_groups[0]))
            if unknown:
                raise ConfigError(f"model.optimizer_overrides: {type(optimizer).__name__} has no "
                                  f"hyperparameter {unknown[0]!r} (it has "
                                  f"{sorted(k for k in optimizer.param_groups[0] if k != 'params')})")
            old_lrs = [group["lr"] for group in optimizer.param_groups]
            for group in optimizer.param_groups:
                group.update(overrides)
            if "lr" not in overrides:
                continue
            for config in self.trainer.lr_scheduler_configs:   # closed-form schedules scale from base_lrs
                if config.scheduler.optimizer is optimizer and hasattr(config.scheduler, "base_lrs"):
                    config.scheduler.base_lrs = [base * overrides["lr"] / old if old else overrides["lr"]
                                                 for base, old in zip(config.scheduler.base_lrs, old_lrs)]

    def checkpoint_identity(self) -> dict[str, Any]:
        """What a checkpoint must match: the model class and every parameter's name and shape."""
        return {"model": type(self).__qualname__,
                "parameters": {k: tuple(v.shape) for k, v in self.state_dict().items()}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["dfn_model"] = self.checkpoint_identity()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.check_fits(checkpoint)

    def check_fits(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint of another model with one clear error instead of a key dump (the
        CLI calls this before a run starts, so a refused checkpoint leaves nothing behind)."""
        written, ours = checkpoint.get("dfn_model"), self.checkpoint_identity()
        if written is None:
            written = {"model": "unknown (not written by dfn)",
                       "parameters": {k: tuple(v.shape) for k, v in checkpoint.get("state_dict", {}).items()}}
        if written == ours:
            return
        theirs, mine = written["parameters"], ours["parameters"]
        differ = sorted(k for k in theirs.keys() | mine.keys() if theirs.get(k) != mine.get(k))
        first = differ[0] if differ else ""
        raise CheckpointMismatch(
            f"checkpoint of {written['model']} does not fit the configured {ours['model']} ({len(differ)} "
            f"parameters differ, e.g. {first} {theirs.get(first, 'absent')} there, {mine.get(first, 'absent')} "
            "here): use this experiment's checkpoint or the config.yaml of its run directory"
        )
