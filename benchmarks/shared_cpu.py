"""A shared CPU: one steerable fit alone, then two started together, with dfn's defaults and as
before them (OpenMP's own wait policy and thread count). Prints JSON.

    python benchmarks/shared_cpu.py [--steps 500] [--repeats 2]

"before" runs the CLI without ``python -m dfn``'s start-up (``from dfn.harness.cli import main``), so the
OpenMP runtime keeps its defaults; "dfn" is ``python -m dfn`` as a user runs it. Run it on an
otherwise idle machine: it measures contention between its own processes.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = {"dfn": [sys.executable, "-m", "dfn"],
          "before": [sys.executable, "-c", "import sys; from dfn.harness.cli import main; main(sys.argv[1:])"]}


def fits(launch: list[str], steps: int, count: int, folder: Path) -> float:
    """Wall seconds until all ``count`` fits, started together, have finished."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    env["WANDB_MODE"] = "disabled"
    start = time.perf_counter()
    jobs = [subprocess.Popen([*launch, "fit", "--config", "configs/steerable.yaml", "--run_dir",
                              str(folder / f"run{time.monotonic_ns()}_{i}"), "--trainer.max_steps", str(steps),
                              "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                              "--trainer.enable_model_summary", "false"],
                             cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for i in range(count)]
    for job in jobs:
        _, err = job.communicate()
        if job.returncode != 0:
            raise RuntimeError(err[-2000:])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=2, help="the best of this many runs of each case")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, launch in LAUNCH.items():
            alone = min(fits(launch, args.steps, 1, Path(folder)) for _ in range(args.repeats))
            two = min(fits(launch, args.steps, 2, Path(folder)) for _ in range(args.repeats))
            results[name] = {"one_alone_s": round(alone, 2), "two_at_once_s": round(two, 2),
                             "slowdown": round(two / alone, 2)}
    print(json.dumps({"benchmark": "shared_cpu", "steps": args.steps, "repeats": args.repeats,
                      "cpus": os.cpu_count(), "torch": torch.__version__, "machine": platform.processor(),
                      "results": results,
                      "dfn_alone_vs_before": round(results["dfn"]["one_alone_s"] / results["before"]["one_alone_s"], 3)},
                     indent=2))


if __name__ == "__main__":
    main()
