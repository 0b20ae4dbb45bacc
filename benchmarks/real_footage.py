"""Real footage end to end: a fit on a real clip or on stereo pairs generated from photographs,
then ``test`` of it and of copy-last; prints JSON (training losses, test metrics).

    python benchmarks/real_footage.py video ../shared/data/video/tree.avi --minutes 30
    python benchmarks/real_footage.py video ../shared/data/video/tree.avi --size 128 --minutes 30
    python benchmarks/real_footage.py stereo --pairs 400 --minutes 30 [--layout street|layers]
    python benchmarks/real_footage.py stereo --pairs 1 --single-pair --minutes 10

Everything goes through ``python -m dfn`` as a user runs it (``scenes``, ``pack``, ``fit`` with
``--trainer.max_time``, ``test``), with the configs as committed; ``--set`` adds overrides
(``--set=--model.init_args.predictor.init_args.start=paper``). Training losses come from a CSV
logger at every step. Run it alone on the machine: it measures what a fit reaches in wall time.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from cli_runs import dfn, metric_series
from dfn.ops.profiling import machine


def train_losses(run: Path) -> list[float]:
    """``train/loss`` at every step, from the CSV logger."""
    return [value for _, value in metric_series(run, "train/loss")]


def test_metrics(run: Path, config: list[str], checkpoint: bool = True) -> dict[str, float]:
    dfn("test", *config, "--run_dir", str(run), *(["--ckpt_path", "last"] if checkpoint else []),
        "--trainer.logger", "false")
    newest = max(run.glob("test_results_step*.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(newest.read_text())["metrics"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["video", "stereo"])
    parser.add_argument("clip", nargs="?", help="video: the clip to pack")
    parser.add_argument("--minutes", type=float, default=30.0, help="training wall time")
    parser.add_argument("--pairs", type=int, default=400, help="stereo: generated pairs")
    parser.add_argument("--single-pair", action="store_true", help="stereo: fit and test on the same pairs "
                        "(configs/stereo_single_pair.yaml)")
    parser.add_argument("--layout", choices=["layers", "street"], default="street", help="stereo scenes (default street)")
    parser.add_argument("--max-disparity", type=float, default=5.0,
                        help="stereo: largest disparity in px at the working size (default 5)")
    parser.add_argument("--size", type=int, default=64, help="working size, square (default 64): a clip is "
                        "packed at it (with configs/sizes/highway_<size>.yaml beyond 64), scenes are "
                        "rendered at twice it")
    parser.add_argument("--work", type=Path, help="folder for data and runs (default: a temporary one)")
    parser.add_argument("--set", action="append", default=[], metavar="--KEY=VALUE", help="extra config override")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="dfn_real_"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    if args.kind == "video":
        data = work / f"{Path(args.clip).stem}_s{args.size}.h5"
        if not data.exists():
            dfn("pack", args.clip, str(data), "--size", str(args.size), str(args.size), "--grayscale",
                "--no-progress")
        config = ["--config", "configs/highway.yaml"]
        if args.size != 64:
            config += ["--config", f"configs/sizes/highway_{args.size}.yaml"]
    else:
        name = f"{args.layout}_{args.pairs}_d{args.max_disparity:g}_s{args.size}"
        data, scenes = work / f"stereo_{name}.h5", work / f"scenes_{name}"
        if not data.exists():
            rendered = str(2 * args.size)
            dfn("scenes", "stereo", str(scenes), "--count", str(args.pairs), "--size", rendered, rendered,
                "--max-disparity", str(2 * args.max_disparity), "--layout", args.layout)
            dfn("pack", str(scenes / "left"), str(scenes / "right"), str(data), "--size", str(args.size), str(args.size),
                "--disparity", str(scenes / "disparity"), "--no-progress")
        config = ["--config", "configs/stereo.yaml"]
        if args.single_pair:
            config += ["--config", "configs/stereo_single_pair.yaml"]
    config += ["--data.init_args.path", str(data), *(a for s in args.set for a in s.split("=", 1))]
    run = work / f"run_{int(started)}"
    seconds = round(args.minutes * 60)
    limit = f"00:{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    fit_start = time.time()
    dfn("fit", *config, "--run_dir", str(run), "--trainer.max_time", limit,
        "--trainer.max_steps", "-1", "--trainer.val_check_interval", "250",
        "--data.init_args.val_samples", "32", "--trainer.log_every_n_steps", "1",
        "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(run),
        "--trainer.enable_progress_bar", "false")
    fit_seconds = time.time() - fit_start
    losses = train_losses(run)
    metrics = test_metrics(run, config)
    copy = test_metrics(work / f"copy_{int(started)}", [*config, "--config", "configs/baselines/copy_last.yaml"],
                        checkpoint=False)
    first50 = losses[:50]
    report = {
        "command": "python benchmarks/real_footage.py " + " ".join(sys.argv[1:]),
        "data": str(data), "config": config, "fit_seconds": round(fit_seconds, 1), "steps": len(losses),
        "step0_loss": losses[0], "max_loss_first_50_steps": max(first50),
        "max_over_step0_first_50": max(first50) / losses[0], "max_over_step0_all": max(losses) / losses[0],
        "loss_every_50_steps": losses[::50], "test": metrics, "copy_last_test": copy,
        "test_mse_over_copy_last": metrics["test/mse"] / copy["test/mse"],
        "machine": {**machine(), "cpus": os.cpu_count()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
