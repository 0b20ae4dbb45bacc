"""Helpers for benchmarks that drive ``python -m dfn`` as a user runs it."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def dfn(*args: str) -> None:
    """Run ``python -m dfn ARGS`` from the repository root with W&B off; exit with its stderr if it fails."""
    env = {**os.environ, "WANDB_MODE": "disabled"}
    done = subprocess.run([sys.executable, "-m", "dfn", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"python -m dfn {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def metric_series(run: Path, metric: str) -> list[tuple[int, float]]:
    """``(step, value)`` of ``metric`` from the run's CSV logger, in logging order."""
    rows = list(csv.DictReader(open(next(run.glob("**/metrics.csv")))))
    return [(int(r["step"]), float(r[metric])) for r in rows if r.get(metric)]
