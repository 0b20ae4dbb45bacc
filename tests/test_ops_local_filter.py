"""dynamic_local_filter against the unfold oracle, gradients, precision, memory and errors."""
import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from dfn.ops import cpu_kernel, dynamic_local_filter, local_filter_reference, tap_blocks
from dfn.ops.profiling import saved_tensor_bytes

KERNELS = [(3, 3), (9, 9), (11, 11), (13, 1), (1, 13), (4, 4), (2, 5)]
f64 = torch.float64


@pytest.fixture(params=["c", "loop", "blocks"])
def backend(request):
    """Run a test on the fused C kernel and on both pure-PyTorch paths (tap loop, row blocks);
    the C kernel runs the shared form only, and only where a compiler built it."""
    if request.param == "c" and cpu_kernel.library() is None:
        pytest.skip("backend 'c' needs a C compiler ($CC or cc); none built the kernel here")
    return request.param


def filter_on(backend, x, f, kernel, **kwargs):
    """``dynamic_local_filter`` on ``backend``, or on "auto" for the general form under "c"."""
    shared = f.ndim == 4
    return dynamic_local_filter(x, f, kernel, backend=backend if shared or backend != "c"
                                else "auto", **kwargs)


def make(B, C, H, W, kernel, n=None, dtype=f64, requires_grad=False):
    T = kernel[0] * kernel[1]
    x = torch.randn(B, C, H, W, dtype=dtype)
    shape = (B, T, H, W) if n is None else (B, n, C, T, H, W)
    f = torch.randn(shape, dtype=dtype)
    return x.requires_grad_(requires_grad), f.requires_grad_(requires_grad)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("C,n", [(1, None), (3, None), (1, 2), (3, 2)])
