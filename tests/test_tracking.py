"""W&B tracking through real `python -m dfn` processes: offline by default, the resumed fit
continues the same run, images are logged, and no wandb process outlives the command."""
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch

from dfn.harness.cli import DfnCLI, default_wandb_mode
from helpers import ROOT


MARK = f"DFN_TEST_RUN={uuid.uuid4().hex}"   # in the environment of every process our commands start


def own_wandb_pids() -> set[int]:
    """wandb processes started by this test's commands (they inherit MARK), whatever else runs."""
    pids = set()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"wandb" in (proc / "cmdline").read_bytes() \
                    and MARK.encode() in (proc / "environ").read_bytes().split(b"\0"):
                pids.add(int(proc.name))
        except OSError:                      # gone meanwhile, or not ours to read
            continue
    return pids


def wandb_processes_end(seconds: float = 10) -> bool:
    """Whether this test's wandb processes are all gone within ``seconds`` (they exit after the command)."""
    deadline = time.time() + seconds
    while own_wandb_pids() and time.time() < deadline:
        time.sleep(0.5)
    return not own_wandb_pids()


def offline_env() -> dict[str, str]:
    """This environment with W&B at its default (offline) and MARK set, for the commands we start."""
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_MODE", "WANDB_API_KEY")}
    env.update([MARK.split("=", 1)])
    return env


def dfn(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "dfn", *args], cwd=ROOT, env=offline_env(), check=True,
                          capture_output=True, text=True, timeout=300).stderr


def test_offline_by_default_resume_continues_the_run_and_no_process_is_left(tmp_path, steerable_tiny):
    run = tmp_path / "run"
    common = [*steerable_tiny, "--run_dir", str(run), "--checkpoint.every_n_train_steps", "2",
              "--data.init_args.batches_per_epoch", "4", "--trainer.val_check_interval", "2",
              "--trainer.enable_model_summary", "true"]
    err = dfn("fit", *common, "--trainer.max_steps", "2")
    for noise in ("litlogger", "LeafSpec", "anonymous setting"):    # not the user's to fix
        assert noise not in err, noise
    first = list((run / "wandb").glob("offline-run-*"))
    assert len(first) == 1, "expected one offline run (W&B must default to offline)"
    run_id = first[0].name.rsplit("-", 1)[-1]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["wandb_run_id"] == run_id
    assert list(first[0].glob("files/media/images/val/figure_*.png")), "Figure 4 image not logged"
    record = next(first[0].glob("*.wandb")).read_bytes()          # the offline run's record, for `wandb sync`
    assert f"checkpoints-{run_id}".encode() in record and b"last.ckpt" in record, "checkpoints not logged"

    dfn("fit", *common, "--trainer.max_steps", "4", "--ckpt_path", "last")
    runs = sorted((run / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(r.name.endswith(f"-{run_id}") for r in runs)
    assert (run / "config.yaml").is_file() and (run / "config.fit.1.yaml").is_file()

    assert wandb_processes_end(), "a wandb process outlived the command"


def test_a_refused_command_leaves_no_wandb_run_or_run_dir(tmp_path, steerable_tiny):
    """With W&B on (offline, the default): a checkpoint of another architecture and a bad trainer
    value are each one error line, exit 2, and leave no run directory, no W&B run, no wandb process."""
    run = tmp_path / "run"
    DfnCLI(args=["fit", *steerable_tiny, "--run_dir", str(run), "--trainer.max_steps", "1"])   # W&B disabled here
    for n, extra in enumerate([["validate", "--model.init_args.net.init_args.hidden", "[16]",
                                "--ckpt_path", str(run / "checkpoints" / "last.ckpt")],
                               ["fit", "--trainer.devices", "0"]]):
        refused = subprocess.run([sys.executable, "-m", "dfn", extra[0], *steerable_tiny, *extra[1:],
                                  "--run_dir", str(tmp_path / f"refused{n}")],
                                 cwd=tmp_path, env=offline_env(), capture_output=True, text=True, timeout=300)
        errors = [line for line in refused.stderr.splitlines() if line.startswith("dfn:")]
        assert refused.returncode == 2 and len(errors) == 1 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
        assert not (tmp_path / f"refused{n}").exists() and not (tmp_path / "wandb").exists()
    assert wandb_processes_end(), "a wandb process outlived a command"


@pytest.mark.parametrize("mode,key,expected", [("", None, "offline"), (" ", "", "offline"),
                                               ("online", None, "online"), (None, "k" * 40, None)])
def test_an_empty_wandb_variable_counts_as_unset(monkeypatch, mode, key, expected):
    """``WANDB_MODE=`` (empty, as a job script's unset variable expands) is offline, as if unset;
    a mode or an API key the user gave is kept."""
    for name, value in (("WANDB_MODE", mode), ("WANDB_API_KEY", key)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    default_wandb_mode()
    assert os.environ.get("WANDB_MODE") == expected
