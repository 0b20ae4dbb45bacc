"""Every leaf key of every committed experiment config, given a value of the wrong type and (for
numbers) an out-of-range one: each is refused in one line under 250 characters with exit status 2,
or accepted and then runs a training step.

The leaves come from ``fit --print_config`` of the committed config. A key is walked once per
class that owns it (the trainer's, checkpoint's and logger's keys once, with the steerable
experiment; a net's keys once per net class). Entries of lists of classes (callbacks) are out of
reach of a command-line flag and not walked.
"""
from __future__ import annotations

import io
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from dfn.harness.cli import main
from hdf5_data import moving_texture, stereo_planes
from helpers import ROOT

pytestmark = pytest.mark.slow

EXPERIMENTS = ["steerable", "moving_mnist", "highway", "stereo", "stereo_binocular"]
CONFIGS = {"stereo_binocular": ["configs/stereo.yaml", "configs/stereo_binocular.yaml"]}
SHARED = ("trainer", "checkpoint", "seed_everything", "run_dir", "ckpt_path", "weights_only")
# keys a test run cannot vary: where the run goes, and the stop that keeps an accepted value short
FIXED = {"run_dir", "trainer.max_time"}


def printed_config(config_args: list[str]) -> dict:
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as done, pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["dfn"])
        main(["fit", *config_args, "--print_config"])
    assert done.value.code in (0, None)
    return yaml.safe_load(out.getvalue())


def leaves(node: Any, key: str = "", owner: str = "") -> Iterator[tuple[str, str, Any]]:
    """``(dotted key, class_path owning it, value)`` of every scalar or list-of-scalars leaf."""
    if isinstance(node, dict):
        owner = node.get("class_path", owner)
        for name, value in node.items():
            yield from leaves(value, f"{key}.{name}" if key else name, owner)
    elif not (isinstance(node, list) and any(isinstance(item, dict) for item in node)):
        yield key, owner, node


def bad_values(key: str, value: Any) -> list[str]:
    """A value of the wrong type, and for a number one below any sensible range."""
    if isinstance(value, bool):
        return ["maybe"]
    if isinstance(value, (int, float)):
        return ["abc", str(min(-1, value - 1) if isinstance(value, int) else -1.0)]
    if isinstance(value, list):
        return ["abc"]
    if value is None:
        return ["abc", "-1"]
    return ["no.such.Thing" if key.endswith("class_path") else "[1, [2]]"]


def cases() -> Iterator[tuple[str, str, str]]:
    seen: set[tuple[str, str]] = set()
    for experiment in EXPERIMENTS:
        args = [a for path in CONFIGS.get(experiment, [f"configs/{experiment}.yaml"])
                for a in ("--config", str(ROOT / path))]
        for key, owner, value in leaves(printed_config(args)):
            shared = key.split(".")[0] in SHARED
            if key in FIXED or (shared and experiment != "steerable") or (key, owner) in seen:
                continue
            seen.add((key, owner))
            for bad in bad_values(key, value):
                yield experiment, key, bad


def tiny_args(experiment: str, folder: Path, request) -> list[str]:
    if experiment == "steerable":
        return request.getfixturevalue("steerable_tiny")
    if experiment == "moving_mnist":
        return request.getfixturevalue("moving_mnist_tiny")(folder / "cache")
    if experiment == "highway":
        return request.getfixturevalue("highway_tiny")(moving_texture(folder / "video.h5"))
    tiny = request.getfixturevalue("stereo_tiny")(stereo_planes(folder / "pairs.h5"))
    if experiment == "stereo_binocular":
        net = "--model.init_args.predictor.init_args.net.init_args."
        tiny += ["--config", str(ROOT / "configs/stereo_binocular.yaml"), net + "in_channels", "27",
                 net + "head", "[16, 25]", net + "image_size", "32"]
    return tiny


def pytest_generate_tests(metafunc) -> None:
    """The cases need the printed configs: built only when the slow tests are selected."""
    wanted = "slow" in (metafunc.config.getoption("markexpr") or "")
    walked = list(cases()) if wanted else []
    metafunc.parametrize("experiment,key,bad", walked, ids=[f"{e}:{k}={b}" for e, k, b in walked])


def test_a_bad_value_is_one_line_or_runs(tmp_path, monkeypatch, request, dfn_main, experiment, key, bad):
    monkeypatch.chdir(tmp_path)
    args = [*tiny_args(experiment, tmp_path, request), "--run_dir", str(tmp_path / "run"),
            "--trainer.max_steps", "1", "--trainer.max_time", "00:00:01:00", f"--{key}", bad]
    status, err = dfn_main(["fit", *args])
    lines = [line for line in err.splitlines() if line.strip()]
    if status == 0:
        return
    assert status == 2, f"exit {status}:\n{err[-2000:]}"
    assert len(lines) == 1 and len(lines[0]) < 250, err[-2000:]
    assert key.split(".")[-1] in lines[0] or "--" in lines[0], lines[0]
