"""``test`` results on disk: every test metric and per-step curve, as JSON in the run directory."""
from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch import Callback, Trainer

from dfn.callbacks.outputs import run_folder, weights_step
from dfn.models import DFNModule


def free_path(path: Path) -> Path:
    """``path``, or ``<stem>.<n><suffix>`` with the first free ``n``: old results are never replaced."""
    n, candidate = 0, path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
    return candidate


class TestResultsWriter(Callback):
    """After ``test``: ``<run_dir>/test_results_step<N>.json`` with the checkpoint, its step, every
    logged ``test*`` metric and the model's per-step curves (``DFNModule.test_report()``);
    and the metrics as one table (test set x metric) on the console."""

    def on_test_end(self, trainer: Trainer, pl_module: DFNModule) -> None:
        if not trainer.is_global_zero:
            return
        metrics = {key: float(value) for key, value in trainer.callback_metrics.items()
                   if key.split("/")[0].startswith("test")}
        step = weights_step(trainer)
        report = {"checkpoint": trainer.ckpt_path, "global_step": step,
                  "model": type(pl_module).__qualname__, "metrics": metrics,
                  "curves": pl_module.test_report()}
        path = free_path(run_folder(trainer, f"test_results_step{step:07d}.json"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2))
        print(results_table(metrics, step))


def results_table(metrics: dict[str, float], step: int) -> str:
    """One row per test set (``test``, ``test1``, ...), one column per metric."""
    rows: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        test_set, _, name = key.partition("/")
        rows.setdefault(test_set, {})[name or test_set] = value
    columns = sorted({name for row in rows.values() for name in row})
    cells = [[f"test results, step {step}", *columns]]
    cells += [[test_set, *(f"{row[c]:.4g}" if c in row else "" for c in columns)] for test_set, row in sorted(rows.items())]
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(line, widths)))
             for line in cells]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])
