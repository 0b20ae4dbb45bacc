"""Dynamic local filtering: one generated filter per sample *and* pixel (paper section 3.3).

Two layouts (docs/design.md), ``T = kh * kw`` taps in row-major order ``t = u * kw + v``:

* shared across channels (the paper's experiments, also RGB warping)::

      x (B, C, H, W), filters (B, T, H, W) -> out (B, C, H, W)
      out[b, c, y, x] = sum_{u,v} filters[b, u*kw+v, y, x] * x[b, c, y+oy+u, x+ox+v]

* general, ``n`` filters over ``C`` channels (the paper's theta in R^{s x s x c_B x n x d})::

      x (B, C, H, W), filters (B, n, C, T, H, W) -> out (B, n, H, W), summed over channels and taps

``(oy, ox)`` is the window's origin (default centred: ``(-(kh//2), -(kw//2))``; ``(0, 0)`` reads
offsets ``0 .. k-1``), as in :mod:`dfn.ops.geometry`. Zero padding, same output size.

How it runs: one of the backends of :mod:`dfn.ops.backends`, chosen by ``backend`` ("auto":
the fused C kernel on the CPU, the row blocks on CUDA). For ``"c"``, ``"loop"`` and ``"blocks"``
the autograd graph saves only ``x`` and ``filters``; the ``B*C*kh*kw*H*W`` unfold buffer is never
kept. The two gradients are the same bilinear map with its roles swapped (``dfilters =
grad_filters(x, dout)``: a per-pixel reduction over channels; ``dx = grad_input(filters, dout)``:
``filters * dout`` scattered back into the shifted windows). Each of the three maps is
differentiable through the other two, so double backward works. With ``softmax`` (logits in, the
models' case) ``"c"`` runs kernels with the softmax and the bias inside, which never write the
normalised filters to memory (their second derivative is composed from the faces). ``"triton"`` is
one custom op with the softmax and the bias inside (first-order gradients).

Precision: inputs and outputs keep their dtype; float16 / bfloat16 accumulate in float32 and are
rounded once at the end (so the error is about one rounding of the output, not one per tap).
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import torch
from torch import Tensor

from dfn.ops import backends, cpu_kernel, tap_blocks, tap_loop
from dfn.ops.geometry import KernelSize, Origin, Window, window

# Canonical internal layout, shared by both public forms:
#   x (B, C, H, W); filters f7 (B, N, Cf, kh, kw, H, W); out / dout g5 (B, N, Co, H, W)
#   shared form: N = 1, Cf = 1, Co = C    general form: N = n, Cf = C, Co = 1
# Cf and Co are always {1, C} in some order, so `f * g` broadcasts to (B, C, H, W).
# The "c" backend runs the shared form only (N = Cf = 1); "loop" and "blocks" run everything.
PORTABLE = {"loop": tap_loop, "blocks": tap_blocks}


class Geometry(NamedTuple):
    """What every face of the op needs besides its two tensors."""
    shared: bool     # one filter for all channels (N = Cf = 1)
    window: Window   # kh, kw and the origin
    channels: int    # C of x
    backend: str     # "c", "loop" or "blocks"


def _forward(x: Tensor, f7: Tensor, g: Geometry) -> Tensor:
    """``out[b,n,co] = sum_{cf,u,v} f7[b,n,cf,u,v] * shift_{u,v}(x)[b, cf or co]`` -> (B, N, Co, H, W)."""
    B, N, Cf, kh, kw, H, W = f7.shape
    if g.backend == "c":
        return cpu_kernel.forward(x, f7.reshape(B, kh * kw, H, W), g.window)[:, None]
    return PORTABLE[g.backend].forward(x, f7, g.window)


def _grad_filters(x: Tensor, g5: Tensor, g: Geometry) -> Tensor:
    """``df[b,n,cf,u,v] = sum_co g5[b,n,co] * shift_{u,v}(x)[b, cf or co]`` -> (B, N, Cf, kh, kw, H, W)."""
    B, N, Co, H, W = g5.shape
    if g.backend == "c":
        return cpu_kernel.grad_filters(x, g5[:, 0], g.window).view(B, 1, 1, *g.window[:2], H, W)
    return PORTABLE[g.backend].grad_filters(x, g5, g.shared, g.window)


def _grad_input(f7: Tensor, g5: Tensor, g: Geometry) -> Tensor:
    """``dx[b,c] = sum_{n,u,v} shift_{-u,-v}(f7[b,n,:,u,v] * g5[b,n])[c]`` -> (B, C, H, W)."""
    B, N, Cf, kh, kw, H, W = f7.shape
    if g.backend == "c":
        return cpu_kernel.grad_input(f7.reshape(B, kh * kw, H, W), g5[:, 0], g.window)
    return PORTABLE[g.backend].grad_input(f7, g5, g.channels, g.window)


Gradient = Callable[[Tensor, Tensor, Tensor, Geometry], Tensor]   # (a, b, grad, geometry) -> grad of a or b


def _face(compute: Callable[[Tensor, Tensor, Geometry], Tensor], da: Gradient, db: Gradient
          ) -> type[torch.autograd.Function]:
    """An autograd.Function ``apply(a, b, geometry) -> compute(a, b, geometry)`` that saves only
    ``a`` and ``b``; ``da`` and ``db`` give the gradients of ``a`` and ``b`` from the output's."""

    class Face(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a: Tensor, b: Tensor, geometry: Geometry) -> Tensor:
            ctx.geometry = geometry
            ctx.save_for_backward(a, b)
            return compute(a, b, geometry)

        @staticmethod
        def backward(ctx, grad: Tensor):
            a, b = ctx.saved_tensors
            need_a, need_b = ctx.needs_input_grad[:2]
            return (da(a, b, grad, ctx.geometry) if need_a else None,
                    db(a, b, grad, ctx.geometry) if need_b else None, None)

    Face.__name__ = Face.__qualname__ = compute.__name__.strip("_").title().replace("_", "")
    return Face


