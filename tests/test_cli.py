"""`python -m dfn` on the steerable experiment: fit, resume, predict, and clear errors."""
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch

from dfn.harness.cli import DfnCLI, main
from hdf5_data import moving_texture
from helpers import ROOT, LossRecorder, assert_same_weights

CONFIG = "configs/steerable.yaml"


@pytest.fixture
def tiny(steerable_tiny) -> list[str]:
    """The shared tiny steerable run (conftest) with 4 batches an epoch, validating every 2 steps."""
    return [*steerable_tiny, "--data.init_args.batches_per_epoch", "4", "--trainer.val_check_interval", "2"]


@pytest.fixture
def fit(tiny) -> Callable[..., DfnCLI]:
    """``fit(run_dir, steps, *extra)``: the tiny run fitted in-process."""
    def run(run_dir: Path, steps: int, *extra: str) -> DfnCLI:
        return DfnCLI(args=["fit", *tiny, "--run_dir", str(run_dir), "--trainer.max_steps", str(steps), *extra])
    return run


def test_fit_writes_config_checkpoints_and_figures(tmp_path, fit):
    fit(tmp_path / "run", 4)
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in (run / "figures").glob("*.png")) == [
        "val_figure_step0000002.png", "val_figure_step0000004.png"]
    saved = (run / "config.yaml").read_text()
    assert "SteerableFilterModel" in saved and "max_steps: 4" in saved


def test_the_run_config_is_in_the_run_dir_whatever_the_logger(tmp_path, fit, dfn_main):
    """A CSV logger keeps its metrics in version_0/, but config.yaml stays where the README's
    `test --config <run_dir>/config.yaml --ckpt_path last` looks."""
    run = tmp_path / "run"
    fit(run, 2, "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(run))
    assert (run / "config.yaml").is_file() and not list(run.glob("**/version_*/config.yaml"))
    assert list(run.glob("**/version_0/metrics.csv"))
    status, err = dfn_main(["test", "--config", str(run / "config.yaml"), "--ckpt_path", "last"])
    assert status == 0, err
    assert (run / "config.test.1.yaml").is_file()


def test_last_checkpoint_also_when_training_stops_between_two_intervals(tmp_path, fit):
    fit(tmp_path / "run", 5, "--checkpoint.every_n_train_steps", "2")
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 5                   # not 4: the steps after the last interval are kept


def recorded(cli: DfnCLI) -> list:
    return next(c for c in cli.trainer.callbacks if isinstance(c, LossRecorder)).records


def test_resume_is_bit_identical_to_a_straight_run(tmp_path, fit):
    """6 steps, resume for 6 more (mid-epoch: 4 batches an epoch) == 12 straight: same data,
    same learning-rate schedule (halved every 3 steps), same losses and weights, bit for bit."""
    extra = ["--trainer.callbacks+=helpers.LossRecorder",
             "--model.init_args.scheduler.init_args.step_size", "3"]
    straight = recorded(fit(tmp_path / "straight", 12, *extra))
    first = recorded(fit(tmp_path / "resumed", 6, *extra))
    second = recorded(fit(tmp_path / "resumed", 12, "--ckpt_path", "last", *extra))
    assert [r[0] for r in first + second] == list(range(1, 13))
    assert first + second == straight                   # (step, loss, lr), exact floats
    assert len({r[2] for r in straight}) == 5           # the schedule halved the lr 4 times
    assert_same_weights(tmp_path / "straight", tmp_path / "resumed")


def test_fresh_fit_refuses_a_run_dir_with_checkpoints(tmp_path, capsys, fit, tiny):
    fit(tmp_path / "run", 2)
    before = (tmp_path / "run" / "checkpoints" / "last.ckpt").read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *tiny, "--run_dir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    assert "already holds checkpoints" in capsys.readouterr().err
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").read_bytes() == before


def test_predict_writes_pngs_and_refuses_to_overwrite(tmp_path, capsys, fit, tiny):
    fit(tmp_path / "run", 2)
    ckpt = str(tmp_path / "run" / "checkpoints" / "last.ckpt")
    args = ["predict", *tiny, "--run_dir", str(tmp_path / "run"),
            "--ckpt_path", ckpt]
    DfnCLI(args=args)
    pngs = sorted((tmp_path / "run" / "predictions").glob("*.png"))
    assert [p.name for p in pngs][:2] == ["filter_000.00deg.png", "filter_045.00deg.png"]
    assert len(pngs) == 6
    with pytest.raises(SystemExit):
        main(args)
    assert "already exist" in capsys.readouterr().err
    for p in pngs:
        os.utime(p, ns=(0, 0))                                  # so a rewrite is visible
    DfnCLI(args=args + ["--trainer.callbacks.init_args.overwrite", "true"])
    assert all(p.stat().st_mtime_ns > 0 for p in pngs)         # each one rewritten


@pytest.mark.parametrize("args,message", [
    (["--model.init_args.no_such_key", "1"], "no_such_key"),
    (["--model.init_args.optimizer.init_args.lr", "-0.1"], "Invalid learning rate: -0.1"),
    (["--model.init_args.kernel_size", "7"], "kernel_size 7 needs 49 filter values"),
    (["--model.init_args.compile", "fastest"], "model.compile must be true, false or a torch.compile mode"),
])
def test_bad_config_values_give_one_clear_error(tmp_path, capsys, args, message, tiny):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *tiny, "--run_dir", str(tmp_path / "r"), *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_config_file(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(tmp_path / "nope.yaml")])
    assert exit_info.value.code == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_checkpoint_of_a_different_model(tmp_path, capsys, fit, tiny):
    """Same class, another architecture (wider net): refused, naming both."""
    fit(tmp_path / "run", 2)
    ckpt = str(tmp_path / "run" / "checkpoints" / "last.ckpt")
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", *tiny, "--run_dir", str(tmp_path / "v"),
              "--model.init_args.net.init_args.hidden", "[16]", "--ckpt_path", ckpt])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and len(line) < 250, line
    assert "does not fit the configured SteerableFilterModel" in line and "there" in line and "here" in line
    assert not (tmp_path / "v").exists()                    # refused before anything was written
    with pytest.raises(SystemExit):
        main(["validate", *tiny, "--run_dir", str(tmp_path / "v2"),
              "--ckpt_path", str(tmp_path / "nope.ckpt")])
    assert "no such file" in capsys.readouterr().err


