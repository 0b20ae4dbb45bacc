"""The import rules of docs/design.md ("Layers"), checked in fresh interpreters: the science stack
below the models knows no Lightning, and the data layer knows no models or callbacks."""
import subprocess
import sys

import pytest

from helpers import ROOT


def imported_by(module: str) -> set[str]:
    """Every module a fresh ``python -c "import <module>"`` has loaded."""
    done = subprocess.run([sys.executable, "-c", f"import sys, {module}; print('\\n'.join(sys.modules))"],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    return set(done.stdout.split())


@pytest.mark.parametrize("module", ["dfn.ops", "dfn.layers", "dfn.nets", "dfn.predictors"])
def test_the_science_stack_below_the_models_imports_no_lightning(module):
    loaded = imported_by(module)
    assert not {m for m in loaded if m == "lightning" or m.startswith("lightning.")}
    assert not {m for m in loaded if m.startswith(("dfn.models", "dfn.callbacks", "datamodules"))}


def test_the_data_layer_imports_no_models_callbacks_or_cli():
    loaded = imported_by("datamodules")
    assert not {m for m in loaded if m.startswith(("dfn.models", "dfn.callbacks", "dfn.cli", "dfn.predictors"))}
