"""The predictor's two starts compared at equal steps: ``start: paper`` (He-uniform, zero biases)
against ``start: identity`` (first predictions = the last frame). Prints JSON: for each start the
training loss at step 0, every 25 steps and over the last 50, and the validation metrics at the end.

    python benchmarks/start_comparison.py --config configs/moving_mnist.yaml --steps 300

Same seed, same data stream, same steps for both; ``--set=--KEY=VALUE`` adds overrides (e.g. a
data path). Run it alone on the machine.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fit(config: str, start: str, steps: int, run: Path, extra: list[str]) -> dict:
    args = [sys.executable, "-m", "dfn", "fit", "--config", config, *extra, "--run_dir", str(run),
            "--model.init_args.predictor.init_args.start", start, "--trainer.max_steps", str(steps),
            "--trainer.val_check_interval", str(steps), "--trainer.log_every_n_steps", "1",
            "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(run),
            "--trainer.enable_progress_bar", "false"]
    begun = time.time()
    done = subprocess.run(args, cwd=ROOT, env={**os.environ, "WANDB_MODE": "disabled"}, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    rows = list(csv.DictReader(open(next(run.glob("**/metrics.csv")))))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    val = {k: float(v) for r in rows for k, v in r.items() if k.startswith("val/") and v}
    return {"seconds": round(time.time() - begun, 1), "step0_loss": losses[0], "loss_every_25": losses[::25],
            "mean_loss_last_50": sum(losses[-50:]) / len(losses[-50:]), "validation": val}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--set", action="append", default=[], metavar="--KEY=VALUE")
    args = parser.parse_args()
    extra = [a for s in args.set for a in s.split("=", 1)]
    work = Path(tempfile.mkdtemp(prefix="dfn_start_"))
    report = {"command": "python benchmarks/start_comparison.py " + " ".join(sys.argv[1:]),
              "starts": {start: fit(args.config, start, args.steps, work / start, extra)
                         for start in ("paper", "identity")}}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
