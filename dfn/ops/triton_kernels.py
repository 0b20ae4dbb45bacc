"""The ``"triton"`` backend: fused Triton kernels for dynamic local filtering, shared form.

``x (B, C, H, W)``, filters or logits ``f (B, kh*kw, H, W)``, optional bias ``(B, 1 or C, H, W)``:

* forward: each program takes one sample and a block of pixels, loads all taps of their filters
  as one ``(taps, pixels)`` tile, normalises it (softmax over taps, when asked) and, channel by
  channel, gathers the shifted ``x + bias`` values and reduces over the taps: one launch, nothing
  but the output written;
* filter gradient: per pixel, ``dp[t] = sum_c dout[c] * (x + bias)[c, shifted by t]`` on the same
  tile, and through the softmax ``dlogits = p * (dp - sum_t p * dp)``;
* input gradient: a gather (no atomics): pixel ``q`` collects ``p[t] * dout`` from every pixel
  ``q - offset(t)`` that read it; the bias gradient is the same field (summed over channels for
  one bias channel).

Float16 / bfloat16 / float32 accumulate in float32, float64 in float64; outputs keep the inputs'
dtype. Registered as the PyTorch custom ops ``dfn::local_filter`` and ``dfn::local_filter_backward``
with fake (meta) implementations, so ``torch.compile`` traces through them without a graph break.
First-order gradients only: double backward needs another backend. The kernels run on CUDA
tensors, and on CPU tensors under Triton's interpreter (``TRITON_INTERPRET=1`` set before this
module is imported), which is how CI tests them. Import this module only through
:func:`dfn.ops.backends.triton_ops` (``triton`` is an optional dependency).
"""
from __future__ import annotations

import os
from typing import Optional

import torch
import triton
import triton.language as tl
from torch import Tensor

INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"


@triton.jit
def _tile(H, W, KH: tl.constexpr, KW: tl.constexpr, OY: tl.constexpr, OX: tl.constexpr,
          T_BLOCK: tl.constexpr, P_BLOCK: tl.constexpr, sign: tl.constexpr):
    """This program's sample ``b`` and pixels ``pix (P_BLOCK,)``; taps ``t (T_BLOCK,)``, their
    validity, and the pixels ``(T_BLOCK, P_BLOCK)`` that ``pix`` reads through each tap
    (``sign = 1``) or is read by (``sign = -1``), with a mask of the ones inside the image."""
    b = tl.program_id(1).to(tl.int64)
    pix = tl.program_id(0) * P_BLOCK + tl.arange(0, P_BLOCK)
    t = tl.arange(0, T_BLOCK)
    t_ok = t < KH * KW
    dy = t // KW + OY
    dx = t % KW + OX
    y = pix // W
    x = pix % W
    sy = y[None, :] + sign * dy[:, None]
    sx = x[None, :] + sign * dx[:, None]
    inside = t_ok[:, None] & (pix < H * W)[None, :] & (sy >= 0) & (sy < H) & (sx >= 0) & (sx < W)
    return b, pix, t, t_ok, sy * W + sx, inside


@triton.jit
def _probabilities(f_ptr, b, t, t_ok, pix, HW, KH: tl.constexpr, KW: tl.constexpr,
                   SOFTMAX: tl.constexpr, ACC: tl.constexpr):
    """The ``(T_BLOCK, P)`` filter tile of sample ``b``, softmaxed over taps when asked."""
    mask = t_ok[:, None] & (pix < HW)[None, :]
    f = tl.load(f_ptr + b * (KH * KW) * HW + t[:, None] * HW + pix[None, :], mask=mask,
                other=0.0).to(ACC)
    if SOFTMAX:
        f = tl.where(t_ok[:, None], f, float("-inf"))
        f = tl.exp(f - tl.max(f, axis=0)[None, :])
        f = f / tl.sum(f, axis=0)[None, :]
    return f


@triton.jit
def _shifted(x_ptr, bias_ptr, b, c, C, HW, src, inside, bias_b_stride, bias_c_stride,
             HAS_BIAS: tl.constexpr, ACC: tl.constexpr):
    """``(x + bias)[b, c]`` at the pixels ``src (T_BLOCK, P)``, zero outside the image."""
    v = tl.load(x_ptr + (b * C + c) * HW + src, mask=inside, other=0.0).to(ACC)
    if HAS_BIAS:
        v += tl.load(bias_ptr + b * bias_b_stride + c * bias_c_stride + src, mask=inside,
                     other=0.0).to(ACC)
    return v


