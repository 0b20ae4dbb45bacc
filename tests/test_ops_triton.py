"""The "triton" backend against the unfold oracle: values, gradients, half precision, the custom
op's registration and torch.compile.

Without a GPU (CI) the kernels run on CPU tensors through Triton's interpreter (conftest sets
``TRITON_INTERPRET=1``); on a GPU machine the same tests run the compiled kernels on CUDA tensors.
Shapes stay small: the interpreter runs each program in numpy.
"""
import pytest
import torch
from torch.autograd import gradcheck

pytest.importorskip("triton", minversion="3.3", reason="backend 'triton' needs the triton package (pip install triton)")

from dfn.layers import DynamicLocalFilter  # noqa: E402
from dfn.ops import dynamic_local_filter, local_filter_reference  # noqa: E402
from dfn.ops.backends import triton_ops  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
f64 = torch.float64


def inputs(B, C, H, W, kernel, bias_channels, dtype=f64):
    T = kernel[0] * kernel[1]
    x = torch.randn(B, C, H, W, dtype=dtype, device=DEVICE, requires_grad=True)
    f = torch.randn(B, T, H, W, dtype=dtype, device=DEVICE, requires_grad=True)
    bias = (torch.randn(B, bias_channels, H, W, dtype=dtype, device=DEVICE, requires_grad=True)
            if bias_channels else None)
    return x, f, bias


@pytest.mark.parametrize("kernel", [(3, 3), (9, 9), (4, 4), (1, 13), (2, 5)])
@pytest.mark.parametrize("C,bias_channels", [(1, 0), (3, 1), (3, 3)])
@pytest.mark.parametrize("softmax", [False, True])
def test_values_and_gradients_match_the_oracle(kernel, C, bias_channels, softmax):
    x, f, bias = inputs(2, C, 7, 9, kernel, bias_channels)
    leaves = [t for t in (x, f, bias) if t is not None]
    results = []
    for op in (lambda: dynamic_local_filter(x, f, kernel, softmax=softmax, bias=bias, backend="triton"),
               lambda: local_filter_reference(x, f, kernel, softmax=softmax, bias=bias)):
        out = op()
        g = torch.linspace(-1, 1, out.numel(), dtype=f64, device=DEVICE).view_as(out)
        results.append([out, *torch.autograd.grad(out, leaves, g)])
    for ours, oracle in zip(*results):
        torch.testing.assert_close(ours, oracle, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel,origin", [((1, 5), (0, 0)), ((3, 4), (-2, 1)), ((2, 3), (1, -6))])
def test_an_origin_matches_the_oracle(kernel, origin):
    """One-sided and shifted windows: values and every gradient equal the oracle's."""
    x, f, bias = inputs(2, 3, 6, 8, kernel, 1)
    results = []
    for backend in ("triton", "loop"):
        out = dynamic_local_filter(x, f, kernel, softmax=True, bias=bias, origin=origin, backend=backend)
        g = torch.linspace(-1, 1, out.numel(), dtype=f64, device=DEVICE).view_as(out)
        results.append([out, *torch.autograd.grad(out, (x, f, bias), g)])
    ref = local_filter_reference(x, f, kernel, softmax=True, bias=bias, origin=origin)
    torch.testing.assert_close(results[0][0], ref, rtol=1e-12, atol=1e-12)
    for ours, oracle in zip(*results):
        torch.testing.assert_close(ours, oracle, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel,C,bias_channels,softmax", [((3, 2), 2, 1, True), ((2, 3), 2, 2, False)])
def test_gradcheck_float64(kernel, C, bias_channels, softmax):
    x, f, bias = inputs(1, C, 3, 4, kernel, bias_channels)
    leaves = [t for t in (x, f, bias) if t is not None]

    def op(x, f, *bias):
        return dynamic_local_filter(x, f, kernel, softmax=softmax, bias=bias[0] if bias else None,
                                    backend="triton")

    assert gradcheck(op, leaves)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_accumulates_in_float32(dtype):
    """Output and gradients within about one rounding of the exact values (a half-precision sum
    over 81 taps would drift several units in the last place)."""
    x, f, bias = inputs(2, 3, 12, 12, (9, 9), 1, dtype=dtype)
    out = dynamic_local_filter(x, f, 9, softmax=True, bias=bias, backend="triton")
    assert out.dtype == dtype
    exact = [t.detach().double().requires_grad_() for t in (x, f, bias)]
    ref = local_filter_reference(exact[0], exact[1], 9, softmax=True, bias=exact[2])
    g = torch.randn_like(ref)
    grads = torch.autograd.grad(out, (x, f, bias), g.to(dtype))
    ref_grads = torch.autograd.grad(ref, exact, g.to(dtype).double())
    eps = torch.finfo(dtype).eps
    for ours, truth in zip((out, *grads), (ref, *ref_grads)):
        assert ours.dtype == dtype
        err = (ours.double() - truth).abs()
        assert (err <= eps * truth.abs() + eps * 1e-2 * truth.abs().max()).all(), err.max()


def test_the_custom_op_is_registered_correctly():
    """torch.library's own checks: schema, fake (meta) kernel, autograd registration."""
    x, f, bias = inputs(1, 2, 5, 6, (3, 3), 1)
    for args in ((x, f, bias, [3, 3, -1, -1], True), (x, f, None, [3, 3, 0, 0], False)):
        checks = torch.library.opcheck(triton_ops().local_filter, args)
        assert checks and set(checks.values()) == {"SUCCESS"}, checks


def test_compile_traces_the_layer_without_a_graph_break():
    """The predictor's layer with softmax logits and a dynamic bias, compiled with fullgraph=True
    (a graph break would raise): values and gradients equal eager ones and the "auto" backend's."""
    layer = DynamicLocalFilter(5, softmax=True, bias_channels=1, backend="triton")
    x = torch.rand(2, 1, 10, 12, device=DEVICE, requires_grad=True)
    theta = torch.randn(2, layer.theta_channels, 10, 12, device=DEVICE, requires_grad=True)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    auto = DynamicLocalFilter(5, softmax=True, bias_channels=1)
    results = []
    for run in (layer, compiled, auto):
        out = run(x, theta)
        results.append([out, *torch.autograd.grad(out.square().sum(), (x, theta))])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_double_backward_is_refused_clearly():
    x, f, _ = inputs(1, 1, 4, 4, (3, 3), 0)
    out = dynamic_local_filter(x, f, 3, backend="triton")
    dx, = torch.autograd.grad(out.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="local_filter_backward.*no autograd formula"):
        dx.sum().backward()
