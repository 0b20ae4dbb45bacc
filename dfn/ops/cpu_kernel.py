"""The ``"c"`` backend: the fused C kernels of ``cpu_kernels.c`` for the shared form on the CPU.

Two families: the bilinear map's three faces (:func:`forward`, :func:`grad_input`,
:func:`grad_filters`: normalised filters in) and the models' case (:func:`softmax_forward`,
:func:`softmax_backward`: logits and a dynamic bias in, the softmax inside the kernel).

The C file is built on first use by :mod:`dfn.ops.native_build` (the system compiler, a per-machine
cache) and called through ctypes. Samples run in parallel on ``torch.get_num_threads()`` OpenMP
threads of torch's own OpenMP runtime (see the C file). Float32 and float64 CPU tensors run in
their own precision; float16 and bfloat16 ones (``bf16-mixed`` training) in float32, with the
results rounded once at the end, as the other backends do. The softmax kernels also read bfloat16
logits as they are beside a float32 image (the generator's output under autocast) and write their
gradient in bfloat16, so no float32 copy of the logits is made either way. Where no compiler exists, ``backend="auto"`` runs the tap loop instead, which computes the same
values (:mod:`dfn.ops.backends`).
"""
from __future__ import annotations

import ctypes
import functools
from pathlib import Path
from typing import Callable, NamedTuple, Optional

import torch
from torch import Tensor

from dfn.ops import native_build
from dfn.ops.geometry import Window, accumulation_dtype

SOURCE = Path(__file__).with_name("cpu_kernels.c")
# -fno-trapping-math lets the softmax's exp loops vectorise (gcc keeps a branch otherwise), and
# -ffp-contract=fast fuses multiply-adds (ISO C mode turns that off). A -march=native build runs
# only on its own kind of CPU: native_build keys the cache by the processor, and falls back to the
# portable set where the first does not build. -mprefer-vector-width=512 matters on AVX-512 CPUs
# only (gcc's default there is 256-bit vectors; cpu_kernels.c sizes its blocks to match).
FLAG_SETS = (["-O3", "-march=native", "-mprefer-vector-width=512", "-fopenmp", "-std=c99",
              "-fno-trapping-math", "-ffp-contract=fast", "-shared", "-fPIC"],
             ["-O3", "-std=c99", "-fno-trapping-math", "-ffp-contract=fast", "-shared", "-fPIC"])
             # fallback: portable, serial
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


@functools.lru_cache(maxsize=None)
def library() -> Optional[ctypes.CDLL]:
    """The compiled kernels, or ``None`` (with one warning) when they cannot be built."""
    return native_build.build(SOURCE, FLAG_SETS, "the slower pure-PyTorch tap loop")


def usable(*tensors: Tensor) -> bool:
    """True when the kernels can run on these tensors (CPU, one floating dtype, built)."""
    dtype = tensors[0].dtype
    return (dtype in DTYPES and all(t.device.type == "cpu" and t.dtype == dtype for t in tensors)
            and library() is not None)


