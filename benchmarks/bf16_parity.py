"""Does bf16-mixed training learn as well as float32? The same fit (same config, seed and data)
in both precisions, for every seed given, through ``python -m dfn fit`` as a user runs it; prints
JSON with the validation curves, seconds per step, and the bf16-float32 gap beside the
run-to-run spread (the float32 gap between seeds).

    python benchmarks/bf16_parity.py --steps 300 --val-every 50 --seeds 1234 4321 \\
        --set=--data.init_args.batch_size=8 --curves results/bf16_parity_moving_mnist.png \\
        > results/bf16_parity_moving_mnist.json

Default: Moving MNIST (``configs/moving_mnist.yaml``, metric ``val/bce``). ``--config`` and
``--metric`` choose another experiment. Run it alone on the machine: it also times the steps.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cli_runs import dfn, metric_series
from dfn.ops.profiling import machine, native_bf16
from dfn.pictures.curves import line_chart
from dfn.pictures.viz import save_png

PRECISIONS = ("32-true", "bf16-mixed")


def fit(config: list[str], run: Path, seed: int, precision: str, steps: int, val_every: int) -> float:
    """Fit ``steps`` steps into ``run``; the wall seconds per step, validation included."""
    started = time.time()
    dfn("fit", *config, "--run_dir", str(run), "--seed_everything", str(seed),
        "--trainer.precision", precision, "--trainer.max_steps", str(steps), "--trainer.max_time", "null",
        "--trainer.val_check_interval", str(val_every), "--trainer.log_every_n_steps", "1",
        "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(run),
        "--trainer.enable_progress_bar", "false")
    return (time.time() - started) / steps


def largest_gap(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> float:
    """Largest ``|a - b|`` over the steps both curves hold."""
    other = dict(b)
    return max(abs(value - other[step]) for step, value in a if step in other)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", action="append", help="experiment config(s) (default configs/moving_mnist.yaml)")
    parser.add_argument("--metric", default="val/bce", help="the validation metric compared (default val/bce)")
    parser.add_argument("--steps", type=int, default=300, help="training steps per run")
    parser.add_argument("--val-every", type=int, default=50, help="validation interval in steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1234, 4321], help="one pair of runs per seed")
    parser.add_argument("--set", action="append", default=[], metavar="--KEY=VALUE", help="extra config override")
    parser.add_argument("--curves", type=Path, help="also write the curves as a PNG here")
    parser.add_argument("--work", type=Path, help="folder for the runs (default: a temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="dfn_bf16_"))
    config = [a for path in (args.config or ["configs/moving_mnist.yaml"]) for a in ("--config", path)]
    config += [a for s in args.set for a in s.split("=", 1)]
    runs = {}
    for seed, precision in itertools.product(args.seeds, PRECISIONS):
        run = work / f"seed{seed}_{precision}"
        seconds = fit(config, run, seed, precision, args.steps, args.val_every)
        runs[f"seed {seed}, {precision}"] = {"seed": seed, "precision": precision, "seconds_per_step": seconds,
                                             args.metric: metric_series(run, args.metric),
                                             "train/loss": metric_series(run, "train/loss")[::10]}
    curves = {name: run[args.metric] for name, run in runs.items()}
    bf16_gap = {seed: largest_gap(curves[f"seed {seed}, 32-true"], curves[f"seed {seed}, bf16-mixed"])
                for seed in args.seeds}
    float32 = [curves[f"seed {seed}, 32-true"] for seed in args.seeds]
    spread = max((largest_gap(a, b) for a, b in itertools.combinations(float32, 2)), default=None)
    finals = {name: curve[-1][1] for name, curve in curves.items()}
    speed = {p: float(np.mean([r["seconds_per_step"] for r in runs.values() if r["precision"] == p]))
             for p in PRECISIONS}
    if args.curves:
        save_png(line_chart(curves, f"{args.metric}: float32 and bf16-mixed"), args.curves)
    print(json.dumps({
        "command": "python benchmarks/bf16_parity.py " + " ".join(sys.argv[1:]),
        "config": config, "metric": args.metric, "steps": args.steps, "native_bf16": native_bf16(),
        "final": finals, "largest_bf16_gap_same_seed": bf16_gap, "largest_float32_gap_between_seeds": spread,
        "seconds_per_step": speed, "float32_over_bf16_time": speed["32-true"] / speed["bf16-mixed"],
        "runs": runs, "machine": machine(),
    }, indent=1))


if __name__ == "__main__":
    main()
