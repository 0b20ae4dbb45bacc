"""Baseline: ConvLSTM video predictor (Shi et al., "Convolutional LSTM Network", NIPS 2015).

Frames are folded into ``patch x patch`` blocks (space-to-depth, as Shi et al. do for Moving
MNIST), run through a stack of ConvLSTM layers, and a 1x1 convolution plus a sigmoid unfolds the
top hidden state into the next frame. Like the DFN predictor it reads the observed frames, then
feeds back its own predictions.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConvLSTMCell(nn.Module):
    """One ConvLSTM layer: gates from a convolution of ``[x, h]``; ``(x, (h, c)) -> (h, c)``."""

    def __init__(self, in_channels: int, hidden: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor, state: Optional[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden, *x.shape[2:])
            state = (zeros, zeros)
        h, c = state
        i, f, o, g = self.gates(torch.cat([x, h], 1)).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class ConvLSTMPredictor(nn.Module):
    """``forward(observed (B, T_in, C, H, W), future) -> ((B, future, C, H, W), None)``.

    Args:
        channels: frame channels ``C``.
        hidden: widths of the stacked ConvLSTM layers.
        kernel_size: of the gate convolutions.
        patch: space-to-depth block size (``H`` and ``W`` must be multiples of it).
    """

    filter_window = None  # no generated filters

    def __init__(self, channels: int = 1, hidden: Sequence[int] = (64, 64), kernel_size: int = 5,
                 patch: int = 4) -> None:
        super().__init__()
        self.patch = patch
        widths = [channels * patch * patch, *hidden]
        self.cells = nn.ModuleList(ConvLSTMCell(a, b, kernel_size) for a, b in zip(widths, widths[1:]))
        self.readout = nn.Conv2d(widths[-1], channels * patch * patch, 1)

    def forward(self, observed: Tensor, future: int, return_filters: bool = False
                ) -> tuple[Tensor, Optional[Tensor]]:
        T_in = observed.shape[1]
        states: list[Optional[tuple[Tensor, Tensor]]] = [None] * len(self.cells)
        predictions: list[Tensor] = []
        for t in range(T_in + future - 1):
            x = F.pixel_unshuffle(observed[:, t] if t < T_in else predictions[-1], self.patch)
            for k, cell in enumerate(self.cells):
                states[k] = cell(x, states[k])
                x = states[k][0]
            if t >= T_in - 1:
                predictions.append(torch.sigmoid(F.pixel_shuffle(self.readout(x), self.patch)))
        return torch.stack(predictions, 1), None