@pytest.mark.parametrize("softmax", [False, True])
def test_matches_unfold_reference(kernel, C, n, softmax, backend):
    x, f = make(2, C, 12, 10, kernel, n)
    bias = torch.randn(2, C, 12, 10, dtype=f64)
    ours = filter_on(backend, x, f, kernel, softmax=softmax, bias=bias)
    ref = local_filter_reference(x, f, kernel, softmax=softmax, bias=bias)
    assert ours.shape == ((2, C, 12, 10) if n is None else (2, n, 12, 10))
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel", [(4, 4), (3, 2), (9, 9)])
def test_delta_filter_shifts_by_its_offset_from_the_anchor(kernel, backend):
    """A one-hot filter at tap (u, v) reads pixel (y + u - kh//2, x + v - kw//2), zero outside."""
    kh, kw = kernel
    x = torch.arange(2 * 8 * 7, dtype=f64).view(1, 2, 8, 7)
    for u, v in [(0, 0), (kh // 2, kw // 2), (kh - 1, kw - 1)]:
        f = torch.zeros(1, kh * kw, 8, 7, dtype=f64)
        f[:, u * kw + v] = 1
        dy, dx = u - kh // 2, v - kw // 2
        expected = torch.zeros_like(x)
        ys, xs = slice(max(0, -dy), 8 - max(0, dy)), slice(max(0, -dx), 7 - max(0, dx))
        expected[..., ys, xs] = x[..., max(0, dy):8 + min(0, dy), max(0, dx):7 + min(0, dx)]
        assert torch.equal(filter_on(backend, x, f, kernel), expected), (u, v)


# (kernel, origin): one-sided rows (rectified stereo), a window beside the pixel, one far outside
ORIGINS = [((1, 5), (0, 0)), ((3, 4), (-2, 1)), ((2, 3), (1, 2)), ((1, 3), (0, -12)), ((3, 3), None)]


@pytest.mark.parametrize("kernel,origin", ORIGINS)
def test_a_window_origin_moves_every_tap(kernel, origin, backend):
    """Tap (u, v) with origin (oy, ox) reads pixel (y + oy + u, x + ox + v), zero outside: checked
    pixel by pixel, independently of the op's geometry code."""
    kh, kw = kernel
    oy, ox = origin or (-(kh // 2), -(kw // 2))
    x = torch.arange(2 * 6 * 7, dtype=f64).view(1, 2, 6, 7) + 1
    for u in range(kh):
        for v in range(kw):
            f = torch.zeros(1, kh * kw, 6, 7, dtype=f64)
            f[:, u * kw + v] = 1
            expected = torch.zeros_like(x)
            for y in range(6):
                for i in range(7):
                    sy, sx = y + oy + u, i + ox + v
                    if 0 <= sy < 6 and 0 <= sx < 7:
                        expected[..., y, i] = x[..., sy, sx]
            assert torch.equal(filter_on(backend, x, f, kernel, origin=origin), expected), (u, v)


@pytest.mark.parametrize("kernel,origin", ORIGINS[:4])
@pytest.mark.parametrize("n", [None, 2])
def test_gradcheck_with_an_origin(kernel, origin, n, backend):
    x, f = make(1, 2, 4, 6, kernel, n, requires_grad=True)
    bias = torch.randn(1, 1, 4, 6, dtype=f64, requires_grad=True) if n is None else None

    def op(x, f, *bias):
        return filter_on(backend, x, f, kernel, softmax=True, origin=origin,
                         bias=bias[0] if bias else None)

    inputs = [x, f] + ([bias] if bias is not None else [])
    assert gradcheck(op, inputs)
    assert gradgradcheck(op, inputs)
    torch.testing.assert_close(op(*inputs), local_filter_reference(
        x, f, kernel, softmax=True, origin=origin, bias=bias), rtol=1e-12, atol=1e-12)


def test_a_bad_origin_is_refused():
    x, f = torch.randn(1, 1, 5, 5), torch.randn(1, 3, 5, 5)
    for origin in ((0,), (0.5, 0), "00", (True, 0)):
        with pytest.raises(ValueError, match=r"origin must be a pair \(oy, ox\) of ints"):
            dynamic_local_filter(x, f, (1, 3), origin=origin)


def test_softmax_filters_preserve_a_constant_image_away_from_borders():
    x = torch.full((2, 3, 16, 16), 0.7, dtype=f64)
    out = dynamic_local_filter(x, torch.randn(2, 81, 16, 16, dtype=f64), 9, softmax=True)
    torch.testing.assert_close(out[..., 4:-4, 4:-4], x[..., 4:-4, 4:-4])
    assert (out[..., 0, 0] < 0.7).all()                         # zero padding at the corner


GRAD_CASES = [  # (kernel, B, C, H, W, n, softmax, bias_channels)
    ((3, 3), 2, 1, 5, 6, None, False, 0),
    ((4, 4), 1, 2, 5, 4, None, True, 1),            # even kernel, batch 1
    ((1, 5), 2, 3, 4, 6, None, False, 3),           # horizontal, per-channel bias
    ((5, 1), 1, 1, 6, 3, None, True, 0),            # vertical
    ((2, 3), 1, 2, 4, 3, 2, False, 0),              # general form, non-square even
    ((5, 5), 1, 1, 3, 4, 2, True, 1),               # kernel larger than the image: all borders
]


@pytest.mark.parametrize("kernel,B,C,H,W,n,softmax,bias_channels", GRAD_CASES)
def test_gradcheck_float64(kernel, B, C, H, W, n, softmax, bias_channels, backend):
    x, f = make(B, C, H, W, kernel, n, requires_grad=True)
    inputs = [x, f]
    if bias_channels:
        inputs.append(torch.randn(B, bias_channels, H, W, dtype=f64, requires_grad=True))

    def op(x, f, *bias):
        return filter_on(backend, x, f, kernel, softmax=softmax, bias=bias[0] if bias else None)

    assert gradcheck(op, inputs)
    assert gradgradcheck(op, inputs)


def test_gradcheck_non_contiguous_inputs(backend):
    """x transposed in memory, filters a channel slice of a larger generator output."""
    x = torch.randn(2, 3, 7, 6, dtype=f64).transpose(-1, -2).requires_grad_()   # (2, 3, 6, 7)
    theta = torch.randn(2, 7, 6, 9 + 2, dtype=f64).permute(0, 3, 2, 1)           # (2, 11, 6, 7)
    f = theta[:, 1:10].requires_grad_()
    assert not x.is_contiguous() and not f.is_contiguous()
    assert gradcheck(lambda x, f: filter_on(backend, x, f, 3), (x, f))
    ref = local_filter_reference(x, f, 3)
    torch.testing.assert_close(filter_on(backend, x, f, 3), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("n", [None, 2])
def test_half_precision_accumulates_in_float32(dtype, n, backend):
    """Output error stays within about one rounding of the output (an accumulation in bf16/fp16
    over 81 taps would drift several units in the last place)."""
    if backend == "c" and n is not None:
        pytest.skip("backend 'c' runs the shared form only")
    x, f = make(2, 3, 16, 16, (9, 9), n, dtype=dtype, requires_grad=True)
    f.data.mul_(0.1)
    out = dynamic_local_filter(x, f, 9, backend=backend)
    assert out.dtype == dtype
    x64, f64_ = x.detach().double().requires_grad_(), f.detach().double().requires_grad_()
    ref = local_filter_reference(x64, f64_, 9)
    eps = torch.finfo(dtype).eps
    err = (out.double() - ref).abs()
    assert (err <= eps * ref.abs() + eps * 1e-2 * ref.abs().max()).all(), err.max()
    g = torch.randn_like(ref)
    out.backward(g.to(dtype))
    ref.backward(g.to(dtype).double())
    for ours, exact in ((x.grad, x64.grad), (f.grad, f64_.grad)):
        assert ours.dtype == dtype
        tol = eps * exact.abs() + eps * 1e-2 * exact.abs().max()
        assert ((ours.double() - exact).abs() <= tol).all()


def test_mixed_dtypes_promote_before_the_backend_is_chosen(backend):
    x = torch.randn(1, 1, 5, 5, dtype=torch.bfloat16)
    f = torch.randn(1, 9, 5, 5)
    out = dynamic_local_filter(x, f, 3, backend=backend)        # float32 after promotion
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, local_filter_reference(x.float(), f, 3))


@pytest.mark.parametrize("softmax", [False, True])
def test_saves_only_input_and_filters(softmax, backend):
    x, f = make(2, 3, 16, 16, (9, 9), dtype=torch.float32, requires_grad=True)
    saved = saved_tensor_bytes(lambda: dynamic_local_filter(x, f, 9, softmax=softmax, backend=backend))
    stats = 2 * x[:, :1].nbytes if softmax and backend == "c" else 0   # the softmax's max and 1/sum
    assert saved <= x.nbytes + f.nbytes + stats
    unfold_saved = saved_tensor_bytes(lambda: local_filter_reference(x, f, 9, softmax=softmax))
    assert unfold_saved > 3 * x.nbytes + f.nbytes               # the buffer we avoid


@pytest.mark.parametrize("C,n", [(1, None), (3, None), (3, 2)])
@pytest.mark.parametrize("rows", [1, 3, 5])                   # rows a block: 5 blocks; 3 + 2; one
def test_row_blocks_split_anywhere_and_agree_with_the_tap_loop(C, n, rows, monkeypatch):
    """The row-block path splits the tap rows into blocks whose product stays under a budget (and
    under the filters' own size: C > 1 splits by itself); every split gives the tap loop's values
    and gradients."""
    def run(backend):
        torch.manual_seed(0)
        x, f = make(1, C, 12, 10, (5, 5), n, requires_grad=True)
        out = dynamic_local_filter(x, f, 5, backend=backend)
        out.backward(torch.ones_like(out))
        return out, x.grad, f.grad

    row_elements = (n or 1) * C * 5 * 12 * 10                  # one tap row of the product
    monkeypatch.setattr(tap_blocks, "BLOCK_ELEMENTS", rows * row_elements)
    for a, b in zip(run("blocks"), run("loop")):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    x, f = make(1, C, 6, 5, (5, 3), n, requires_grad=True)
    assert gradgradcheck(lambda x, f: dynamic_local_filter(x, f, (5, 3), backend="blocks"), (x, f))


def test_row_blocks_never_exceed_the_filters_size():
    """C channels would make the product C times the filters; blocks keep it within them."""
    assert tap_blocks._row_blocks(9, row_elements=3 * 9, filter_elements=81) == [
        slice(0, 3), slice(3, 6), slice(6, 9)]
    assert tap_blocks._row_blocks(9, row_elements=9, filter_elements=81) == [slice(0, 9)]
    assert tap_blocks._row_blocks(1, row_elements=3 * 13, filter_elements=13) == [slice(0, 1)]


def aten_calls(kernel: tuple[int, int], backend: str) -> int:
    """ATen operator calls of one forward + backward of a pure-PyTorch backend."""
    x, f = make(2, 1, 16, 16, kernel, dtype=torch.float32, requires_grad=True)
    with torch.profiler.profile() as prof:
        dynamic_local_filter(x, f, kernel, softmax=True, backend=backend).sum().backward()
    return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))


def test_row_block_calls_do_not_grow_with_the_taps():
    """A GPU step is bound by kernel launches: the row-block path's calls must not scale with
    kh * kw, as the tap loop's do (81 multiply-adds for a 9x9 filter in each direction). From 9 to
    225 taps they stay within one call (torch 2.4 adds one ``fill_`` at the wider windows)."""
    calls = [aten_calls(kernel, "blocks") for kernel in ((3, 3), (7, 7), (11, 11), (15, 15))]
    assert max(calls) - min(calls) <= 1, calls
    loop = [aten_calls(kernel, "loop") for kernel in ((3, 3), (11, 11))]
    assert loop[1] - loop[0] > 1000, loop       # the tap loop: about 12 calls per tap


def ops_run(x, f, backend) -> set[str]:
    with torch.profiler.profile() as prof:
        dynamic_local_filter(x, f, 3, backend=backend)
    return {e.key for e in prof.key_averages()}


@pytest.mark.skipif(cpu_kernel.library() is None, reason="needs a C compiler to build the kernel")
def test_auto_backend_is_the_c_kernel_for_the_shared_form():
    """"auto" on the CPU runs the shared form in the C kernel, in any floating dtype (half types
    in float32): no ATen multiply-add at all."""
    x, f = make(1, 1, 8, 8, (3, 3))
    assert "aten::addcmul_" not in ops_run(x, f, "auto")
    assert "aten::addcmul_" not in ops_run(x.bfloat16(), f.bfloat16(), "auto")


def test_auto_backend_is_the_tap_loop_for_the_general_form():
    """The general form runs in the tap loop (one addcmul per tap); the row blocks use none."""
    x, f = make(1, 1, 8, 8, (3, 3))
    assert "aten::addcmul_" in ops_run(x, f, "loop")
    assert "aten::addcmul_" in ops_run(x, f.view(1, 1, 1, 9, 8, 8), "auto")
    assert "aten::addcmul_" not in ops_run(x, f, "blocks")


@pytest.mark.parametrize("backend,form,match", [
    ("fast", "shared", r"backend must be one of \['auto', 'c', 'loop', 'blocks', 'triton'\], got 'fast'"),
    ("c", "general", r"backend 'c' runs filters shared across channels only"),
    ("triton", "general", r"backend 'triton' runs filters shared across channels only"),
    ("c", "meta", r"backend 'c' runs floating-point CPU tensors .*got torch.float64 on meta"),
])
def test_a_backend_that_cannot_run_is_refused(backend, form, match):
    x, f = make(1, 2, 8, 8, (3, 3), n=1 if form == "general" else None)
    if form == "meta":                                          # not a CPU tensor
        x, f = x.to("meta"), f.to("meta")
    with pytest.raises(ValueError, match=match):
        dynamic_local_filter(x, f, 3, backend=backend)


@pytest.mark.parametrize("x_shape,f_shape,kernel,match", [
    ((2, 1, 8, 8), (2, 80, 8, 8), 9, r"\(B, kh\*kw, H, W\) = \(2, 81, 8, 8\)"),
    ((2, 1, 8, 8), (2, 13, 8, 8), (3, 3), r"kernel_size \(3, 3\)"),
    ((2, 1, 8, 8), (2, 9, 8, 7), 3, r"got \(2, 9, 8, 7\)"),
    ((2, 1, 8, 8), (1, 9, 8, 8), 3, r"\(2, 9, 8, 8\)"),
    ((2, 3, 8, 8), (2, 2, 1, 9, 8, 8), 3, r"\(B, n, C, kh\*kw, H, W\) = \(2, 'n', 3, 9, 8, 8\)"),
    ((2, 8, 8), (2, 9, 8, 8), 3, r"x must be \(B, C, H, W\)"),
    ((2, 1, 8, 8), (2, 9, 64), 3, r"got \(2, 9, 64\)"),
])
def test_wrong_shapes_raise_one_clear_error(x_shape, f_shape, kernel, match):
    with pytest.raises(ValueError, match=match):
        dynamic_local_filter(torch.randn(x_shape), torch.randn(f_shape), kernel)


def test_bad_bias_and_kernel_size_raise():
    x, f = torch.randn(2, 3, 8, 8), torch.randn(2, 9, 8, 8)
    with pytest.raises(ValueError, match=r"bias must be \(B, 1 or C, H, W\)"):
        dynamic_local_filter(x, f, 3, bias=torch.randn(2, 2, 8, 8))
    with pytest.raises(ValueError, match="kernel_size must be positive"):
        dynamic_local_filter(x, f, (0, 3))
    with pytest.raises(ValueError, match="kernel_size must be an int or a pair"):
        dynamic_local_filter(x, f, 3.0)
    with pytest.raises(ValueError, match="floating-point"):
        dynamic_local_filter(x.long(), f, 3)
