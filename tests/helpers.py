"""Test helpers importable by class path from the CLI (pytest puts tests/ on sys.path)."""
from lightning.pytorch import Callback


class LossRecorder(Callback):
    """Collects (global_step, loss, learning rate) after every training batch."""

    def __init__(self) -> None:
        self.records: list[tuple[int, float, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        self.records.append((trainer.global_step, outputs["loss"].item(), lr))
