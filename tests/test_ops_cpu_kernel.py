"""The fused C kernel: built and used where a compiler exists, equal to the portable path, and
a clean fallback where it cannot be built."""
import shutil
import warnings

import pytest
import torch

from dfn.ops import cpu_kernel, dynamic_local_filter


@pytest.fixture
def fresh_library(monkeypatch, tmp_path):
    """Build into an empty cache, and forget the result afterwards."""
    monkeypatch.setenv("DFN_CACHE_DIR", str(tmp_path))
    cpu_kernel.library.cache_clear()
    yield tmp_path
    cpu_kernel.library.cache_clear()


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_builds_into_the_cache_dir(fresh_library):
    assert cpu_kernel.library() is not None
    assert len(list((fresh_library / "kernels").glob("cpu_kernels-*.so"))) == 1


def test_switched_off_by_environment(fresh_library, monkeypatch):
    monkeypatch.setenv("DFN_CPU_KERNEL", "0")
    assert cpu_kernel.library() is None
    x, f = torch.randn(2, 1, 8, 8), torch.randn(2, 9, 8, 8)
    assert not cpu_kernel.usable(x, f)
    dynamic_local_filter(x, f, 3)                               # the portable path still runs


def test_missing_compiler_warns_once_and_falls_back(fresh_library, monkeypatch):
    monkeypatch.setenv("CC", "no-such-compiler-dfn")
    with pytest.warns(UserWarning, match="no C compiler found"):
        assert cpu_kernel.library() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cpu_kernel.library() is None                     # cached: no second warning


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("C", [1, 3])
def test_fused_equals_portable_and_is_thread_count_independent(dtype, C):
    if not cpu_kernel.usable(torch.zeros(1, dtype=dtype)):
        pytest.skip("fused kernel unavailable on this machine")
    x = torch.randn(5, C, 17, 23, dtype=dtype, requires_grad=True)
    f = torch.randn(5, 121, 17, 23, dtype=dtype, requires_grad=True)
    g = torch.randn(5, C, 17, 23, dtype=dtype)

    def run():
        out = dynamic_local_filter(x, f, 11)
        return (out, *torch.autograd.grad(out, (x, f), g))

    fused = run()
    with cpu_kernel.fused(False):
        portable = run()
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    for a, b in zip(fused, portable):
        torch.testing.assert_close(a, b, **tol)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = run()
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(fused, single):
        assert torch.equal(a, b)
