"""Checkpoints as a cluster treats them: run dirs on another file system than $TMPDIR, kill -9
during writes, full disks, SIGTERM / Ctrl-C, resumed and relocated runs keeping their best files."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dfn.harness.cli import DfnCLI, main
from hdf5_data import moving_texture, stereo_planes
from helpers import ROOT, assert_same_weights


def load(path: Path) -> dict:
    return torch.load(path, weights_only=False)


def best_state(run: Path) -> tuple:
    """(files in checkpoints/, best file, best score, top-k files) as last.ckpt remembers them."""
    state = next(v for k, v in load(run / "checkpoints/last.ckpt")["callbacks"].items() if "val/" in k)
    name = lambda p: Path(p).name                                            # noqa: E731
    return (sorted(p.name for p in (run / "checkpoints").iterdir()), name(state["best_model_path"]),
            float(state["best_model_score"]), sorted(map(name, state["best_k_models"])))


@pytest.mark.parametrize("split", [3, 5, 6])
def test_a_resumed_run_keeps_the_best_checkpoints_of_the_straight_run(tmp_path, steerable_tiny, split):
    tiny = [*steerable_tiny, "--trainer.val_check_interval", "2", "--trainer.logger", "false"]
    fit = lambda run, steps, *extra: DfnCLI(args=["fit", *tiny, "--run_dir", str(tmp_path / run),  # noqa: E731
                                                  "--trainer.max_steps", str(steps), *extra])
    fit("straight", 9)
    fit("resumed", split)
    fit("resumed", 9, "--ckpt_path", "last")
    straight, resumed = best_state(tmp_path / "straight"), best_state(tmp_path / "resumed")
    assert straight[0] == ["last.ckpt", straight[1]]                          # save_top_k 1: one best file
    assert resumed == straight


def test_a_resumed_stereo_run_keeps_the_best_checkpoints_of_the_straight_run(tmp_path, stereo_tiny):
    tiny = [*stereo_tiny(stereo_planes(tmp_path / "stereo.h5")), "--data.init_args.batch_size", "4",
            "--trainer.val_check_interval", "2"]
    DfnCLI(args=["fit", *tiny, "--run_dir", str(tmp_path / "straight"), "--trainer.max_steps", "7"])
    DfnCLI(args=["fit", *tiny, "--run_dir", str(tmp_path / "resumed"), "--trainer.max_steps", "3"])
    DfnCLI(args=["fit", *tiny, "--run_dir", str(tmp_path / "resumed"), "--trainer.max_steps", "7",
                 "--ckpt_path", "last"])
    assert best_state(tmp_path / "resumed") == best_state(tmp_path / "straight")


def test_a_copied_run_directory_resumes_into_its_own_last_ckpt(tmp_path, steerable_tiny):
    tiny = [*steerable_tiny, "--trainer.val_check_interval", "2", "--trainer.logger", "false"]
    DfnCLI(args=["fit", *tiny, "--run_dir", str(tmp_path / "a"), "--trainer.max_steps", "4"])
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    DfnCLI(args=["fit", *tiny, "--run_dir", str(tmp_path / "b"), "--trainer.max_steps", "6", "--ckpt_path", "last"])
    files, best, _, top_k = best_state(tmp_path / "b")
    assert "last-v1.ckpt" not in files and load(tmp_path / "b/checkpoints/last.ckpt")["global_step"] == 6
    state = next(v for k, v in load(tmp_path / "b/checkpoints/last.ckpt")["callbacks"].items() if "val/" in k)
    assert Path(state["best_model_path"]).parent == tmp_path / "b/checkpoints"
    assert files == ["last.ckpt", best]
    assert load(tmp_path / "a/checkpoints/last.ckpt")["global_step"] == 4   # the original is untouched


def test_kill_9_during_checkpoint_writes_on_another_file_system_than_tmpdir(tmp_path, tmpfs, steerable_tiny,
                                                                           dfn_process):
    """The run dir on a tmpfs, $TMPDIR on the disk: killed mid-write twice, last.ckpt is always
    the previous step's, whole; the leftover half-file is removed by the next start; the run
    finishes. Nothing is written to $TMPDIR."""
    run, tmpdir = tmpfs("64m") / "run", tmp_path / "tmpdir"
    tmpdir.mkdir()
    args = ["fit", *steerable_tiny, "--run_dir", str(run), "--trainer.max_steps", "8", "--trainer.logger", "false"]
    killer = ["--trainer.callbacks+=helpers.KillDuringCheckpointWrite", "--trainer.callbacks.init_args.at_step"]
    for attempt, at_step in enumerate([3, 6]):
        resume = ["--ckpt_path", "last"] if attempt else []
        killed = dfn_process(*args, *resume, *killer, str(at_step), env={"TMPDIR": str(tmpdir)})
        assert killed.returncode == -9, killed.stderr[-2000:]
        assert load(run / "checkpoints/last.ckpt")["global_step"] == at_step - 1
        partial = list((run / "checkpoints").glob(".*.partial"))
        assert len(partial) == 1 and partial[0].stat().st_size > 0       # killed half-way through a write
        if attempt:
            assert "removed" in killed.stderr                                 # the first kill's half-file
    finished = dfn_process(*args, "--ckpt_path", "last", env={"TMPDIR": str(tmpdir)})
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert load(run / "checkpoints/last.ckpt")["global_step"] == 8
    assert not list((run / "checkpoints").glob(".*"))
    assert not [p for p in tmpdir.rglob("*") if p.is_file()]                 # (wandb leaves empty folders)


def test_a_full_disk_names_the_checkpoint_and_leaves_no_partial_file(tmpfs, steerable_tiny, capsys):
    run = tmpfs("600k") / "run"
    with pytest.raises(SystemExit) as exit_info:       # a 1 MB checkpoint: the first write fills the disk
        main(["fit", *steerable_tiny, "--run_dir", str(run), "--trainer.max_steps", "50",
              "--model.init_args.net.init_args.hidden", "[256, 256]", "--trainer.logger", "false"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"dfn: error: cannot write {run / 'checkpoints'}/") and "No space left on device" in err
    assert not list((run / "checkpoints").glob(".*"))                        # no half-written temporary
    for path in (run / "checkpoints").glob("*.ckpt"):                         # whatever is there loads
        load(path)


@pytest.mark.parametrize("name,status", [("SIGTERM", 143), ("SIGINT", 130)])
def test_sigterm_and_ctrl_c_save_the_current_step_and_resume_exactly(tmp_path, steerable_tiny, dfn_process,
                                                                     name, status):
    """A real fit process gets the signal after step 3 (checkpoints every 100 steps, so only the
    signal can save step 3); it saves last.ckpt, exits 128 + signal, and the resumed run ends
    with the weights of a straight run."""
    args = [*steerable_tiny, "--checkpoint.every_n_train_steps", "100", "--trainer.logger", "false",
            "--trainer.max_steps", "7"]
    stopped = dfn_process("fit", *args, "--run_dir", str(tmp_path / "stopped"),
                          "--trainer.callbacks+=helpers.SignalAtStep", "--trainer.callbacks.init_args.signal", name,
                          "--trainer.callbacks.init_args.at_step", "3")
    assert stopped.returncode == status, stopped.stderr[-2000:]
    last = tmp_path / "stopped/checkpoints/last.ckpt"
    assert f"dfn: stopped by {name} after step 3; saved: {last} (step 3)" in stopped.stderr
    assert load(last)["global_step"] == 3
    resumed = dfn_process("fit", *args, "--run_dir", str(tmp_path / "stopped"), "--ckpt_path", "last")
    straight = dfn_process("fit", *args, "--run_dir", str(tmp_path / "straight"))
    assert resumed.returncode == 0 and straight.returncode == 0, resumed.stderr[-2000:]
    assert_same_weights(tmp_path / "stopped", tmp_path / "straight")


@pytest.mark.parametrize("stage", ["fit", "validate", "test", "predict"])
def test_last_without_a_checkpoint_is_refused(tmp_path, steerable_tiny, capsys, stage):
    with pytest.raises(SystemExit) as exit_info:
        main([stage, *steerable_tiny, "--run_dir", str(tmp_path / "run"), "--ckpt_path", "last"])
    assert exit_info.value.code == 2
    assert f"there is no {tmp_path / 'run/checkpoints/last.ckpt'}" in capsys.readouterr().err
    assert not list((tmp_path / "run").glob("test_results*")) and not (tmp_path / "run/predictions").exists()
    assert not (tmp_path / "run/checkpoints").exists()


def test_the_learning_rate_can_be_changed_when_resuming(tmp_path, steerable_tiny):
    """The checkpoint's optimizer brings back its learning rate; optimizer_overrides replaces it,
    and the StepLR schedule (halving every 3 steps) continues from the new value."""
    args = ["fit", *steerable_tiny, "--run_dir", str(tmp_path / "run"), "--trainer.logger", "false",
            "--model.init_args.scheduler.init_args.step_size", "3", "--trainer.callbacks+=helpers.LossRecorder"]
    DfnCLI(args=[*args, "--trainer.max_steps", "4"])
    cli = DfnCLI(args=[*args, "--trainer.max_steps", "8", "--ckpt_path", "last",
                       "--model.init_args.optimizer_overrides", "{lr: 1.0e-5}"])
    records = next(c for c in cli.trainer.callbacks if hasattr(c, "records")).records
    assert [(step, lr) for step, _, lr in records] == [(5, 1e-5), (6, 5e-6), (7, 5e-6), (8, 5e-6)]


def test_an_unknown_optimizer_override_is_one_clear_error(tmp_path, steerable_tiny, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *steerable_tiny, "--run_dir", str(tmp_path / "run"), "--trainer.max_steps", "2",
              "--model.init_args.optimizer_overrides", "{lrr: 0.1}"])
    assert exit_info.value.code == 2
    assert "Adam has no hyperparameter 'lrr'" in capsys.readouterr().err


def test_ctrl_c_in_a_terminal_with_dataloader_workers(tmp_path, steerable_tiny):
    """As a terminal's Ctrl-C does: SIGINT to every process of the foreground job (main process
    and its 2 DataLoader workers) while it trains; the workers leave the stop to the main
    process, which saves the step it finished and exits 130."""
    run = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    job = subprocess.Popen([sys.executable, "-m", "dfn", "fit", *steerable_tiny, "--run_dir", str(run),
                            "--trainer.max_steps", "100000", "--data.init_args.num_workers", "2",
                            "--checkpoint.every_n_train_steps", "20", "--trainer.logger", "false"],
                           cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 240
    while not (run / "checkpoints/last.ckpt").exists() and time.time() < deadline and job.poll() is None:
        time.sleep(0.2)
    os.killpg(job.pid, signal.SIGINT)
    err = job.communicate(timeout=120)[1]
    assert job.returncode == 130, err[-2000:]
    step = load(run / "checkpoints/last.ckpt")["global_step"]
    assert step >= 20 and f"dfn: stopped by SIGINT after step {step}; saved:" in err


@pytest.mark.slow
def test_sigterm_during_validation_saves_and_resumes_exactly(tmp_path, dfn_process, highway_tiny):
    """Highway (two validation batches): SIGTERM after the first validation batch of step 4 stops
    there; the resumed run ends with the straight run's weights and best checkpoint."""
    tiny = [*highway_tiny(moving_texture(tmp_path / "v.h5")), "--data.init_args.batch_size", "2",
            "--trainer.val_check_interval", "2", "--checkpoint.every_n_train_steps", "3", "--trainer.max_steps", "7"]
    stopped = dfn_process("fit", *tiny, "--run_dir", str(tmp_path / "stopped"),
                          "--trainer.callbacks+=helpers.SignalAtStep", "--trainer.callbacks.init_args.at_step", "4",
                          "--trainer.callbacks.init_args.in_validation", "true")
    assert stopped.returncode == 143 and load(tmp_path / "stopped/checkpoints/last.ckpt")["global_step"] == 4
    assert dfn_process("fit", *tiny, "--run_dir", str(tmp_path / "stopped"), "--ckpt_path", "last").returncode == 0
    assert dfn_process("fit", *tiny, "--run_dir", str(tmp_path / "straight")).returncode == 0
    assert_same_weights(tmp_path / "stopped", tmp_path / "straight")
    assert best_state(tmp_path / "stopped") == best_state(tmp_path / "straight")