def _in_kernel_precision(op: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """``op`` on float32 copies of float16 / bfloat16 tensors, its result rounded back once."""

    @functools.wraps(op)
    def run(*args):
        dtype = next(a.dtype for a in args if isinstance(a, Tensor))
        work = accumulation_dtype(dtype)
        if work == dtype:
            return op(*args)
        return op(*(a.to(work) if isinstance(a, Tensor) else a for a in args)).to(dtype)

    return run


def _run(name: str, dtype: torch.dtype, *args, logits: Optional[torch.dtype] = None) -> None:
    """Call kernel ``name`` (float32 or float64 variant; ``logits`` bfloat16: the softmax kernels'
    float32 variant that reads and writes bfloat16 logits) with tensors passed as pointers."""
    suffix = _SUFFIX[dtype] + ("_bf16" if logits == torch.bfloat16 else "")
    fn = getattr(library(), f"{name}_{suffix}")
    c_args = [ctypes.c_void_p(a.data_ptr()) if isinstance(a, Tensor)
              else ctypes.c_void_p(None) if a is None else ctypes.c_long(a) for a in args]
    if fn(*c_args, ctypes.c_int(torch.get_num_threads())) != 0:
        raise MemoryError(f"dfn: {name} could not allocate its padded scratch image")


def _filter_strides(f: Tensor) -> tuple[Tensor, int, int, int]:
    """``f (B, T, H, W)`` with unit column stride, and its batch / tap / row strides."""
    if f.stride(3) != 1 and f.shape[3] > 1:
        f = f.contiguous()
    return f, f.stride(0), f.stride(1), f.stride(2)


def _image_op(name: str, image: Tensor, f: Tensor, w: Window) -> Tensor:
    """The two kernels that map (image, shared filters) to an image: forward and grad_input."""
    image = image.contiguous()
    f, fsb, fst, fsh = _filter_strides(f)
    B, C, H, W = image.shape
    out = torch.empty_like(image)
    _run(name, image.dtype, image, f, out, C, H, W, *w, fsb, fst, fsh, B)
    return out


@_in_kernel_precision
def forward(x: Tensor, f: Tensor, w: Window) -> Tensor:
    """``x (B, C, H, W)``, shared ``f (B, kh*kw, H, W)`` -> ``(B, C, H, W)``."""
    return _image_op("dlf_forward", x, f, w)


@_in_kernel_precision
def grad_input(f: Tensor, g: Tensor, w: Window) -> Tensor:
    """Shared ``f (B, kh*kw, H, W)``, ``g (B, C, H, W)`` -> ``dx (B, C, H, W)``."""
    return _image_op("dlf_grad_input", g, f, w)


@_in_kernel_precision
def grad_filters(x: Tensor, g: Tensor, w: Window) -> Tensor:
    """``x, g (B, C, H, W)`` -> ``df (B, kh*kw, H, W)``."""
    x, g = x.contiguous(), g.contiguous()
    B, C, H, W = x.shape
    df = torch.empty((B, w.taps, H, W), dtype=x.dtype)
    _run("dlf_grad_filters", x.dtype, x, g, df, C, H, W, *w, B)
    return df


class SoftmaxStats(NamedTuple):
    """What :func:`softmax_forward` keeps for :func:`softmax_backward`: ``(B, 2, H, W)`` holding
    each pixel's maximum logit and 1 / sum of exp(logit - maximum), in the kernel's precision."""
    m_and_r: Tensor


def _bias_args(bias: Optional[Tensor]) -> tuple[Optional[Tensor], int]:
    """A dynamic bias ``(B, 1 or C, H, W)`` as the kernels take it: contiguous, and its channels."""
    return (None, 0) if bias is None else (bias.contiguous(), bias.shape[1])


def _softmax_operands(x: Tensor, logits: Tensor, bias: Optional[Tensor]) -> tuple:
    """What both softmax kernels read: their precision ``work``; ``x`` in it, contiguous; the
    logits (bfloat16 ones as they are where ``work`` is float32, others in ``work``) and their
    batch / tap / row strides; and the bias in ``work`` as :func:`_bias_args` gives it."""
    work = accumulation_dtype(x.dtype)
    if (work, logits.dtype) != (torch.float32, torch.bfloat16):
        logits = logits.to(work)
    logits, *strides = _filter_strides(logits)
    return (work, x.to(work).contiguous(), logits, strides,
            _bias_args(None if bias is None else bias.to(work)))


def softmax_forward(x: Tensor, logits: Tensor, bias: Optional[Tensor], w: Window
                    ) -> tuple[Tensor, SoftmaxStats]:
    """``x (B, C, H, W)`` + ``bias (B, 1 or C, H, W)`` or None, filtered with ``softmax(logits)``
    over the taps of ``logits (B, kh*kw, H, W)`` -> ``(B, C, H, W)`` in ``x``'s dtype, and the
    softmax's statistics for :func:`softmax_backward` (in the kernels' precision)."""
    work, xk, read, strides, bias_args = _softmax_operands(x, logits, bias)
    B, C, H, W = xk.shape
    out = torch.empty_like(xk)
    stats = torch.empty((B, 2, H, W), dtype=work)
    _run("dlf_softmax_forward", work, xk, read, *bias_args, out, stats, C, H, W, *w, *strides, B,
         logits=read.dtype)
    return out.to(x.dtype), SoftmaxStats(stats)


def softmax_backward(x: Tensor, logits: Tensor, bias: Optional[Tensor], stats: SoftmaxStats,
                     g: Tensor, w: Window) -> tuple[Tensor, Tensor]:
    """The gradients of :func:`softmax_forward` from ``g (B, C, H, W)`` and its ``stats``:
    ``dx (B, C, H, W)`` (also that of ``x + bias``) in ``x``'s dtype and ``dlogits (B, kh*kw, H,
    W)`` in ``logits``' dtype."""
    work, xk, read, strides, bias_args = _softmax_operands(x, logits, bias)
    g = g.to(work).contiguous()
    B, C, H, W = xk.shape
    dx = torch.empty_like(xk)
    dlogits = torch.empty((B, w.taps, H, W), dtype=read.dtype)
    _run("dlf_softmax_backward", work, xk, read, *bias_args, stats.m_and_r, g, dx, dlogits, C, H, W,
         *w, *strides, B, logits=read.dtype)
    return dx.to(x.dtype), dlogits.to(logits.dtype)
