"""Train the steerable-filter experiment on the CPU and measure how close the filters get.

Runs ``python -m dfn fit --config configs/steerable.yaml`` in-process (timed), then compares the
generated filter with the analytic one at the held-out angles (36: 5, 15, ..., 355 degrees) and
prints JSON (cosine similarity per angle, min, mean, wall-clock time); writes the Figure-4 picture.

    python benchmarks/steerable_training.py --run_dir runs/steerable_result \\
        --figure results/steerable_figure4.png --output results/steerable.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time

import torch

from dfn.callbacks import SteerableFigure
from dfn.harness.cli import DfnCLI
from dfn.models.steerable_filter_model import filter_cosine
from dfn.evaluation.analytic_steerable import steerable_filters
from dfn.pictures.viz import save_png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/steerable.yaml")
    parser.add_argument("--run_dir", default="runs/steerable_result")
    parser.add_argument("--figure", default=None, help="where to write the Figure-4 PNG")
    parser.add_argument("--output", default=None, help="also write the JSON to this file")
    parser.add_argument("overrides", nargs="*", help="extra CLI arguments, e.g. --trainer.max_steps 2000")
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "offline")

    start = time.perf_counter()
    cli = DfnCLI(args=["fit", "--config", args.config, "--run_dir", args.run_dir, *args.overrides])
    seconds = time.perf_counter() - start

    model, data = cli.model.eval(), cli.datamodule
    angles = data.held_out_angles()
    with torch.no_grad():
        cos = filter_cosine(model.filters(angles), steerable_filters(angles, data.filter_size, data.sigma))
    if args.figure:
        save_png(SteerableFigure().figure(cli.trainer, model), args.figure)
    report = json.dumps({
        "experiment": "steerable filters (paper 4.1)", "config": args.config,
        "steps": cli.trainer.global_step, "fit_wall_clock_s": round(seconds, 1),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "held_out_angles_deg": [round(math.degrees(a), 2) for a in angles.tolist()],
        "filter_cosine": [round(c, 6) for c in cos.tolist()],
        "filter_cosine_min": cos.min().item(), "filter_cosine_mean": cos.mean().item(),
    }, indent=2)
    print(report)
    if args.output:
        with open(args.output, "w") as f:
            f.write(report + "\n")


if __name__ == "__main__":
    main()
