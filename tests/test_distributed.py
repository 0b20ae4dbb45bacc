"""Two CPU processes (DDP, gloo) through the CLI: training runs, ranks draw different data, and
synced validation metrics equal the single-process values (Moving MNIST, highway, stereo)."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hdf5_data import moving_texture, stereo_planes
from helpers import ROOT


def run(args: list[str]) -> None:
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT / "tests")}
    done = subprocess.run([sys.executable, "-m", "dfn", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def logged(folder: Path) -> dict[str, float]:
    rows = list(csv.DictReader(next(folder.rglob("metrics.csv")).open()))
    return {k: float(v) for row in rows for k, v in row.items() if v not in ("", None) and k.startswith("val/")}


@pytest.fixture(params=["moving_mnist", "highway", "stereo"])
def experiment(request, tmp_path, moving_mnist_tiny, highway_tiny, stereo_tiny) -> list[str]:
    """A tiny run of each video experiment, with an odd validation set (ranks get unequal shares)."""
    if request.param == "moving_mnist":
        return moving_mnist_tiny(tmp_path / "cache") + ["--data.init_args.val_sequences", "6"]
    if request.param == "highway":
        return highway_tiny(moving_texture(tmp_path / "v.h5", frames=60)) + [     # 3 held-out samples
            "--data.init_args.val_samples", "3", "--data.init_args.val_fraction", "0.4"]
    return stereo_tiny(stereo_planes(tmp_path / "s.h5", frames=30)) + ["--data.init_args.val_samples", "5"]


@pytest.mark.slow
def test_ddp_two_cpu_processes_train_and_validate_like_one(tmp_path, experiment):
    tiny = experiment
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
def test_ddp_steerable_fit(tmp_path, steerable_tiny):
    run(["fit", *steerable_tiny, "--trainer.accelerator", "cpu", "--trainer.devices", "2",
         "--trainer.strategy", "ddp", "--run_dir", str(tmp_path / "run"), "--trainer.max_steps", "4",
         "--trainer.logger", "false"])
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())


@pytest.mark.slow
def test_a_dead_ddp_rank_stops_the_run_in_one_line_and_it_resumes(tmp_path, steerable_tiny):
    """SIGKILL to rank 1 while it trains (a node lost): rank 0 stops at its next collective with
    one line, last.ckpt is whole, and the run resumes from it."""
    run_dir = tmp_path / "run"
    ddp = [*steerable_tiny, "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
           "--run_dir", str(run_dir), "--checkpoint.every_n_train_steps", "10", "--trainer.logger", "false"]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    job = subprocess.Popen([sys.executable, "-m", "dfn", "fit", *ddp, "--trainer.max_steps", "100000"],
                           cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (run_dir / "checkpoints/last.ckpt").exists() and time.time() < deadline:
        time.sleep(0.2)
    children = subprocess.run(["pgrep", "-P", str(job.pid)], capture_output=True, text=True).stdout.split()
    rank1 = [int(pid) for pid in children if b"LOCAL_RANK=1" in Path(f"/proc/{pid}/environ").read_bytes()]
    os.kill(rank1[0], signal.SIGKILL)
    err = job.communicate(timeout=120)[1]
    assert job.returncode == 1
    assert err.strip().splitlines()[-1].startswith("dfn: error: another process of this distributed run died (")
    step = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)["global_step"]
    run(["fit", *ddp, "--trainer.max_steps", str(step + 3), "--ckpt_path", "last"])
    assert torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)["global_step"] == step + 3
