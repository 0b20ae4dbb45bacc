"""Where a filter generator's output starts: shared by the nets' ``start_output`` methods."""
from __future__ import annotations

import torch
from torch import Tensor, nn


@torch.no_grad()
def start_linear_output(layer: nn.Conv2d, bias: Tensor, gain: float) -> None:
    """Scale the weights of a generator's last, linear ``layer`` by ``gain`` and set its bias to
    ``bias (out_channels,)``: its output starts at ``bias`` plus a ``gain``-scaled perturbation
    that still depends on the input (``gain`` 0 would leave the layers below without gradient)."""
    if bias.shape != (layer.out_channels,):
        raise ValueError(f"bias must be ({layer.out_channels},), got {tuple(bias.shape)}")
    if gain < 0:
        raise ValueError(f"gain must be >= 0, got {gain}")
    layer.weight.mul_(gain)
    layer.bias.copy_(bias.to(layer.bias))
