"""The SLURM requeue path without SLURM: the environment SLURM sets, the SIGUSR1 it sends before
the time limit, a stand-in `scontrol`; the requeued command resumes and continues its W&B run."""
import contextlib
import os
import signal
import subprocess
import sys

import pytest
import torch
from helpers import ROOT


@pytest.mark.slow
def test_sigusr1_saves_requeues_and_the_requeued_job_resumes_the_same_run(tmp_path, steerable_tiny):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'scontrol.log'}\n")
    scontrol.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_MODE", "WANDB_API_KEY")}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", PYTHONPATH=str(ROOT / "tests"), WANDB_SILENT="true",
               SLURM_NTASKS="1", SLURM_JOB_NAME="dfn-test", SLURM_JOB_ID="4242", SLURM_PROCID="0",
               SLURM_LOCALID="0", SLURM_NODEID="0", SLURM_NODELIST="localhost")
    run = tmp_path / "run"
    command = [sys.executable, "-m", "dfn", "fit", *steerable_tiny, "--run_dir", str(run), "--trainer.max_steps", "6",
               "--trainer.plugins", "lightning.pytorch.plugins.environments.SLURMEnvironment"]
    # SLURM ends a job by killing its whole process tree: the job runs in a session of its own,
    # killed as a group once its main process is gone (wandb < 0.18 leaves its service process
    # running, holding any pipe the job wrote to; its output goes to a file, not a pipe)
    log = tmp_path / "first.log"
    with log.open("w") as out:
        first = subprocess.Popen(command + ["--trainer.callbacks+=helpers.SlurmPreemption",
                                            "--trainer.callbacks.init_args.at_step", "3"],
                                 cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            returncode = first.wait(timeout=300)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(first.pid, signal.SIGKILL)
    assert returncode == -9, log.read_text()[-2000:]
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "4242"]
    hpc = torch.load(run / "hpc_ckpt_1.ckpt", weights_only=True)
    assert hpc["global_step"] == 3
    run_id = hpc["wandb_run_id"]

    requeued = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert requeued.returncode == 0, requeued.stderr[-2000:]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6
    wandb_runs = sorted(p.name for p in (run / "wandb").glob("offline-run-*"))
    assert len(wandb_runs) == 2 and all(name.endswith(f"-{run_id}") for name in wandb_runs)