def test_print_config_and_help():
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    out = subprocess.run([sys.executable, "-m", "dfn", "fit", "--config", CONFIG, "--print_config"],
                         cwd=ROOT, capture_output=True, text=True, check=True, env=env).stdout
    assert "class_path: dfn.models.SteerableFilterModel" in out and "run_dir: runs/steerable" in out
    assert "      mode: offline" in out                            # what W&B will really do
    main_help = subprocess.run([sys.executable, "-m", "dfn", "--help"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout
    assert "python -m dfn pack" in main_help and "steerable.yaml" in main_help
    assert "writes <run_dir>/test_results_step<N>.json." in " ".join(main_help.split())   # not cut
    help_text = subprocess.run([sys.executable, "-m", "dfn", "fit", "--help"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout
    assert help_text.startswith("usage: python -m dfn fit --config configs/X.yaml [options]\n")
    first_screen = "\n".join(help_text.splitlines()[:40])
    assert "--run_dir" in first_screen and "--ckpt_path" in first_screen
    assert "datamodules.StereoHDF5DataModule" in first_screen
    known = help_text[help_text.index("--data CONFIG"):help_text.index("--data CONFIG") + 1000]
    assert "datamodules.SteerableDataModule" in known                 # not only LightningDataModule


def test_every_command_says_what_it_wrote_and_test_prints_one_table(tmp_path, capsys, fit, tiny):
    fit(tmp_path / "run", 2)
    assert (f"dfn: fit wrote to {tmp_path / 'run'}: checkpoints/ (last.ckpt, step0000002.ckpt), config.yaml, "
            "figures/ (val_figure_step0000002.png)") in capsys.readouterr().err
    main(["test", *tiny, "--run_dir", str(tmp_path / "run"), "--ckpt_path", "last"])
    out, err = capsys.readouterr()
    table = out[out.index("test results, step 2"):].splitlines()
    assert table[0].split() == ["test", "results,", "step", "2", "filter_cos_mean", "filter_cos_min", "loss"]
    assert table[2].split()[0] == "test" and len(table[2].split()) == 4
    assert f"dfn: test wrote to {tmp_path / 'run'}: config.test.1.yaml, test_results_step0000002.json" in err


def test_frames_are_written_once_under_model_and_the_data_follows(tmp_path, highway_tiny, dfn_main):
    """configs/highway.yaml sets frames_in/frames_out under model only: the DataModule gets the
    model's (the saved config says so too); a different value under data is one clear error."""
    video = moving_texture(tmp_path / "v.h5")
    cli = DfnCLI(args=[*highway_tiny(video), "--model.init_args.frames_in", "2", "--model.init_args.frames_out", "4",
                       "--run_dir", str(tmp_path / "run")], run=False)
    assert (cli.datamodule.frames_in, cli.datamodule.frames_out) == (2, 4)
    assert cli.config.data.init_args.frames_in == 2
    status, err = dfn_main(["fit", *highway_tiny(video), "--data.init_args.frames_in", "5",
                            "--run_dir", str(tmp_path / "bad"), "--trainer.max_steps", "1"])
    assert status == 2 and err.count("\n") == 1, err
    assert "data.frames_in 5 differs from model.frames_in 3: set it once, under model" in err
