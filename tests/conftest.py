import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch

# Without a GPU the Triton kernels run on CPU tensors through Triton's interpreter; the flag is
# read when the kernels are defined, so it is set before anything imports them.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from helpers import ROOT  # noqa: E402  (after the flag: helpers imports Lightning)

# configs/steerable.yaml shrunk to seconds: 8x8 images, an 8-unit MLP, 5 batches an epoch,
# validation every 5 steps, last.ckpt every step
STEERABLE_TINY = ["--config", str(ROOT / "configs/steerable.yaml"), "--data.init_args.image_size", "8",
                  "--data.init_args.batch_size", "4", "--data.init_args.val_angles", "4",
                  "--data.init_args.val_images_per_angle", "1", "--data.init_args.batches_per_epoch", "5",
                  "--model.init_args.net.init_args.hidden", "[8]", "--trainer.val_check_interval", "5",
                  "--checkpoint.every_n_train_steps", "1", "--trainer.enable_progress_bar", "false",
                  "--trainer.enable_model_summary", "false"]


QUIET = ["--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
         "--trainer.enable_model_summary", "false"]
NET = "--model.init_args.predictor.init_args.net.init_args."


def _moving_mnist_tiny(cache: Path) -> list[str]:
    """configs/moving_mnist.yaml shrunk: 32x32, 3 + 2 frames, a few-channel net, 3x3 filters."""
    return ["--config", str(ROOT / "configs/moving_mnist.yaml"),
            "--data.init_args.image_size", "32", "--model.init_args.frames_in", "3",
            "--model.init_args.frames_out", "2", "--data.init_args.batch_size", "2",
            "--data.init_args.batches_per_epoch", "3", "--data.init_args.val_sequences", "4",
            "--data.init_args.test_sequences", "4", "--data.init_args.cache_dir", str(cache),
            "--model.init_args.predictor.init_args.kernel_size", "3",
            NET + "encoder", "[4, 8]", NET + "encoder_strides", "[1, 2]", NET + "decoder", "[8]",
            NET + "upsampled", "[4]", NET + "head", "[8, 9]", NET + "image_size", "32",
            "--trainer.val_check_interval", "2", "--checkpoint.every_n_train_steps", "1",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def _highway_tiny(path: Path) -> list[str]:
    """configs/highway.yaml on the file at ``path``, 32x32, a few-channel net, 5x5 filters (+ bias)."""
    return ["--config", str(ROOT / "configs/highway.yaml"), "--data.init_args.path", str(path),
            "--data.init_args.size", "[32, 32]", "--data.init_args.batch_size", "8",
            "--data.init_args.val_samples", "4", "--model.init_args.predictor.init_args.kernel_size", "5",
            NET + "encoder", "[8, 16]", NET + "encoder_strides", "[1, 2]", NET + "decoder", "[16]",
            NET + "upsampled", "[16]", NET + "head", "[16, 26]", NET + "image_size", "32",
            "--trainer.val_check_interval", "50", "--checkpoint.every_n_train_steps", "1", *QUIET]


def _stereo_tiny(path: Path) -> list[str]:
    """configs/stereo.yaml on the file at ``path``, 32x32, a few-channel net; 1x13 filters + bias."""
    return ["--config", str(ROOT / "configs/stereo.yaml"), "--data.init_args.path", str(path),
            "--data.init_args.size", "[32, 32]", "--data.init_args.batch_size", "8",
            "--data.init_args.val_samples", "4", NET + "encoder", "[8, 16, 16]", NET + "encoder_strides",
            "[1, 2, 1]", NET + "untied_bias", "[2]", NET + "decoder", "[16]", NET + "upsampled", "[16]",
            NET + "head", "[16, 14]", NET + "image_size", "32",
            "--trainer.val_check_interval", "50", "--checkpoint.every_n_train_steps", "1", *QUIET]


@pytest.fixture
def root() -> Path:
    """The repository's root folder."""
    return ROOT


@pytest.fixture
def quiet() -> list[str]:
    """CLI flags: no logger, no progress bar, no model summary."""
    return list(QUIET)


@pytest.fixture
def moving_mnist_tiny() -> Callable[[Path], list[str]]:
    """``moving_mnist_tiny(cache_dir)``: CLI arguments of a seconds-long Moving MNIST run."""
    return _moving_mnist_tiny


@pytest.fixture
def highway_tiny() -> Callable[[Path], list[str]]:
    """``highway_tiny(h5_path)``: CLI arguments of a seconds-long highway run on that file."""
    return _highway_tiny


@pytest.fixture
def stereo_tiny() -> Callable[[Path], list[str]]:
    """``stereo_tiny(h5_path)``: CLI arguments of a seconds-long stereo run on that file."""
    return _stereo_tiny


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _wandb_disabled_in_process(monkeypatch) -> None:
    """In-process CLI runs log to a disabled W&B; the subprocess tests of tracking set offline."""
    monkeypatch.setenv("WANDB_MODE", "disabled")


@pytest.fixture
def steerable_tiny() -> list[str]:
    return list(STEERABLE_TINY)


@pytest.fixture
def dfn_process() -> Callable[..., subprocess.CompletedProcess]:
    """``dfn_process(*args, env={...})``: ``python -m dfn *args`` in a real process (tests/ on the
    path for the helper callbacks, W&B disabled), its output captured."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
        environment = {**os.environ, "PYTHONPATH": str(ROOT / "tests"), "WANDB_MODE": "disabled", **(env or {})}
        return subprocess.run([sys.executable, "-m", "dfn", *args], cwd=ROOT, env=environment,
                              capture_output=True, text=True, timeout=timeout)

    return run


@pytest.fixture
def dfn_main(capsys, monkeypatch) -> Callable[[list[str]], tuple[int, str]]:
    """``dfn_main(args)``: ``python -m dfn *args`` in this process -> (exit status, stderr), with
    ``sys.argv`` as a shell gives it (not pytest's own arguments, which LightningCLI warns about)."""
    from dfn.harness.cli import main

    monkeypatch.setattr(sys, "argv", ["dfn"])

    def run(args: list[str]) -> tuple[int, str]:
        try:
            main(args)
            status = 0
        except SystemExit as exit:
            status = exit.code
        return status, capsys.readouterr().err

    return run


@pytest.fixture
def tmpfs(tmp_path) -> Callable[[str], Path]:
    """``tmpfs("2m")``: a fresh tmpfs of that size mounted under ``tmp_path`` (another file system
    than ``$TMPDIR``, or a small disk that fills up), unmounted after the test. Needs root (CI)."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        point = tmp_path / f"tmpfs{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)
