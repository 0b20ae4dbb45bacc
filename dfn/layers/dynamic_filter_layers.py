"""Dynamic filtering layers: turn a filter-generating network's raw output into filters and apply them.

``DynamicLocalFilter`` takes ``theta (B, filter_channels + bias_channels, H, W)`` per pixel;
``DynamicConv`` takes ``theta (B, filter_channels)`` per sample (trailing ``1 x 1`` dims allowed).
The channel count a generator must emit is ``layer.theta_channels``.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from dfn.errors import ConfigError

from dfn.ops import BACKENDS, dynamic_conv, dynamic_local_filter, kernel_hw
from dfn.ops.geometry import KernelSize, Origin, Window, window
from dfn.ops.separable import separable_filters


class _FilterLayout(nn.Module):
    """How the filter part of ``theta`` is laid out: kernel, form, softmax and bias channels.

    Args:
        kernel_size: ``k`` or ``(kh, kw)``.
        softmax: ``theta`` holds logits; each filter is normalised over its taps.
        bias_channels: 0 (no dynamic bias), 1 (one bias for all channels) or ``C`` (per channel).
        n_filters: ``None`` for filters shared across channels (output has ``C`` channels);
            ``n`` for ``n`` filters that each sum over ``in_channels`` (output has ``n`` channels).
        in_channels: ``C``; required with ``n_filters``.
    """

    def __init__(self, kernel_size: KernelSize, *, softmax: bool = False, bias_channels: int = 0,
                 n_filters: Optional[int] = None, in_channels: Optional[int] = None) -> None:
        super().__init__()
        self.kh, self.kw = kernel_hw(kernel_size)
        if bias_channels < 0:
            raise ValueError(f"bias_channels must be 0, 1 or C, got {bias_channels}")
        if n_filters is not None and (n_filters < 1 or in_channels is None or in_channels < 1):
            raise ValueError("the general form needs n_filters >= 1 and in_channels >= 1, got "
                             f"n_filters={n_filters}, in_channels={in_channels}")
        self.softmax = softmax
        self.bias_channels = bias_channels
        self.n_filters = n_filters
        self.in_channels = in_channels

    @property
    def filter_shape(self) -> tuple[int, ...]:
        """Non-batch, non-spatial shape of the filters: ``(taps,)`` or ``(n, C, taps)``."""
        taps = self.taps_per_filter
        return (taps,) if self.n_filters is None else (self.n_filters, self.in_channels, taps)

    @property
    def taps_per_filter(self) -> int:
        return self.kh * self.kw

    @property
    def theta_channels(self) -> int:
        """Channels the filter-generating network must output."""
        n = 1
        for s in self.filter_shape:
            n *= s
        return n + self.bias_channels

    def check_generator(self, net: nn.Module, what: str, per: str) -> None:
        """Raise ``ConfigError`` unless ``net.out_channels`` is :attr:`theta_channels`.

        Args:
            what: the setting that fixed the layout, e.g. ``"model.kernel_size 9"``.
            per: what one filter belongs to, e.g. ``"angle"`` or ``"pixel"``.
        """
        produced = getattr(net, "out_channels", None)
        if produced != self.theta_channels:
            raise ConfigError(
                f"{what} needs {self.theta_channels} filter values per {per}, but the filter-generating "
                f"net produces {produced}: set the net's out_channels (its last layer) to "
                f"{self.theta_channels}, or the filter settings to match the net")

    def _split(self, theta: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        """Channels of ``theta`` -> filter values ``(B, *filter_shape, ...)`` and bias."""
        if theta.shape[1] != self.theta_channels:
            raise ValueError(f"{type(self).__name__} expects theta with {self.theta_channels} "
                             f"channels ({self.filter_shape} filter values + {self.bias_channels} "
                             f"bias), got shape {tuple(theta.shape)}")
        n_filter = self.theta_channels - self.bias_channels
        filters = theta[:, :n_filter].unflatten(1, self.filter_shape)
        bias = theta[:, n_filter:] if self.bias_channels else None
        return filters, bias

    def extra_repr(self) -> str:
        form = "shared" if self.n_filters is None else f"n_filters={self.n_filters}, in_channels={self.in_channels}"
        return (f"kernel_size=({self.kh}, {self.kw}), {form}, softmax={self.softmax}, "
                f"bias_channels={self.bias_channels}")


class DynamicLocalFilter(_FilterLayout):
    """Per-pixel dynamic filtering layer (paper section 3.3).

    ``theta (B, theta_channels, H, W)`` is split into filters and an optional dynamic bias; the bias
    is added to ``x (B, C, H, W)`` before filtering. With ``separable=True`` each filter is a
    vertical ``kh`` and a horizontal ``kw`` filter (their outer product, see
    :func:`dfn.ops.separable_local_filter`), so ``theta`` carries ``kh + kw`` taps per filter.
    ``origin`` places the window (:mod:`dfn.ops.geometry`: ``None`` centres it, ``(0, 0)`` reads
    offsets ``0 .. k-1``). ``backend`` picks the op's implementation (:mod:`dfn.ops.backends`;
    ``"auto"`` by default). Output: ``(B, C, H, W)`` (shared) or ``(B, n_filters, H, W)`` (general).
    """

    def __init__(self, kernel_size: KernelSize, *, softmax: bool = False, bias_channels: int = 0,
                 separable: bool = False, n_filters: Optional[int] = None,
                 in_channels: Optional[int] = None, origin: Origin = None,
                 backend: str = "auto") -> None:
        super().__init__(kernel_size, softmax=softmax, bias_channels=bias_channels,
                         n_filters=n_filters, in_channels=in_channels)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
        self.window: Window = window((self.kh, self.kw), origin)
        self.separable = separable
        self.backend = backend

    @property
    def taps_per_filter(self) -> int:
        return self.kh + self.kw if self.separable else self.kh * self.kw

    def split(self, theta: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        """``theta (B, theta_channels, H, W)`` -> full ``kh*kw`` filters in the op's layout and bias.

        Filters are normalised when ``softmax`` is set; separable factors are multiplied out, so
        the result is what the op applies (for pictures and the smoothness penalty).
        """
        filters, bias = self._split(theta)
        tap_dim = filters.ndim - 3
        if self.separable:
            return separable_filters(*filters.split((self.kh, self.kw), tap_dim), self.softmax), bias
        return (filters.softmax(tap_dim) if self.softmax else filters), bias

    def identity_theta(self, centre_weight: float) -> Tensor:
        """``(theta_channels,)``: the ``theta`` whose filters put ``centre_weight`` on the anchor
        tap (the one reading offset ``(0, 0)``: ``(kh//2, kw//2)`` when centred, ``(0, 0)`` for a
        one-sided window) and the rest evenly on the others, with zero bias: the layer then nearly
        copies its input. With ``softmax`` these are logits; a separable filter gets the same start
        in each factor. Only for filters shared across channels whose window holds the pixel."""
        if self.n_filters is not None:
            raise ValueError("an identity start needs filters shared across channels (n_filters=None)")
        if not 0 < centre_weight < 1:
            raise ValueError(f"centre_weight must be in (0, 1), got {centre_weight}")
        au, av = -self.window.oy, -self.window.ox                 # the anchor tap
        if not (0 <= au < self.kh and 0 <= av < self.kw):
            raise ValueError(f"an identity start needs a window that holds the pixel itself; origin "
                             f"({self.window.oy}, {self.window.ox}) of a {self.kh}x{self.kw} window does not")
        factors = [(self.kh, au), (self.kw, av)] if self.separable else [(self.kh * self.kw, au * self.kw + av)]
        weight = centre_weight ** (1 / max(sum(taps > 1 for taps, _ in factors), 1))  # per factor
        parts = []
        for taps, centre in factors:
            part = torch.zeros(taps)
            if taps == 1:                                        # a 1-tap factor is always 1
                part.fill_(0.0 if self.softmax else 1.0)
            elif self.softmax:                                   # softmax(part)[centre] = weight
                part[centre] = math.log(weight * (taps - 1) / (1 - weight))
            else:
                part.fill_((1 - weight) / (taps - 1))
                part[centre] = weight
            parts.append(part)
        return torch.cat(parts + [torch.zeros(self.bias_channels)])

    def forward(self, x: Tensor, theta: Tensor) -> Tensor:
        """``x (B, C, H, W)`` filtered with ``theta (B, theta_channels, H, W)``'s filters and bias.

        Softmax logits go to the op as they are (a fused backend normalises them itself); the
        result equals filtering with :meth:`split`'s filters."""
        if theta.ndim != 4 or theta.shape[0] != x.shape[0] or theta.shape[2:] != x.shape[2:]:
            raise ValueError(f"theta must be (B, {self.theta_channels}, H, W) matching x "
                             f"{tuple(x.shape)}; got {tuple(theta.shape)}")
        if self.separable:
            return self.filter_with(x, *self.split(theta))
        filters, bias = self._split(theta)
        return dynamic_local_filter(x, filters, (self.kh, self.kw), softmax=self.softmax,
                                    bias=bias, origin=self.window[2:], backend=self.backend)

    def filter_with(self, x: Tensor, filters: Tensor, bias: Optional[Tensor]) -> Tensor:
        """Apply filters and bias from :meth:`split` to ``x (B, C, H, W)`` (for a caller that
        needs the filters too, so that they are normalised once)."""
        return dynamic_local_filter(x, filters, (self.kh, self.kw), bias=bias, origin=self.window[2:],
                                    backend=self.backend)

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", origin=({self.window.oy}, {self.window.ox}), "
                f"separable={self.separable}, backend={self.backend!r}")


