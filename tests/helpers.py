"""Test helpers importable by class path from the CLI (pytest puts tests/ on sys.path), and the
repository root every test finds configs and scripts by."""
from pathlib import Path

import torch
from lightning.pytorch import Callback

ROOT = Path(__file__).resolve().parents[1]


def output_and_grads(fn, params: list[torch.Tensor], grad_output: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``fn()``'s output and the gradients of ``params`` for the output gradient ``grad_output``."""
    out = fn()
    return (out, *torch.autograd.grad(out, params, grad_output))


def assert_same_weights(run_a: Path, run_b: Path) -> None:
    """The ``last.ckpt`` of two run directories hold the same parameters, bit for bit."""
    a, b = (torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"] for run in (run_a, run_b))
    assert a.keys() == b.keys()
    for name, value in a.items():
        assert torch.equal(value, b[name]), name


class LossRecorder(Callback):
    """Collects (global_step, loss, learning rate) after every training batch."""

    def __init__(self) -> None:
        self.records: list[tuple[int, float, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        self.records.append((trainer.global_step, outputs["loss"].item(), lr))


class PoisonLoss(Callback):
    """Turns the loss of training step ``at_step`` into NaN (the model's forward output)."""

    def __init__(self, at_step: int = 2) -> None:
        self.at_step = at_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.at_step:
            batch["target"] = batch["target"] * float("nan")


class KillDuringCheckpointWrite(Callback):
    """SIGKILLs its own process half-way through writing the checkpoint of step ``at_step``: the
    temporary file holds the first half of the checkpoint's bytes, synced, when the process dies."""

    def __init__(self, at_step: int = 3) -> None:
        self.at_step = at_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step != self.at_step:
            return
        import os
        import signal

        import dfn.atomic

        def half_written_then_die(path):
            os.truncate(path, os.path.getsize(path) // 2)
            fd = os.open(path, os.O_RDONLY)
            os.fsync(fd)
            os.kill(os.getpid(), signal.SIGKILL)

        dfn.atomic._fsync_file = half_written_then_die


class SignalAtStep(Callback):
    """Sends ``signal`` (a name: SIGTERM, SIGINT) to its own process after training step ``at_step``
    (or, with ``in_validation``, after the first validation batch at that step), as a cluster's
    preemption (SIGTERM) or a user's Ctrl-C (SIGINT) would."""

    def __init__(self, signal: str = "SIGTERM", at_step: int = 3, in_validation: bool = False) -> None:
        self.signal, self.at_step, self.in_validation = signal, at_step, in_validation

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.at_step and not self.in_validation:
            self._send()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.global_step == self.at_step and self.in_validation and batch_idx == 0 and not trainer.sanity_checking:
            self._send()

    def _send(self) -> None:
        import os
        import signal
        os.kill(os.getpid(), getattr(signal, self.signal))


class SlurmPreemption(Callback):
    """At step ``at_step``: the SIGUSR1 that SLURM sends before the time limit, then SIGKILL (the
    end of the job), as a preempted SLURM job experiences them."""

    def __init__(self, at_step: int = 3) -> None:
        self.at_step = at_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.at_step:
            import os
            import signal
            os.kill(os.getpid(), signal.SIGUSR1)        # Lightning saves hpc_ckpt and requeues
            os.kill(os.getpid(), signal.SIGKILL)
