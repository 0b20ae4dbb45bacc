"""Faults: NaN loss, a kill during a checkpoint write (mid-epoch), an unwritable run directory."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dfn.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--config", str(ROOT / "configs/steerable.yaml"), "--data.init_args.image_size", "8",
        "--data.init_args.batch_size", "4", "--data.init_args.val_angles", "4",
        "--data.init_args.val_images_per_angle", "1", "--data.init_args.batches_per_epoch", "5",
        "--model.init_args.net.init_args.hidden", "[8]", "--trainer.val_check_interval", "5",
        "--checkpoint.every_n_train_steps", "1", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false"]


def test_nan_loss_stops_naming_the_step_and_keeps_the_good_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *TINY, "--run_dir", str(tmp_path / "run"), "--trainer.max_steps", "6",
              "--trainer.callbacks+=helpers.PoisonLoss", "--trainer.callbacks.init_args.at_step", "2"])
    assert exit_info.value.code == 1
    assert "training loss is nan at step 2" in capsys.readouterr().err
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


def test_kill_during_a_checkpoint_write_leaves_last_ckpt_intact_and_resumes(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests"), "WANDB_MODE": "disabled"}
    killed = subprocess.run([sys.executable, "-m", "dfn", "fit", *TINY, "--run_dir", str(run),
                             "--trainer.max_steps", "8", "--trainer.callbacks+=helpers.KillDuringCheckpointWrite",
                             "--trainer.callbacks.init_args.at_step", "3"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9                      # SIGKILL, mid-epoch (5 batches an epoch)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 2                     # the step-3 write never replaced it
    resumed = subprocess.run([sys.executable, "-m", "dfn", "fit", *TINY, "--run_dir", str(run),
                              "--trainer.max_steps", "8", "--ckpt_path", "last"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 8


def test_unwritable_run_dir_is_named(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *TINY, "--run_dir", str(blocker / "run")])
    assert exit_info.value.code == 2
    assert f"cannot write to run_dir {blocker / 'run'}" in capsys.readouterr().err


def test_full_disk_during_a_checkpoint_write_is_named(tmp_path, capsys, monkeypatch):
    import errno

    import lightning.fabric.plugins.io.torch_io as torch_io

    def no_space(checkpoint, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(torch_io, "_atomic_save", no_space)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *TINY, "--run_dir", str(tmp_path / "run"), "--trainer.max_steps", "3"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "cannot write" in err and "No space left on device" in err and "last.ckpt" in err