# The bilinear map <dout, forward(x, f)> has three faces; the gradient of each is built from the
# other two, so any order of derivative works:
#   forward(x, f) -> out          d/dx = grad_input(f, dout)    d/df = grad_filters(x, dout)
#   grad_input(f, dout) -> dx     d/df = grad_filters(ddx, dout)  d/ddout = forward(ddx, f)
#   grad_filters(x, dout) -> df   d/dx = grad_input(ddf, dout)    d/ddout = forward(x, ddf)
_Forward = _face(_forward, lambda x, f, dout, g: _GradInput.apply(f, dout, g),
                 lambda x, f, dout, g: _GradFilters.apply(x, dout, g))
_GradInput = _face(_grad_input, lambda f, dout, ddx, g: _GradFilters.apply(ddx, dout, g),
                   lambda f, dout, ddx, g: _Forward.apply(ddx, f, g))
_GradFilters = _face(_grad_filters, lambda x, dout, ddf, g: _GradInput.apply(ddf, dout, g),
                     lambda x, dout, ddf, g: _Forward.apply(x, ddf, g))


class _SoftmaxFilter(torch.autograd.Function):
    """The models' case on ``"c"``: ``(x, logits, bias, window) -> filter(x + bias,
    softmax(logits))`` with the softmax and the bias inside the C kernels; saves x, logits, bias
    and the softmax's statistics (two values per pixel). The logits keep their own dtype (bfloat16
    ones beside a float32 ``x`` are read as they are), and so does their gradient; the output has
    ``x``'s dtype.

    A second derivative (``create_graph=True``) takes the same gradients composed from
    differentiable parts (torch's softmax and the bilinear faces above), so double backward works."""

    @staticmethod
    def forward(ctx, x: Tensor, logits: Tensor, bias: Optional[Tensor], w: Window) -> Tensor:
        ctx.window = w
        out, stats = cpu_kernel.softmax_forward(x, logits, bias, w)
        ctx.save_for_backward(x, logits, bias, stats.m_and_r)
        return out

    @staticmethod
    def backward(ctx, dout: Tensor):
        x, logits, bias, stats = ctx.saved_tensors
        w = ctx.window
        if torch.is_grad_enabled():
            dx, dlogits = _softmax_filter_grads(x, logits, bias, dout, w)
        else:
            dx, dlogits = cpu_kernel.softmax_backward(x, logits, bias, cpu_kernel.SoftmaxStats(stats),
                                                      dout, w)
        dbias = None
        if bias is not None and ctx.needs_input_grad[2]:
            dbias = dx.sum(1, keepdim=True) if bias.shape[1] == 1 else dx
        return dx, dlogits, dbias, None


def _softmax_filter_grads(x: Tensor, logits: Tensor, bias: Optional[Tensor], dout: Tensor,
                          w: Window) -> tuple[Tensor, Tensor]:
    """``_SoftmaxFilter``'s ``(dx, dlogits)`` from differentiable parts (for higher derivatives)."""
    B, T, H, W = logits.shape
    geometry = Geometry(True, w, x.shape[1], "c")
    p = torch.softmax(logits.to(x.dtype), dim=1)
    g5 = dout[:, None]
    dx = _GradInput.apply(p.view(B, 1, 1, w.kh, w.kw, H, W), g5, geometry)
    dp = _GradFilters.apply(x if bias is None else x + bias, g5, geometry).view(B, T, H, W)
    return dx, (p * (dp - (p * dp).sum(1, keepdim=True))).to(logits.dtype)


