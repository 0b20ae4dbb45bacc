"""Convolutional encoder-decoder filter generator, optionally recurrent (paper sections 4.2, 4.3).

::

    x (B, in_channels, S, S)
      -> encoder: 3x3 convs with channels `encoder` and strides `encoder_strides`  (S / r)
      -> [recurrent] h_t = encoder(x_t) + R(h_{t-1}), R = `recurrent_convs` 3x3 convs, h_0 = 0
      -> decoder: 3x3 convs `decoder` at S / r, nearest upsampling x r, 3x3 convs `upsampled`
      -> head: 1x1 convs `head`, the last one linear: theta (B, head[-1], S, S)

LeakyReLU after every conv but the last, He-uniform weights, zero biases. ``untied_bias`` lists
encoder layers whose bias is per pixel (:class:`dfn.layers.UntiedBiasConv2d`). The paper's
networks (paper 4.2, 4.3; parameter counts asserted in the tests):

* Moving MNIST, 637,361: ``encoder [32, 32, 64, 64, 128]``, strides ``[1, 2, 1, 1, 1]``,
  ``recurrent_convs 2``, ``decoder [64, 64]``, ``upsampled [64, 64]``, ``head [128, 81]``.
* Highway driving, 368,122: ``in_channels 2``, ``encoder [32, 32, 64, 64]`` (strides
  ``[1, 2, 1, 1]``), ``untied_bias [0]``, ``recurrent_convs 2``, ``decoder [64]``,
  ``upsampled [32, 64]``, ``head [128, 122]``.
* Stereo, 464,494: ``encoder [32, 32, 64, 64, 128]``, ``untied_bias [4]``, no recurrence,
  ``decoder [64, 64]``, ``upsampled [64, 64]``, ``head [128, 14]``.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from dfn.errors import ConfigError, require_positive
from dfn.layers.pointwise_conv import pointwise_conv
from dfn.layers.untied_bias_conv import UntiedBiasConv2d
from dfn.layers.upsampled_conv import upsampled_conv
from dfn.nets.output_start import start_linear_output


class EncoderDecoder(nn.Module):
    """``forward(x, hidden=None) -> (theta, hidden)``; ``hidden`` is ``None`` without recurrence.

    Args:
        in_channels: input channels (frames stacked as channels).
        encoder, encoder_strides: 3x3 conv widths and strides (default stride 1 everywhere).
        decoder: 3x3 conv widths before upsampling; upsampled: after it.
        head: 1x1 conv widths; ``head[-1]`` is ``out_channels``.
        recurrent_convs: 3x3 convs on the previous hidden state (0 = feed-forward).
        untied_bias: encoder layer indices with a per-pixel bias.
        image_size: input side ``S`` (needed for untied biases).
        negative_slope: of the LeakyReLU activations.
    """

    def __init__(self, in_channels: int = 1, encoder: Sequence[int] = (32, 32, 64, 64, 128),
                 encoder_strides: Optional[Sequence[int]] = (1, 2, 1, 1, 1),
                 decoder: Sequence[int] = (64, 64), upsampled: Sequence[int] = (64, 64),
                 head: Sequence[int] = (128, 81), recurrent_convs: int = 2,
                 untied_bias: Sequence[int] = (), image_size: int = 64,
                 negative_slope: float = 0.01) -> None:
        super().__init__()
        require_positive("net.", in_channels=in_channels, encoder=list(encoder), decoder=list(decoder),
                         upsampled=list(upsampled), head=list(head), image_size=image_size)
        strides = list(encoder_strides) if encoder_strides is not None else [1] * len(encoder)
        if len(strides) != len(encoder) or not encoder or not head:
            raise ConfigError(f"encoder {list(encoder)} and encoder_strides {strides} must have the "
                             "same, non-zero length, and head must not be empty")
        if any(i < 0 or i >= len(encoder) for i in untied_bias):
            raise ConfigError(f"untied_bias indices {list(untied_bias)} must index the encoder layers")
        # in place: each activation overwrites its conv's output, which nothing else keeps (a conv
        # saves its input for the backward, not its output); the backward reads the sign from the
        # result, which needs a slope >= 0. Measured on a 2-core AVX-512 VM, Moving MNIST, batch
        # 16: float32 steps 10 % shorter (no fresh allocation per layer), bf16 5 %.
        self.act = nn.LeakyReLU(negative_slope, inplace=negative_slope >= 0)
        self.scale = math.prod(strides)
        self.encoder = nn.ModuleList()
        size, width = image_size, in_channels
        for i, (out, stride) in enumerate(zip(encoder, strides)):
            size = (size - 1) // stride + 1                      # 3x3, padding 1
            self.encoder.append(UntiedBiasConv2d(width, out, 3, (size, size), stride=stride, padding=1)
                                if i in untied_bias else nn.Conv2d(width, out, 3, stride=stride, padding=1))
            width = out
        self.recurrent = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(recurrent_convs))
        self.decoder = self._stack(width, decoder, 3)
        width = decoder[-1] if decoder else width
        self.upsampled = self._stack(width, upsampled, 3)
        width = upsampled[-1] if upsampled else width
        self.head = self._stack(width, head, 1)
        self.in_channels, self.out_channels = in_channels, head[-1]
        self.reset_parameters(negative_slope)

    @staticmethod
    def _stack(width: int, widths: Sequence[int], kernel: int) -> nn.ModuleList:
        layers = nn.ModuleList()
        for out in widths:
            layers.append(nn.Conv2d(width, out, kernel, padding=kernel // 2))
            width = out
        return layers

    def reset_parameters(self, negative_slope: float) -> None:
        """He-uniform weights for LeakyReLU, zero biases (as the paper's released code)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight, a=negative_slope, nonlinearity="leaky_relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            if isinstance(module, UntiedBiasConv2d):
                nn.init.zeros_(module.untied_bias)

    def start_output(self, bias: Tensor, gain: float) -> None:
        """Start ``theta`` near ``bias (out_channels,)``: the last layer's bias becomes ``bias``
        and its weights are scaled by ``gain`` (see :class:`dfn.predictors.DynamicFilterPredictor`)."""
        start_linear_output(self.head[-1], bias, gain)

    @property
    def recurrent_state(self) -> bool:
        return len(self.recurrent) > 0

    def _run(self, layers: Sequence[nn.Module], x: Tensor) -> Tensor:
        for layer in layers:
            x = self.act(layer(x))
        return x

    def encode(self, x: Tensor, hidden: Optional[Tensor] = None) -> Tensor:
        """The encoder and, if recurrent, the state update: ``x (B, in_channels, S, S)`` and
        ``hidden (B, C_enc, S/r, S/r)`` or ``None`` (zeros) -> ``h (B, C_enc, S/r, S/r)``. The
        recurrent predictor calls this alone for observed frames whose filters it does not use."""
        h = self._run(self.encoder, x)
        if self.recurrent_state:           # h_0 = 0 is every sample's: its update runs once, broadcast
            previous = torch.zeros_like(h[:1]) if hidden is None else hidden
            h = h + self._run(self.recurrent, previous)
        return h

    def decode(self, h: Tensor) -> Tensor:
        """``h (B, C_enc, S/r, S/r)`` -> ``theta (B, out_channels, S, S)``. The first upsampled
        conv runs on the nearest-upsampled image at the low resolution (:func:`upsampled_conv`:
        the same values, 2.25x fewer multiply-adds); the last, linear 1x1 conv writes ``theta``
        as channel planes whatever the network's layout (:func:`pointwise_conv`)."""
        y = self._run(self.decoder, h)
        upsampled = list(self.upsampled)
        if self.scale > 1 and upsampled:
            y = self.act(upsampled_conv(y, upsampled[0], self.scale))
            upsampled = upsampled[1:]
        elif self.scale > 1:
            y = nn.functional.interpolate(y, scale_factor=self.scale, mode="nearest")
        y = self._run([*upsampled, *self.head[:-1]], y)
        return pointwise_conv(y, self.head[-1].weight, self.head[-1].bias)

    def advance(self, x: Tensor, hidden: Optional[Tensor] = None) -> Optional[Tensor]:
        """The recurrent state after ``x`` when its filters are not needed: the encoder alone
        (``None`` for a feed-forward net, which keeps no state)."""
        return self.encode(x, hidden) if self.recurrent_state else None

    def forward(self, x: Tensor, hidden: Optional[Tensor] = None) -> tuple[Tensor, Optional[Tensor]]:
        """``x (B, in_channels, S, S)``, ``hidden (B, C_enc, S/r, S/r)`` or ``None`` (zeros) ->
        ``theta (B, out_channels, S, S)`` and the new hidden state (``None`` if feed-forward)."""
        h = self.encode(x, hidden)
        return self.decode(h), (h if self.recurrent_state else None)
