"""bf16-mixed training on the CPU, and the compile flag, through the CLI."""
import torch

from dfn.cli import DfnCLI
from test_cli import CONFIG, ROOT, TINY
from test_video import tiny_args


def test_bf16_mixed_steerable_and_video(tmp_path):
    steerable = DfnCLI(args=["fit", "--config", str(ROOT / CONFIG), "--run_dir", str(tmp_path / "s"),
                             "--trainer.max_steps", "2", "--trainer.precision", "bf16-mixed", *TINY])
    assert steerable.trainer.precision == "bf16-mixed"
    video = DfnCLI(args=["fit", *tiny_args(tmp_path / "cache"), "--run_dir", str(tmp_path / "v"),
                         "--trainer.max_steps", "2", "--trainer.precision", "bf16-mixed"])
    state = torch.load(tmp_path / "v" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in state.values())
    assert video.trainer.global_step == 2


def test_compile_flag_keeps_checkpoint_names(tmp_path):
    cli = DfnCLI(args=["fit", "--config", str(ROOT / CONFIG), "--run_dir", str(tmp_path / "c"),
                       "--trainer.max_steps", "2", "--model.init_args.compile", "true", *TINY])
    assert cli.model.net._compiled_call_impl is not None
    state = torch.load(tmp_path / "c" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(k.startswith("net.layers.") for k in state)


def test_compile_takes_a_mode_by_name(tmp_path):
    cli = DfnCLI(args=["fit", "--config", str(ROOT / CONFIG), "--run_dir", str(tmp_path / "m"),
                       "--trainer.max_steps", "1", "--model.init_args.compile", "reduce-overhead", *TINY])
    assert cli.model.compile_network == "reduce-overhead" and cli.model.net._compiled_call_impl is not None
