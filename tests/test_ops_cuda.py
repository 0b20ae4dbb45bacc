"""The ops on a GPU: every CUDA backend (row blocks, the default there, the tap loop and the
Triton kernels) on CUDA tensors against the unfold oracle and the CPU.

These run only where ``torch.cuda.is_available()`` (CI has no GPU): ``python -m pytest
tests/test_ops_cuda.py`` on a GPU machine. They also check one training step of the Moving MNIST DFN on the
GPU against the CPU, and under bf16 autocast.
"""
import pytest
import torch

from dfn.ops import dynamic_conv, dynamic_local_filter, local_filter_reference, separable_local_filter

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
KERNELS = [(3, 3), (9, 9), (11, 11), (13, 1), (1, 13), (4, 4)]


@pytest.fixture(params=["blocks", "loop", "triton"])
def backend(request):
    """Run a test on every CUDA backend (the CPU side keeps "auto")."""
    if request.param == "triton":
        pytest.importorskip("triton", minversion="3.3", reason="backend 'triton' needs the triton package")
    return request.param


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("C,n", [(1, None), (3, None), (3, 2)])
@pytest.mark.parametrize("softmax", [False, True])
def test_cuda_forward_and_gradients_match_the_oracle_and_the_cpu(kernel, C, n, softmax, backend):
    if backend == "triton" and n is not None:
        pytest.skip("backend 'triton' runs the shared form only")
    T = kernel[0] * kernel[1]
    x = torch.randn(2, C, 12, 10, dtype=torch.float64)
    f = torch.randn((2, T, 12, 10) if n is None else (2, n, C, T, 12, 10), dtype=torch.float64)
    bias = torch.randn(2, C, 12, 10, dtype=torch.float64)
    results = {}
    for device in ("cpu", "cuda"):
        xd, fd = x.to(device).requires_grad_(), f.to(device).requires_grad_()
        out = dynamic_local_filter(xd, fd, kernel, softmax=softmax, bias=bias.to(device),
                                   backend=backend if device == "cuda" else "auto")
        grads = torch.autograd.grad(out.square().sum(), (xd, fd))
        results[device] = (out, *grads)
        if device == "cuda":
            ref = local_filter_reference(xd, fd, kernel, softmax=softmax, bias=bias.to(device))
            torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for cpu, cuda in zip(results["cpu"], results["cuda"]):
        assert cuda.is_cuda
        torch.testing.assert_close(cuda.cpu(), cpu, rtol=1e-10, atol=1e-10)


def test_cuda_gradcheck_and_double_backward(backend):
    x = torch.randn(1, 2, 6, 5, dtype=torch.float64, device="cuda", requires_grad=True)
    f = torch.randn(1, 12, 6, 5, dtype=torch.float64, device="cuda", requires_grad=True)
    op = lambda x, f: dynamic_local_filter(x, f, (3, 4), softmax=True, backend=backend)  # noqa: E731
    assert torch.autograd.gradcheck(op, (x, f))
    if backend != "triton":                                     # first-order gradients only
        assert torch.autograd.gradgradcheck(op, (x, f))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_precision_is_close_to_float32(dtype, backend):
    x, f = torch.rand(4, 1, 64, 64, device="cuda"), torch.randn(4, 81, 64, 64, device="cuda")
    exact = dynamic_local_filter(x, f, 9, softmax=True, backend=backend)
    half = dynamic_local_filter(x.to(dtype), f.to(dtype), 9, softmax=True, backend=backend)
    assert half.dtype == dtype
    torch.testing.assert_close(half.float(), exact, rtol=2e-2, atol=2e-2)


def test_cuda_separable_and_dynamic_conv_match_the_cpu():
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    v, h = torch.randn(2, 5, 16, 16, dtype=torch.float64), torch.randn(2, 7, 16, 16, dtype=torch.float64)
    w = torch.randn(2, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(separable_local_filter(x.cuda(), v.cuda(), h.cuda(), softmax=True).cpu(),
                               separable_local_filter(x, v, h, softmax=True))
    torch.testing.assert_close(dynamic_conv(x.cuda(), w.cuda()).cpu(), dynamic_conv(x, w))


@pytest.mark.parametrize("backend", ["auto", "triton"])
def test_moving_mnist_dfn_step_on_the_gpu_equals_the_cpu(backend):
    """One training step of the paper's network (637,361 parameters): the GPU's loss and gradients
    equal the CPU's (float32, TF32 off), and the step also runs under bf16 autocast."""
    from dfn.models import VideoPredictionModel
    from dfn.nets import EncoderDecoder
    from dfn.predictors import DynamicFilterPredictor

    if backend == "triton":
        pytest.importorskip("triton", minversion="3.3", reason="backend 'triton' needs the triton package")
    models = {device: VideoPredictionModel(DynamicFilterPredictor(EncoderDecoder(), backend=name),
                                           frames_in=3, frames_out=3)
              for device, name in (("cpu", "auto"), ("cuda", backend))}
    models["cuda"].load_state_dict(models["cpu"].state_dict())
    frames = torch.rand(2, 6, 1, 64, 64)
    results = {}
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = False, False
    try:
        for device, model in models.items():
            model.log = lambda *a, **k: None
            model.to(device).zero_grad()
            loss = model.training_step({"frames": frames.to(device)}, 0)
            loss.backward()
            results[device] = [t.detach().to("cpu", copy=True) for t in [loss, *(p.grad for p in model.parameters())]]
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    for cpu, cuda in zip(results["cpu"], results["cuda"]):
        torch.testing.assert_close(cuda, cpu, rtol=1e-3, atol=1e-4)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model.training_step({"frames": frames.cuda()}, 0)
    loss.backward()
    assert loss.isfinite() and abs(loss.item() - results["cpu"][0].item()) < 0.05 * results["cpu"][0].item()
