"""bf16-mixed training on the CPU, and the compile flag, through the CLI."""
import warnings

import pytest
import torch
from lightning.pytorch import Trainer

import dfn.callbacks.run as callbacks_run
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


@pytest.mark.parametrize("native, precision, hinted", [
    (True, "32-true", True), (True, "bf16-mixed", False), (False, "32-true", False)])
def test_a_float32_fit_on_a_cpu_with_native_bf16_names_the_faster_choice(
        monkeypatch, capsys, tmp_path, steerable_tiny, native, precision, hinted):
    """Only a float32 fit on a CPU with native bfloat16 gets the one-line hint, once training starts."""
    monkeypatch.setattr(callbacks_run, "native_bf16", lambda: native)
    DfnCLI(args=["fit", *steerable_tiny, "--run_dir", str(tmp_path / "run"), "--trainer.max_steps", "1",
                 "--trainer.precision", precision])
    hints = [line for line in capsys.readouterr().err.splitlines() if "has native bfloat16" in line]
    assert len(hints) == hinted
    assert not hinted or "--trainer.precision bf16-mixed" in hints[0]


def test_validation_scores_run_in_float32_under_bf16_autocast(monkeypatch):
    """bf16-mixed runs the model in bfloat16, but its scores are float32 outside autocast: SSIM's
    convolutions in bfloat16 cancel its variances (a fit scored 0.93 where float32 says 0.99)."""
    from dfn.evaluation import metrics
    from dfn.models import VideoPredictionModel
    from dfn.nets import EncoderDecoder
    from dfn.predictors import DynamicFilterPredictor

    seen, ssim = [], metrics.structural_similarity_index_measure

    def recording_ssim(prediction, target, **kwargs):
        seen.append((prediction.dtype, target.dtype, torch.is_autocast_enabled("cpu")))
        return ssim(prediction, target, **kwargs)

    monkeypatch.setattr(metrics, "structural_similarity_index_measure", recording_ssim)
    net = EncoderDecoder(encoder=[4, 8], encoder_strides=[1, 2], decoder=[8], upsampled=[4],
                         head=[8, 9], image_size=32)
    model = VideoPredictionModel(DynamicFilterPredictor(net, kernel_size=3), frames_in=2, frames_out=2)
    batch = {"frames": torch.rand(2, 4, 1, 32, 32).bfloat16()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model.validation_step(batch, 0)
    assert seen == [(torch.float32, torch.float32, False)]
    assert model.val_curves.compute()["ssim"].dtype == torch.float64