def _check(x: Tensor, filters: Tensor, kh: int, kw: int, bias: Optional[Tensor]) -> bool:
    """Validate shapes; return True for the shared form. Raises one ``ValueError`` naming the fix."""
    if x.ndim != 4:
        raise ValueError(f"x must be (B, C, H, W), got shape {tuple(x.shape)}")
    B, C, H, W = x.shape
    T = kh * kw
    shared_shape, general_shape = (B, T, H, W), (B, "n", C, T, H, W)
    expected = (f"filters must be (B, kh*kw, H, W) = {shared_shape} (shared across channels) "
                f"or (B, n, C, kh*kw, H, W) = {general_shape} for kernel_size ({kh}, {kw}) "
                f"and x of shape {tuple(x.shape)}")
    if filters.ndim == 4:
        shared = True
        ok = tuple(filters.shape) == shared_shape
    elif filters.ndim == 6:
        shared = False
        ok = (filters.shape[0] == B and tuple(filters.shape[2:]) == general_shape[2:])
    else:
        ok = False
    if not ok:
        raise ValueError(f"{expected}; got {tuple(filters.shape)}")
    if bias is not None and (bias.ndim != 4 or bias.shape[0] != B or bias.shape[1] not in (1, C)
                             or tuple(bias.shape[2:]) != (H, W)):
        raise ValueError(f"bias must be (B, 1 or C, H, W) = ({B}, 1 or {C}, {H}, {W}), "
                         f"got {tuple(bias.shape)}")
    for name, t in (("x", x), ("filters", filters), ("bias", bias)):
        if t is not None and not t.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype}")
        if t is not None and t.device != x.device:
            raise ValueError(f"{name} is on {t.device} but x is on {x.device}; move both to one device")
    return shared


def dynamic_local_filter(x: Tensor, filters: Tensor, kernel_size: KernelSize, *,
                         softmax: bool = False, bias: Optional[Tensor] = None,
                         origin: Origin = None, backend: str = "auto") -> Tensor:
    """Filter every pixel of ``x`` with its own generated filter.

    Args:
        x: input ``(B, C, H, W)``.
        filters: ``(B, kh*kw, H, W)``, one filter per pixel shared by all channels, or
            ``(B, n, C, kh*kw, H, W)``, ``n`` filters per pixel that sum over the channels.
        kernel_size: ``k`` for ``k x k`` or ``(kh, kw)``, e.g. ``(1, 13)`` for horizontal filters.
        softmax: treat ``filters`` as logits and normalise each filter over its taps first.
        bias: dynamic per-pixel bias ``(B, 1 or C, H, W)`` added to ``x`` before filtering.
        origin: ``(oy, ox)``, the offset tap ``(0, 0)`` reads (tap ``(u, v)`` reads ``(y + oy + u,
            x + ox + v)``); ``None`` centres the window, ``(0, 0)`` makes it one-sided.
        backend: ``"auto"``, ``"c"``, ``"loop"``, ``"blocks"`` or ``"triton"``: which
            implementation runs (:mod:`dfn.ops.backends` says which runs where).
    Returns:
        ``(B, C, H, W)`` for shared filters, ``(B, n, H, W)`` for the general form; the dtype of
        ``x`` and ``filters`` promoted together.
    """
    w = window(kernel_size, origin)
    kh, kw = w.kh, w.kw
    shared = _check(x, filters, kh, kw, bias)
    dtype = torch.promote_types(x.dtype, filters.dtype)
    if bias is not None:
        dtype = torch.promote_types(dtype, bias.dtype)
        bias = bias.to(dtype)
    x = x.to(dtype)
    backend = backends.resolve(backend, x, shared)
    # the fused kernels read rows of unit stride: a conv's channels-last output changes dtype and
    # layout in one copy; NCHW views (a slice of theta) stay views. The C softmax kernels take the
    # logits in their own dtype (cpu_kernel reads bfloat16 ones, the generator's under autocast,
    # as they are, and converts others).
    to_nchw = backend in ("c", "triton") and filters.stride(-1) != 1
    own_dtype = backend == "c" and softmax
    filters = filters.to(filters.dtype if own_dtype else dtype,
                         memory_format=torch.contiguous_format if to_nchw else torch.preserve_format)
    if backend == "triton":
        return backends.triton_ops().local_filter(
            x.contiguous(), filters.contiguous(), None if bias is None else bias.contiguous(),
            list(w), softmax)
    if backend == "c" and softmax:
        return _SoftmaxFilter.apply(x, filters, bias, w)
    if bias is not None:
        x = x + bias
    tap_dim = 1 if shared else 3
    if softmax:
        filters = torch.softmax(filters, dim=tap_dim)
    f7 = filters.unflatten(tap_dim, (kh, kw))
    f7 = f7[:, None, None] if shared else f7                    # (B, N, Cf, kh, kw, H, W)
    out = _Forward.apply(x, f7, Geometry(shared, w, x.shape[1], backend))
    return out[:, 0] if shared else out[:, :, 0]
