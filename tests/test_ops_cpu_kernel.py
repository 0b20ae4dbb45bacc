"""The fused C kernel: built and used where a compiler exists, equal to the portable path, and
a clean fallback where it cannot be built."""
import shutil
import warnings

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from dfn.ops import cpu_kernel, dynamic_local_filter
from dfn.ops.profiling import cpu_features


@pytest.fixture
def fresh_library(monkeypatch, tmp_path):
    """Build into an empty cache, and forget the result afterwards."""
    monkeypatch.setenv("DFN_CACHE_DIR", str(tmp_path))
    cpu_kernel.library.cache_clear()
    yield tmp_path
    cpu_kernel.library.cache_clear()


needs_kernel = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")


def assert_c_equals_loop_at_any_thread_count(run, dtype: torch.dtype) -> None:
    """``run(backend)`` -> tensors: the C kernel's equal the tap loop's (to rounding) and are the
    same bit for bit on one thread."""
    fused, portable = run("c"), run("loop")
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    for a, b in zip(fused, portable):
        torch.testing.assert_close(a, b, **tol)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = run("c")
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(fused, single):
        assert torch.equal(a, b)


@needs_kernel
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

    def run(backend):
        out = dynamic_local_filter(x, f, 11, backend=backend)
        return (out, *torch.autograd.grad(out, (x, f), g))

    assert_c_equals_loop_at_any_thread_count(run, dtype)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("C,bias_channels,kernel,origin", [
    (1, 0, (9, 9), None), (3, 1, (3, 5), None), (3, 3, (1, 25), (0, 0)), (2, 1, (4, 4), (-1, -3)),
    (1, 1, (5, 5), None),                         # the window wider than the image
])
def test_fused_softmax_equals_softmax_then_filter(dtype, C, bias_channels, kernel, origin):
    """Logits in (the models' case): the kernels with the softmax and the bias inside give the
    values and gradients of torch's softmax followed by the tap loop, whatever the thread count."""
    B, H, W = 3, 9, 37                            # W: not a multiple of any register block
    x = torch.randn(B, C, H, W, dtype=dtype, requires_grad=True)
    logits = (4 * torch.randn(B, kernel[0] * kernel[1], H, W, dtype=dtype)).requires_grad_()
    bias = torch.randn(B, bias_channels, H, W, dtype=dtype, requires_grad=True) if bias_channels else None
    inputs = [t for t in (x, logits, bias) if t is not None]
    g = torch.randn(B, C, H, W, dtype=dtype)

    def run(backend):
        out = dynamic_local_filter(x, logits, kernel, softmax=True, bias=bias, origin=origin,
                                   backend=backend)
        return (out, *torch.autograd.grad(out, inputs, g))

    assert_c_equals_loop_at_any_thread_count(run, dtype)


@needs_kernel
@pytest.mark.parametrize("vectors,flags,needs", [
    ("512-bit", cpu_kernel.FLAG_SETS[0], "avx512f"),            # -march=native on an AVX-512 CPU
    ("256-bit AVX2", [f.replace("native", "haswell") for f in cpu_kernel.FLAG_SETS[0]], "avx2"),
    ("portable", cpu_kernel.FLAG_SETS[-1], None),
])
def test_every_vector_width_gives_the_same_softmax_op(vectors, flags, needs, fresh_library, monkeypatch):
    """The library built for 512-bit vectors, for AVX2 and with the portable flags: each gives the
    tap loop's values and gradients, for rows whose width leaves partial blocks (W = 37, 70)."""
    if needs and not cpu_features()[needs]:
        pytest.skip(f"this CPU has no {needs} to run the {vectors} build")
    monkeypatch.setattr(cpu_kernel, "FLAG_SETS", (flags,))
    assert cpu_kernel.library() is not None
    for C, kernel, W in ((1, (11, 11), 70), (3, (13, 1), 37), (2, (3, 5), 37)):
        x = torch.randn(2, C, 6, W, requires_grad=True)
        logits = (4 * torch.randn(2, kernel[0] * kernel[1], 6, W)).requires_grad_()
        g = torch.randn(2, C, 6, W)

        def run(backend):
            out = dynamic_local_filter(x, logits, kernel, softmax=True, backend=backend)
            return (out, *torch.autograd.grad(out, (x, logits), g))

        for a, b in zip(run("c"), run("loop")):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        assert_bfloat16_logits_read_as_widened(x.detach(), logits.detach(), g, kernel)