class DynamicConv(_FilterLayout):
    """Per-sample dynamic convolution layer: ``theta (B, theta_channels[, 1, 1])`` -> one filter
    set per sample, applied to ``x (B, C, H, W)`` at every pixel.

    A dynamic bias, if any, is one value per sample and channel, added to ``x`` before filtering.
    Output: ``(B, C, H, W)`` (shared) or ``(B, n_filters, H, W)`` (general).
    """

    def split(self, theta: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        """``theta (B, theta_channels[, 1, 1])`` -> filters ``(B, kh, kw)`` or
        ``(B, n, C, kh, kw)``, normalised when ``softmax`` is set, and bias ``(B, 1 or C, 1, 1)``."""
        if theta.ndim == 4 and theta.shape[2:] == (1, 1):
            theta = theta.flatten(1)
        if theta.ndim != 2:
            raise ValueError(f"theta must be (B, {self.theta_channels}) or "
                             f"(B, {self.theta_channels}, 1, 1), got {tuple(theta.shape)}")
        filters, bias = self._split(theta)
        if self.softmax:
            filters = filters.softmax(-1)
        filters = filters.unflatten(-1, (self.kh, self.kw))       # (B, kh, kw) or (B, n, C, kh, kw)
        return filters, None if bias is None else bias[:, :, None, None]

    def forward(self, x: Tensor, theta: Tensor) -> Tensor:
        filters, bias = self.split(theta)
        return dynamic_conv(x if bias is None else x + bias, filters)
