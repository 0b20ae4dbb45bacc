"""A 1x1 convolution that writes its output as channel planes (NCHW), whatever its input's layout.

The generator's last layer is a 1x1 conv whose output, ``theta``, the filtering ops read plane by
plane (the C and Triton kernels take NCHW filters). Run channels-last as the rest of the network,
that conv would write NHWC and the op would convert it, forward and backward. Here the conv is one
matrix product per image, ``W (C_out, C_in) @ x (C_in, H*W)``, which the BLAS reads in either
layout and writes as planes; the backward gives ``x``'s gradient in ``x``'s own layout.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


def pointwise_conv(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """``F.conv2d(x, weight, bias)`` for 1x1 weights: ``x (B, C_in, H, W)`` in any layout,
    ``weight (C_out, C_in, 1, 1)``, ``bias (C_out,)`` -> ``(B, C_out, H, W)`` NCHW-contiguous.
    Under autocast it computes in the autocast dtype, as the conv would."""
    if weight.dim() != 4 or weight.shape[2:] != (1, 1) or weight.shape[1] != x.shape[1]:
        raise ValueError(f"pointwise_conv needs 1x1 weights (C_out, {x.shape[1]}, 1, 1) for an input "
                         f"of {x.shape[1]} channels, got weights of shape {tuple(weight.shape)}")
    return _PointwiseConv.apply(x, weight, bias)


class _PointwiseConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        device = x.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype
        ctx.dtypes = x.dtype, weight.dtype, None if bias is None else bias.dtype
        B, _, H, W = x.shape
        with torch.autocast(device, enabled=False):
            x, weight = x.to(dtype), weight.flatten(1).to(dtype)
            # bmm, not matmul: matmul folds a channels-last x into one (B*H*W, C_in) product whose
            # result it copies into planes (with the bias gradient below, forward + backward at
            # B=16, 128 -> 81 channels, 64x64, on an AVX-512 VM: float32 42 -> 35 ms, bf16 21 -> 19)
            out = torch.bmm(weight.expand(B, -1, -1), x.flatten(2))  # (B, C_out, H*W); x.flatten(2) is a view
            if bias is not None:
                out += bias.to(dtype)[:, None]
        ctx.save_for_backward(x, weight)
        return out.view(B, -1, H, W)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Optional[Tensor], ...]:
        x, weight = ctx.saved_tensors
        x_dtype, weight_dtype, bias_dtype = ctx.dtypes
        B, C, H, W = x.shape
        g = grad.to(weight.dtype).reshape(B, -1, H * W)           # (B, C_out, H*W)
        total = torch.promote_types(weight.dtype, torch.float32)   # sums over the batch in float32 or wider
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
                grad_x = torch.bmm(g.transpose(1, 2), weight.expand(B, -1, -1)).view(B, H, W, C).permute(0, 3, 1, 2)
            else:
                grad_x = torch.bmm(weight.t().expand(B, -1, -1), g).view(B, C, H, W)
            grad_x = grad_x.to(x_dtype)
        if ctx.needs_input_grad[1]:
            pixels = x.flatten(2).transpose(1, 2)                 # (B, H*W, C_in)
            grad_weight = torch.bmm(g, pixels).sum(0, dtype=total).to(weight_dtype)[:, :, None, None]
        if bias_dtype is not None and ctx.needs_input_grad[2]:
            # per image first: a sum over (0, 2) with a dtype copies all of g to it first
            grad_bias = g.sum(2, dtype=total).sum(0).to(bias_dtype)
        return grad_x, grad_weight, grad_bias
