"""Convolution with an untied bias: one learned bias per output channel *and* pixel.

Used by the paper's highway-driving and stereo networks (dfn.nets.encoder_decoder) so that the first/last
encoder layer can learn position-dependent offsets. Input ``(B, C_in, H_in, W_in)``, output
``(B, C_out, H, W)`` where ``(H, W)`` is fixed at construction.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class UntiedBiasConv2d(nn.Conv2d):
    """``nn.Conv2d`` without its shared bias, plus a bias ``(C_out, H, W)`` for output size ``(H, W)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, output_size: tuple[int, int],
                 stride: int = 1, padding: int = 0) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.output_size = tuple(output_size)
        self.untied_bias = nn.Parameter(torch.zeros(out_channels, *self.output_size))

    def forward(self, x: Tensor) -> Tensor:
        out = super().forward(x)
        if out.shape[-2:] != self.output_size:
            raise ValueError(f"UntiedBiasConv2d was built for {self.output_size} outputs, got "
                             f"{tuple(out.shape[-2:])} (input {tuple(x.shape)}): set the net's image_size")
        return out + self.untied_bias

    def extra_repr(self) -> str:
        return super().extra_repr() + f", untied bias {self.output_size}"