def assert_bfloat16_logits_read_as_widened(x, logits, g, kernel, bias=None) -> None:
    """bfloat16 logits beside a float32 image (the generator's output under autocast): the output
    and the image's gradient are those of the same logits widened to float32, bit for bit, and
    the logits' gradient is bfloat16, the float32 one rounded once."""
    half = logits.bfloat16().requires_grad_()
    wide = half.detach().float().requires_grad_()
    results = []
    for l in (half, wide):
        xi = x.detach().requires_grad_()
        out = dynamic_local_filter(xi, l, kernel, softmax=True, bias=bias, backend="c")
        results.append((out, *torch.autograd.grad(out, (xi, l), g)))
    (out, dx, dl), (out32, dx32, dl32) = results
    assert out.dtype == dx.dtype == torch.float32 and dl.dtype == torch.bfloat16
    assert torch.equal(out, out32) and torch.equal(dx, dx32) and torch.equal(dl, dl32.bfloat16())


@needs_kernel
def test_fused_softmax_is_accurate_for_logits_of_any_size():
    """Float32 logits spread over hundreds (exp's range reduction and its floor at -87): the
    fused result is within a few float32 roundings of a float64 softmax, and never NaN."""
    torch.manual_seed(0)
    x = torch.rand(2, 1, 8, 40)
    logits = torch.randn(2, 9, 8, 40) * torch.tensor([0.01, 1.0, 30.0, 300.0]).repeat_interleave(10)
    out = dynamic_local_filter(x, logits, 3, softmax=True, backend="c")
    exact = dynamic_local_filter(x.double(), logits.double(), 3, softmax=True, backend="loop")
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), exact, rtol=2e-6, atol=1e-7)


@needs_kernel
def test_fused_softmax_never_writes_the_normalised_filters():
    """The forward reads the logits and allocates nothing of their size (only its output)."""
    x = torch.randn(2, 3, 16, 16)
    logits = torch.randn(2, 81, 16, 16)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        dynamic_local_filter(x, logits, 9, softmax=True, backend="c")
    allocated = max((e.cpu_memory_usage for e in prof.key_averages()), default=0)
    assert allocated < logits.nbytes             # softmax-then-filter allocates logits.nbytes


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_types_run_in_float32_and_round_once(dtype):
    """bf16-mixed training hands the op half-precision tensors: "c" computes them in float32 and
    rounds each result once, so values and gradients equal the float32 ones rounded."""
    x = torch.randn(2, 3, 9, 21).to(dtype).requires_grad_()
    logits = torch.randn(2, 25, 9, 21).to(dtype).requires_grad_()
    g = torch.randn(2, 3, 9, 21).to(dtype)
    out = dynamic_local_filter(x, logits, 5, softmax=True, backend="c")
    grads = torch.autograd.grad(out, (x, logits), g)
    x32, l32 = x.detach().float().requires_grad_(), logits.detach().float().requires_grad_()
    out32 = dynamic_local_filter(x32, l32, 5, softmax=True, backend="c")
    grads32 = torch.autograd.grad(out32, (x32, l32), g.float())
    assert out.dtype == dtype and all(d.dtype == dtype for d in grads)
    for ours, exact in zip((out, *grads), (out32, *grads32)):
        assert torch.equal(ours, exact.to(dtype))


@needs_kernel
@pytest.mark.parametrize("bias_channels", [0, 1])
def test_bfloat16_logits_beside_a_float32_image_are_read_as_they_are(bias_channels):
    """Under bf16 autocast the generator's logits are bfloat16 and the frame float32: the kernels
    read the logits as they are (no float32 copy of them, forward or backward) and give what the
    widened logits give; the second derivative's path gives the same first derivatives."""
    torch.manual_seed(0)
    x, g = torch.randn(2, 3, 9, 37), torch.randn(2, 3, 9, 37)
    logits = 4 * torch.randn(2, 25, 9, 37)
    bias = torch.randn(2, bias_channels, 9, 37).bfloat16() if bias_channels else None
    assert_bfloat16_logits_read_as_widened(x, logits, g, 5, bias)
    half = logits.bfloat16().requires_grad_()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = dynamic_local_filter(x, half, 5, softmax=True, bias=bias, backend="c")
        first = torch.autograd.grad(out, half, g)[0]
    assert max(e.cpu_memory_usage for e in prof.key_averages()) < half.float().nbytes
    again = torch.autograd.grad(dynamic_local_filter(x, half, 5, softmax=True, bias=bias, backend="c"),
                                half, g, create_graph=True)[0]
    assert again.dtype == torch.bfloat16
    torch.testing.assert_close(again.float(), first.float(), rtol=1e-2, atol=1e-3)
