"""Memory and time per training step at 64, 128 and 256 px: highway driving, stereo (the paper's
left-view net) and binocular stereo, each as committed (``configs/``, ``configs/sizes/``).

    python benchmarks/frame_sizes.py [--steps 3] [--out results/frame_sizes.json]

Data: generated scenes (``python -m dfn scenes``) packed at 256 px, so every size reads the same
file. Each configuration runs in its own process: one warm-up step, then ``--steps`` timed
training steps (forward, loss, backward, Adam) at the config's batch size; memory is the peak
resident set of that process (``ru_maxrss``) and what it grew by during the steps. Prints JSON.
Run it alone on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dfn.ops.profiling import cpu_name

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = {
    "highway": ["configs/highway.yaml"],
    "stereo": ["configs/stereo.yaml"],
    "binocular": ["configs/stereo.yaml", "configs/stereo_binocular.yaml"],
}


def configs(experiment: str, size: int) -> list[str]:
    files = EXPERIMENTS[experiment] + ([f"configs/sizes/{experiment}_{size}.yaml"] if size != 64 else [])
    return [arg for f in files for arg in ("--config", str(ROOT / f))]


def measure(experiment: str, size: int, data: str, steps: int) -> dict:
    """One configuration in this process: the numbers for :func:`main`."""
    import torch
    from dfn.harness.cli import DfnCLI
    cli = DfnCLI(args=[*configs(experiment, size), "--data.init_args.path", data, "--trainer.logger", "false"],
                 run=False)
    model, batch = cli.model, next(iter(cli.datamodule.train_dataloader()))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        optimizer.zero_grad()
        model.training_step(batch, 0).backward()
        optimizer.step()

    step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"experiment": experiment, "size": size, "batch_size": int(batch["frames"].shape[0]),
            "filter_window": list(model.filter_window), "parameters": sum(p.numel() for p in model.parameters()),
            "seconds_per_step": round(seconds, 3), "peak_rss_mb": round(peak / 1024, 1),
            "rss_growth_during_steps_mb": round((peak - before) / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per configuration (default 3)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--one", nargs=3, metavar=("EXPERIMENT", "SIZE", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.one[2], args.steps)))
        return
    work = Path(tempfile.mkdtemp(prefix="dfn_sizes_"))
    dfn = [sys.executable, "-m", "dfn"]
    quiet = {"capture_output": True, "check": True, "cwd": ROOT}
    subprocess.run([*dfn, "scenes", "stereo", str(work / "pairs"), "--count", "24", "--size", "256", "256"], **quiet)
    subprocess.run([*dfn, "scenes", "video", str(work / "clips"), "--count", "2", "--frames", "40", "--size",
                    "256", "256"], **quiet)
    subprocess.run([*dfn, "pack", str(work / "pairs/left"), str(work / "pairs/right"), str(work / "stereo.h5"),
                    "--no-progress"], **quiet)
    subprocess.run([*dfn, "pack", str(work / "clips/frames"), str(work / "video.h5"), "--no-progress"], **quiet)
    rows = []
    for size in args.sizes:
        for experiment in EXPERIMENTS:
            data = str(work / ("video.h5" if experiment == "highway" else "stereo.h5"))
            done = subprocess.run([sys.executable, __file__, "--one", experiment, str(size), data, "--steps",
                                   str(args.steps)], capture_output=True, text=True, cwd=ROOT,
                                  env={**os.environ, "WANDB_MODE": "disabled"})
            if done.returncode != 0:
                raise SystemExit(f"{experiment} at {size} px failed:\n{done.stderr[-3000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    report = {"command": "python benchmarks/frame_sizes.py " + " ".join(sys.argv[1:]), "cpu": cpu_name(),
              "cpus": os.cpu_count(), "rows": rows}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
