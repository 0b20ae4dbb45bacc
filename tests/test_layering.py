"""The import rules of docs/design.md ("Layers"), checked in fresh interpreters: the science stack
below the models knows no Lightning, the data layer, evaluation, footage tools and pictures know
no models, callbacks or harness, and ``python -m dfn``'s CPU-share step loads before torch."""
import re
import subprocess
import sys

import pytest

from helpers import ROOT

HARNESS = ("dfn.models", "dfn.callbacks", "dfn.harness", "dfn.predictors")


def imported_by(module: str) -> set[str]:
    """Every module a fresh ``python -c "import <module>"`` has loaded."""
    done = subprocess.run([sys.executable, "-c", f"import sys, {module}; print('\\n'.join(sys.modules))"],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def lightning(loaded: set[str]) -> set[str]:
    return {m for m in loaded if m == "lightning" or m.startswith("lightning.")}


@pytest.mark.parametrize("module", ["dfn.ops", "dfn.layers", "dfn.nets", "dfn.predictors", "dfn.evaluation.readout",
                                    "dfn.evaluation.metrics", "dfn.footage.pack", "dfn.footage.scenes",
                                    "dfn.pictures.viz"])
def test_the_science_stack_evaluation_and_footage_tools_import_no_lightning(module):
    loaded = imported_by(module)
    assert not lightning(loaded)
    assert not {m for m in loaded if m.startswith(("dfn.models", "dfn.callbacks", "dfn.harness", "datamodules"))}


def test_the_data_layer_imports_no_models_callbacks_or_harness():
    loaded = imported_by("datamodules")
    assert not {m for m in loaded if m.startswith(HARNESS)}


def test_the_cpu_share_step_of_python_m_dfn_loads_before_torch():
    assert not {m for m in imported_by("dfn.harness.cpu_share") if m == "torch" or m.startswith("torch.")}


def test_private_lightning_members_are_used_in_one_module_only():
    """Outside dfn/harness/lightning_seams.py no source reads a ``_private`` member of a Lightning
    or W&B object (``logger._x``, ``trainer._x``, ``best._x``) or overrides a private hook."""
    hooks = re.compile(r"def _(add_subcommands|prepare_subcommand_parser|parse_ckpt_path|run_subcommand|"
                       r"monitor_candidates|save_last_checkpoint)\b|\b(logger|trainer|best|parser|callback)\._[a-z]"
                       r"|_actions\b|_wandb_init|_experiment\b|_every_n_train_steps|_last_global_step_saved"
                       r"|_defer_save_until_validation|_train_time_interval")
    offenders = [f"{path.relative_to(ROOT)}:{n}" for path in sorted((ROOT / "dfn").rglob("*.py"))
                 if path.name != "lightning_seams.py"
                 for n, line in enumerate(path.read_text().splitlines(), 1) if hooks.search(line)]
    assert not offenders, offenders
