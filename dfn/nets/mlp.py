"""Per-pixel MLP filter generator: a stack of 1x1 convolutions (paper section 4.1).

Applied to a 1x1 "image" it is an ordinary MLP; applied to an image it maps every pixel's
features to that pixel's filter. Steerable filters (paper 4.1): ``PixelMLP(1, [64, 128], 81)``,
18,897 parameters.
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from dfn.errors import require_positive
from dfn.nets.output_start import start_linear_output


class PixelMLP(nn.Module):
    """``(B, in_channels, H, W) -> (B, out_channels, H, W)``; LeakyReLU between layers, linear output.

    Args:
        in_channels: features per pixel.
        hidden: widths of the hidden layers.
        out_channels: outputs per pixel (e.g. ``kh * kw`` filter taps).
        negative_slope: of the LeakyReLU activations.
    """

    def __init__(self, in_channels: int = 1, hidden: Sequence[int] = (64, 128),
                 out_channels: int = 81, negative_slope: float = 0.01) -> None:
        super().__init__()
        require_positive("net.", in_channels=in_channels, hidden=list(hidden), out_channels=out_channels)
        widths = [in_channels, *hidden, out_channels]
        layers: list[nn.Module] = []
        for i, (w_in, w_out) in enumerate(zip(widths, widths[1:])):
            layers.append(nn.Conv2d(w_in, w_out, 1))
            if i < len(widths) - 2:
                layers.append(nn.LeakyReLU(negative_slope))
        self.layers = nn.Sequential(*layers)
        self.in_channels, self.out_channels = in_channels, out_channels

    def start_output(self, bias: Tensor, gain: float) -> None:
        """Start the output near ``bias (out_channels,)``: the last layer's bias becomes ``bias``
        and its weights are scaled by ``gain``."""
        start_linear_output(self.layers[-1], bias, gain)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
