"""benchmarks/gpu_run.sh, the prepared GPU session, as a dry run on the CPU (tiny sizes, the
Triton kernels in the interpreter): every stage runs and leaves its result, a second call
continues instead of starting over, and the files to bring back land in $OUT."""
import json
import os
import subprocess
import tarfile

import pytest
from helpers import ROOT


pytestmark = pytest.mark.slow
pytest.importorskip("triton", minversion="3.3", reason="the GPU script runs the triton backend (pip install triton)")


def run_script(results, out):
    env = {**os.environ, "OUT": str(out), "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(ROOT / "benchmarks/gpu_run.sh"), "--device", "cpu", "--dry-run",
                           "--results", str(results)], env=env, capture_output=True, text=True,
                          timeout=900)


def test_dry_run_runs_every_stage_and_resumes(tmp_path):
    results, out = tmp_path / "gpu_results", tmp_path / "out"
    out.mkdir()
    first = run_script(results, out)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "1 passed" in (results / "tests.log").read_text()
    ops = json.loads((results / "ops.json").read_text())
    assert ops["softmax"] and {"ours_loop", "ours_blocks", "ours_triton"} <= set(ops["cases"][0])
    train = json.loads((results / "train_auto.json").read_text())["models"][0]
    assert train["backend"] == "auto" and train["seconds_per_iteration"] > 0 and train["channels_last"]
    nchw = json.loads((results / "train_auto_nchw.json").read_text())["models"][0]
    assert not nchw["channels_last"] and nchw["seconds_per_iteration"] > 0
    test = json.loads((results / "test.json").read_text())
    assert test["global_step"] == 3921 and test["metrics"]["test/bce"] > 0
    with tarfile.open(out / "gpu_results.tar.gz") as archive:
        names = archive.getnames()
    assert "gpu_results/test.json" in names and not any(n.endswith(".ckpt") for n in names)
    assert (out / "last.ckpt").stat().st_size > 1e6

    second = run_script(results, out)                      # everything done: nothing is redone
    assert second.returncode == 0, second.stdout + second.stderr
    assert "fit from" not in second.stdout and "test of step" not in second.stdout
    assert "last checkpoint: step 3921" in second.stdout
