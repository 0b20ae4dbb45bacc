"""Test helpers importable by class path from the CLI (pytest puts tests/ on sys.path)."""
from lightning.pytorch import Callback


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
    """SIGKILLs its own process half-way through writing the checkpoint of step ``at_step``."""

    def __init__(self, at_step: int = 3) -> None:
        self.at_step = at_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step != self.at_step:
            return
        import os
        import signal

        from fsspec.implementations.local import LocalFileOpener

        def write_half_then_die(opener, data):
            opener.f.write(bytes(data)[: len(data) // 2])
            opener.f.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        LocalFileOpener.write = write_half_then_die


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