@triton.jit
def _forward_kernel(x_ptr, f_ptr, bias_ptr, out_ptr, C, H, W, bias_b_stride, bias_c_stride,
                    KH: tl.constexpr, KW: tl.constexpr, OY: tl.constexpr, OX: tl.constexpr,
                    T_BLOCK: tl.constexpr, P_BLOCK: tl.constexpr, SOFTMAX: tl.constexpr,
                    HAS_BIAS: tl.constexpr, ACC: tl.constexpr):
    b, pix, t, t_ok, src, inside = _tile(H, W, KH, KW, OY, OX, T_BLOCK, P_BLOCK, 1)
    HW = H * W
    p = _probabilities(f_ptr, b, t, t_ok, pix, HW, KH, KW, SOFTMAX, ACC)
    for c in range(C):
        v = _shifted(x_ptr, bias_ptr, b, c, C, HW, src, inside, bias_b_stride, bias_c_stride,
                     HAS_BIAS, ACC)
        out = tl.sum(p * v, axis=0)
        tl.store(out_ptr + (b * C + c) * HW + pix, out.to(out_ptr.dtype.element_ty), mask=pix < HW)


@triton.jit
def _grad_filters_kernel(x_ptr, f_ptr, bias_ptr, g_ptr, df_ptr, C, H, W, bias_b_stride,
                         bias_c_stride, KH: tl.constexpr, KW: tl.constexpr, OY: tl.constexpr,
                         OX: tl.constexpr, T_BLOCK: tl.constexpr, P_BLOCK: tl.constexpr,
                         SOFTMAX: tl.constexpr, HAS_BIAS: tl.constexpr, ACC: tl.constexpr):
    b, pix, t, t_ok, src, inside = _tile(H, W, KH, KW, OY, OX, T_BLOCK, P_BLOCK, 1)
    HW = H * W
    dp = tl.zeros((T_BLOCK, P_BLOCK), dtype=ACC)
    for c in range(C):
        v = _shifted(x_ptr, bias_ptr, b, c, C, HW, src, inside, bias_b_stride, bias_c_stride,
                     HAS_BIAS, ACC)
        g = tl.load(g_ptr + (b * C + c) * HW + pix, mask=pix < HW, other=0.0).to(ACC)
        dp += v * g[None, :]
    if SOFTMAX:
        p = _probabilities(f_ptr, b, t, t_ok, pix, HW, KH, KW, SOFTMAX, ACC)
        dp = p * (dp - tl.sum(p * dp, axis=0)[None, :])
    mask = t_ok[:, None] & (pix < HW)[None, :]
    tl.store(df_ptr + b * (KH * KW) * HW + t[:, None] * HW + pix[None, :],
             dp.to(df_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _grad_input_kernel(p_ptr, g_ptr, dx_ptr, dsum_ptr, C, H, W, KH: tl.constexpr,
                       KW: tl.constexpr, OY: tl.constexpr, OX: tl.constexpr,
                       T_BLOCK: tl.constexpr, P_BLOCK: tl.constexpr, ACC: tl.constexpr):
    b, pix, t, t_ok, src, inside = _tile(H, W, KH, KW, OY, OX, T_BLOCK, P_BLOCK, -1)
    HW = H * W     # the pixels that read pix
    p = tl.load(p_ptr + b * (KH * KW) * HW + t[:, None] * HW + src, mask=inside,
                other=0.0).to(ACC)
    total = tl.zeros((P_BLOCK,), dtype=ACC)
    for c in range(C):
        g = tl.load(g_ptr + (b * C + c) * HW + src, mask=inside, other=0.0).to(ACC)
        dx = tl.sum(p * g, axis=0)
        total += dx
        tl.store(dx_ptr + (b * C + c) * HW + pix, dx.to(dx_ptr.dtype.element_ty), mask=pix < HW)
    tl.store(dsum_ptr + b * HW + pix, total.to(dsum_ptr.dtype.element_ty), mask=pix < HW)


def _blocks(window: list[int], H: int, W: int, B: int) -> tuple[dict, tuple[int, int]]:
    """Tile sizes (taps padded to a power of two, about 4,096 values per tile) and the grid, for
    ``window = [kh, kw, oy, ox]`` (:class:`dfn.ops.geometry.Window`)."""
    kh, kw, oy, ox = window
    t_block = triton.next_power_of_2(kh * kw)
    p_block = max(16, min(256, 4096 // t_block))
    return (dict(KH=kh, KW=kw, OY=oy, OX=ox, T_BLOCK=t_block, P_BLOCK=p_block),
            (triton.cdiv(H * W, p_block), B))


def _acc(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def _bias_args(x: Tensor, bias: Optional[Tensor]) -> tuple[Tensor, int, int]:
    """The bias pointer (``x`` when there is none) and its sample / channel strides."""
    if bias is None:
        return x, 0, 0
    return bias, bias.stride(0), (bias.stride(1) if bias.shape[1] > 1 else 0)


# explicit schemas: torch 2.4's custom_op cannot infer one from postponed (string) annotations
@torch.library.custom_op("dfn::local_filter", mutates_args=(),
                         schema="(Tensor x, Tensor filters, Tensor? bias, int[] window, bool softmax) -> Tensor")
def local_filter(x: Tensor, filters: Tensor, bias: Optional[Tensor], window: list[int],
                 softmax: bool) -> Tensor:
    """``x (B, C, H, W)``, ``filters (B, kh*kw, H, W)`` (logits if ``softmax``), ``bias`` ``(B, 1
    or C, H, W)`` or None, all contiguous and of one dtype, ``window [kh, kw, oy, ox]`` ->
    ``(B, C, H, W)``."""
    B, C, H, W = x.shape
    out = torch.empty_like(x)
    bias_ptr, bias_b, bias_c = _bias_args(x, bias)
    sizes, grid = _blocks(window, H, W, B)
    _forward_kernel[grid](x, filters, bias_ptr, out, C, H, W, bias_b, bias_c, **sizes,
                          SOFTMAX=softmax, HAS_BIAS=bias is not None, ACC=_acc(x.dtype))
    return out


@local_filter.register_fake
def _(x: Tensor, filters: Tensor, bias: Optional[Tensor], window: list[int], softmax: bool) -> Tensor:
    return torch.empty_like(x)


@torch.library.custom_op("dfn::local_filter_backward", mutates_args=(),
                         schema="(Tensor grad, Tensor x, Tensor filters, Tensor? bias, int[] window, "
                                "bool softmax) -> (Tensor, Tensor, Tensor)")
def local_filter_backward(grad: Tensor, x: Tensor, filters: Tensor, bias: Optional[Tensor],
                          window: list[int], softmax: bool) -> tuple[Tensor, Tensor, Tensor]:
    """``grad (B, C, H, W)`` of the output -> the gradients of ``x + bias`` ``(B, C, H, W)``, of
    ``filters`` ``(B, kh*kw, H, W)``, and the first summed over channels ``(B, 1, H, W)`` (a
    one-channel bias's gradient, accumulated before rounding)."""
    B, C, H, W = x.shape
    grad = grad.contiguous()
    acc = _acc(x.dtype)
    bias_ptr, bias_b, bias_c = _bias_args(x, bias)
    sizes, grid = _blocks(window, H, W, B)
    dfilters = torch.empty_like(filters)
    _grad_filters_kernel[grid](x, filters, bias_ptr, grad, dfilters, C, H, W, bias_b, bias_c,
                               **sizes, SOFTMAX=softmax, HAS_BIAS=bias is not None, ACC=acc)
    p = torch.softmax(filters.float() if acc == tl.float32 else filters, 1) if softmax else filters
    dx = torch.empty_like(x)
    dsum = x.new_empty((B, 1, H, W))
    _grad_input_kernel[grid](p.contiguous(), grad, dx, dsum, C, H, W, **sizes, ACC=acc)
    return dx, dfilters, dsum


@local_filter_backward.register_fake
def _(grad: Tensor, x: Tensor, filters: Tensor, bias: Optional[Tensor], window: list[int],
      softmax: bool) -> tuple[Tensor, Tensor, Tensor]:
    B, C, H, W = x.shape
    return torch.empty_like(x), torch.empty_like(filters), x.new_empty((B, 1, H, W))


def _setup_context(ctx, inputs, output) -> None:
    x, filters, bias, window, softmax = inputs
    ctx.geometry = (window, softmax)
    ctx.save_for_backward(x, filters, bias)


def _backward(ctx, grad: Tensor):
    x, filters, bias = ctx.saved_tensors
    dx, dfilters, dsum = local_filter_backward(grad, x, filters, bias, *ctx.geometry)
    dbias = None
    if bias is not None and ctx.needs_input_grad[2]:
        dbias = dx if bias.shape[1] == x.shape[1] else dsum
    return dx, dfilters, dbias, None, None


local_filter.register_autograd(_backward, setup_context=_setup_context)


def usable(x: Tensor) -> bool:
    """True where the kernels run: CUDA tensors, or CPU tensors under the interpreter."""
    return x.is_cuda or (INTERPRETED and x.device.type == "cpu")
