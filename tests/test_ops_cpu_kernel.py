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


def test_missing_compiler_warns_once_and_auto_falls_back(fresh_library, monkeypatch):
    monkeypatch.setenv("CC", "no-such-compiler-dfn")
    with pytest.warns(UserWarning, match="no C compiler found"):
        assert cpu_kernel.library() is None
    x, f = torch.randn(2, 1, 8, 8), torch.randn(2, 9, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cpu_kernel.library() is None                     # cached: no second warning
        assert not cpu_kernel.usable(x, f)
        torch.testing.assert_close(dynamic_local_filter(x, f, 3),     # "auto": the tap loop
                                   dynamic_local_filter(x, f, 3, backend="loop"))
    with pytest.raises(ValueError, match="backend 'c' runs .* and no compiler: use 'auto'"):
        dynamic_local_filter(x, f, 3, backend="c")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("C", [1, 3])
def test_fused_equals_portable_and_is_thread_count_independent(dtype, C):
    if not cpu_kernel.usable(torch.zeros(1, dtype=dtype)):
        pytest.skip("the C kernel needs a C compiler ($CC or cc); none built it here")
    x = torch.randn(5, C, 17, 23, dtype=dtype, requires_grad=True)
    f = torch.randn(5, 121, 17, 23, dtype=dtype, requires_grad=True)
    g = torch.randn(5, C, 17, 23, dtype=dtype)

    def run(backend="c"):
        out = dynamic_local_filter(x, f, 11, backend=backend)
        return (out, *torch.autograd.grad(out, (x, f), g))

    fused = run()
    portable = run("loop")
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
