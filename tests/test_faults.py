"""Faults: NaN loss, a kill during a checkpoint write (mid-epoch), an unwritable run directory, bad
command lines. (Cluster faults: tests/test_checkpoints.py.)"""

import pytest
import torch

from dfn.harness.cli import main


def test_nan_loss_stops_naming_the_step_and_keeps_the_good_checkpoint(tmp_path, capsys, steerable_tiny):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *steerable_tiny, "--run_dir", str(tmp_path / "run"), "--trainer.max_steps", "6",
              "--trainer.callbacks+=helpers.PoisonLoss", "--trainer.callbacks.init_args.at_step", "2"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "training loss is nan at step 2" in err
    assert f"Last good state: {tmp_path / 'run/checkpoints/last.ckpt'} (step 2)" in err
    assert "--ckpt_path last --model.init_args.optimizer_overrides '{lr: 1e-4}'" in err
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


def test_kill_during_a_checkpoint_write_leaves_last_ckpt_intact_and_resumes(tmp_path, steerable_tiny, dfn_process):
    run = tmp_path / "run"
    killed = dfn_process("fit", *steerable_tiny, "--run_dir", str(run), "--trainer.max_steps", "8",
                         "--trainer.callbacks+=helpers.KillDuringCheckpointWrite",
                         "--trainer.callbacks.init_args.at_step", "3")
    assert killed.returncode == -9                      # SIGKILL, mid-epoch (5 batches an epoch)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 2                     # the step-3 write never replaced it
    resumed = dfn_process("fit", *steerable_tiny, "--run_dir", str(run), "--trainer.max_steps", "8",
                          "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 8


def test_unwritable_run_dir_is_named(tmp_path, capsys, steerable_tiny):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *steerable_tiny, "--run_dir", str(blocker / "run")])
    assert exit_info.value.code == 2
    assert f"cannot write to run_dir {blocker / 'run'}" in capsys.readouterr().err


@pytest.mark.parametrize("args,message,hint", [
    (["--data.init_args.batch_size", "0"], "dfn: error: data.batch_size must be >= 1", ", got 0"),
    (["--trainer.max_step", "3"], "dfn: error: unrecognized arguments: --trainer.max_step 3",   # no prefix match
     "; did you mean --trainer.max_steps? (all options: python -m dfn fit --help)"),
    (["--trainer.max_steps", "abc"], "dfn: error: --trainer.max_steps abc: expected an int",
     "(all options: python -m dfn fit --help)"),
    (["--trainer.accelerator", "zzz"],                         # Lightning's ValueErrors too
     "dfn: error: --trainer.accelerator: You selected an invalid accelerator name: `accelerator='zzz'`. "
     "Available names are: auto, ", "."),
    (["--seed_everything", "-1"], "dfn: error: --seed_everything -1: expected an integer from 0", "random seed)"),
    (["--trainer.max_time", "00:00:5:00"],                     # Lightning's refusals lead with the option
     "dfn: error: --trainer.max_time: `Timer(duration='00:00:5:00')` is not a valid duration", "DD:HH:MM:SS."),
    (["--trainer.devices", "0"], "dfn: error: --trainer.devices: `Trainer(devices=", "cpu accelerator."),
    (["--trainer.precision", "13"],                            # jsonargparse's Union dumps: what is accepted
     "dfn: error: --trainer.precision 13: expected one of 64, 32, 16", "(all options: python -m dfn fit --help)"),
    (["--model.init_args.optimizer.init_args.lr", "abc"],
     "dfn: error: --model.init_args.optimizer.init_args.lr abc: expected a float",
     "(all options: python -m dfn fit --help)"),
    (["--model.init_args.net.init_args.hidden", "[0]"], "dfn: error: net.hidden must be >= 1", ", got [0]"),
])
def test_a_bad_command_line_is_one_line_with_status_2(tmp_path, capsys, steerable_tiny, args, message, hint):
    """One line under 250 characters, exit 2, and no run directory left behind."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *steerable_tiny, "--run_dir", str(tmp_path / "run"), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.startswith("dfn:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(message) and lines[0].endswith(hint) and len(lines[0]) < 250, lines[0]
    assert not (tmp_path / "run").exists()


def test_an_overlay_config_alone_says_what_it_extends(tmp_path, root, dfn_main):
    """configs/stereo_binocular.yaml changes configs/stereo.yaml's model: given alone, one line
    says to layer it after its base, not a dump of the model's init_args."""
    status, err = dfn_main(["fit", "--config", str(root / "configs/stereo_binocular.yaml"),
                            "--run_dir", str(tmp_path / "run")])
    assert status == 2 and err.count("\n") == 1 and len(err) < 250, err
    assert err.startswith("dfn: error: --model: init_args without a class_path") and "--config configs/stereo.yaml" in err


def test_a_yaml_syntax_error_names_the_file(tmp_path, capsys):
    config = tmp_path / "broken.yaml"
    config.write_text("trainer:\n  max_steps: [1,\n  b: :\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(f"dfn: error: {config}: not valid YAML (")
