"""Two CPU processes (DDP, gloo) through the CLI: training runs, ranks draw different data, and
synced validation metrics equal the single-process values (Moving MNIST, highway, stereo)."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hdf5_data import moving_texture, stereo_planes
from test_faults import TINY as STEERABLE_TINY
from test_highway_stereo import highway_tiny, stereo_tiny
from test_video import tiny_args

ROOT = Path(__file__).resolve().parents[1]


def run(args: list[str]) -> None:
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT / "tests")}
    done = subprocess.run([sys.executable, "-m", "dfn", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def logged(folder: Path) -> dict[str, float]:
    rows = list(csv.DictReader(next(folder.rglob("metrics.csv")).open()))
    return {k: float(v) for row in rows for k, v in row.items() if v not in ("", None) and k.startswith("val/")}


def moving_mnist(tmp_path: Path) -> list[str]:
    return tiny_args(tmp_path / "cache") + ["--data.init_args.val_sequences", "6"]


def highway(tmp_path: Path) -> list[str]:
    return highway_tiny(moving_texture(tmp_path / "v.h5", frames=60)) + ["--data.init_args.val_samples", "3"]


def stereo(tmp_path: Path) -> list[str]:
    return stereo_tiny(stereo_planes(tmp_path / "s.h5", frames=30)) + ["--data.init_args.val_samples", "5"]


@pytest.mark.slow
@pytest.mark.parametrize("experiment", [moving_mnist, highway, stereo])
def test_ddp_two_cpu_processes_train_and_validate_like_one(tmp_path, experiment):
    tiny = experiment(tmp_path)
    ddp = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
    run(["fit", *tiny, *ddp, "--run_dir", str(tmp_path / "fit"), "--trainer.max_steps", "2",
         "--trainer.logger", "false"])
    ckpt = str(tmp_path / "fit" / "checkpoints" / "last.ckpt")
    for name, extra in (("single", ["--trainer.devices", "1"]), ("ddp", ddp)):
        csv_logger = ["--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
                      "--trainer.logger.init_args.save_dir", str(tmp_path / f"csv_{name}")]
        run(["validate", *tiny, *extra, *csv_logger, "--run_dir", str(tmp_path / name), "--ckpt_path", ckpt])
    single, ddp_metrics = logged(tmp_path / "csv_single"), logged(tmp_path / "csv_ddp")
    assert set(single) == {f"val/{m}" for m in ("bce", "mse", "mae", "ssim", "psnr")}
    for key, value in single.items():
        assert abs(ddp_metrics[key] - value) <= 1e-5 * max(1.0, abs(value)), key


@pytest.mark.slow
def test_ddp_steerable_fit(tmp_path):
    run(["fit", *STEERABLE_TINY, "--trainer.accelerator", "cpu", "--trainer.devices", "2",
         "--trainer.strategy", "ddp", "--run_dir", str(tmp_path / "run"), "--trainer.max_steps", "4",
         "--trainer.logger", "false"])
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
