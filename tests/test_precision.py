"""bf16-mixed training on the CPU, and the compile flag, through the CLI."""
import warnings

import pytest
import torch
from lightning.pytorch import Trainer

import dfn.harness.cli as cli_module
from dfn.harness.cli import DfnCLI


def dtypes_of_first_layer(cli: DfnCLI, net) -> list[torch.dtype]:
    """Run the CLI's fit, recording the output dtype of ``net``'s first convolution in each
    training forward (pictures drawn after validation run outside autocast)."""
    seen = []
    first = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    first.register_forward_hook(lambda module, args, out: seen.append(out.dtype) if module.training else None)
    cli.trainer.fit(cli.model, cli.datamodule)
    return seen


def test_bf16_mixed_steerable_and_video(tmp_path, steerable_tiny, moving_mnist_tiny):
    """The forward really runs in bfloat16 (autocast), while the weights stay float32."""
    steerable = DfnCLI(args=[*steerable_tiny, "--run_dir", str(tmp_path / "s"), "--trainer.max_steps", "2",
                             "--trainer.precision", "bf16-mixed"], run=False)
    assert set(dtypes_of_first_layer(steerable, steerable.model.net)) == {torch.bfloat16}
    video = DfnCLI(args=[*moving_mnist_tiny(tmp_path / "cache"), "--run_dir", str(tmp_path / "v"),
                         "--trainer.max_steps", "2", "--trainer.precision", "bf16-mixed"], run=False)
    assert set(dtypes_of_first_layer(video, video.model.predictor.net)) == {torch.bfloat16}
    state = torch.load(tmp_path / "v" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in state.values())
    assert video.trainer.global_step == 2


def test_compile_flag_keeps_checkpoint_names_and_values(tmp_path, steerable_tiny):
    """A compiled run saves the eager parameter names and trains to the eager run's weights."""
    runs = {}
    for mode in ("false", "true"):
        cli = DfnCLI(args=["fit", *steerable_tiny, "--run_dir", str(tmp_path / mode), "--trainer.max_steps", "2",
                           "--model.init_args.compile", mode])
        assert (cli.model.net._compiled_call_impl is not None) == (mode == "true")
        runs[mode] = torch.load(tmp_path / mode / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(k.startswith("net.layers.") for k in runs["true"]) and set(runs["true"]) == set(runs["false"])
    for key, value in runs["false"].items():
        torch.testing.assert_close(runs["true"][key], value, rtol=1e-5, atol=1e-6)


def test_compile_takes_a_mode_by_name(tmp_path, steerable_tiny, monkeypatch):
    """The mode named in the config is the one torch.compile gets."""
    modes, compile_ = [], torch.compile

    def recording_compile(*args, **kwargs):
        modes.append(kwargs.get("mode"))
        return compile_(*args, **kwargs)

    monkeypatch.setattr(torch, "compile", recording_compile)
    cli = DfnCLI(args=["fit", *steerable_tiny, "--run_dir", str(tmp_path / "m"), "--trainer.max_steps", "1",
                       "--model.init_args.compile", "reduce-overhead"])
    assert modes == ["reduce-overhead"] and cli.model.net._compiled_call_impl is not None
    assert cli.trainer.global_step == 1 and cli.trainer.callback_metrics["train/loss"].isfinite()


@pytest.mark.parametrize("native, warned", [(False, True), (True, False)])
def test_bf16_on_a_cpu_that_emulates_it_warns_once(monkeypatch, native, warned):
    """bf16 convolutions without native bfloat16 take a slow fallback: fit says so, once."""
    monkeypatch.setattr(cli_module, "native_bf16", lambda: native)
    trainer = Trainer(accelerator="cpu", precision="bf16-mixed", logger=False, enable_checkpointing=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli_module.warn_if_emulated_bf16(trainer)
        cli_module.warn_if_emulated_bf16(Trainer(accelerator="cpu", logger=False, enable_checkpointing=False))
    messages = [str(w.message) for w in caught if "native bfloat16" in str(w.message)]
    assert len(messages) == warned
    assert not warned or "Use --trainer.precision 32-true" in messages[0]
