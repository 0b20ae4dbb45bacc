"""Dynamic-filter predictor: recurrent video prediction (paper 4.2, Figure 3) and stereo (4.3).

At each step the filter-generating network reads the ``context_frames`` most recent frames
(stacked as channels; earlier steps repeat the first frame) and its recurrent state, and emits
per-pixel filters (and a dynamic bias) that are applied to the most recent frame to predict the
next one. After the observed frames, each prediction is fed back as the next input. Stereo is the
case of one observed frame (the left view), one predicted (the right) and a feed-forward net.

Binocular stereo (beyond the paper) passes the right view as ``guide``: the generator then also
sees the frame it predicts, stacked after its context, while the filters still apply to the
left view, so they still hold the disparity and cannot copy the right view. With
``matching_costs`` it also sees how well each tap's offset matches the guide
(:func:`dfn.layers.matching_costs`): a cost volume over the filters' own window. With
``cost_prior`` the filter logits are the net's output plus the cost volume's soft winner-take-all
(:class:`dfn.layers.CostPrior`), so the first filters already point at the best-matching offsets.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dfn.contracts import FilterGenerator, StartableGenerator, check
from dfn.errors import ConfigError, require_positive
from dfn.layers import CostPrior, DynamicLocalFilter, matching_costs
from dfn.ops import BACKENDS, KernelSize
from dfn.ops.geometry import Window


class DynamicFilterPredictor(nn.Module):
    """``forward(observed (B, T_in, C, H, W), future) -> (B, future, C, H, W)``.

    Args:
        net: filter generator (:class:`dfn.contracts.FilterGenerator`), ``net(x, hidden) ->
            (theta, hidden)`` with ``x (B, in_channels, H, W)`` (the context frames, then the
            guide and the matching costs where given) and ``theta (B, filter.theta_channels, H,
            W)``; a feed-forward net returns ``hidden = None``.
        kernel_size: filter size: ``k`` for k x k (9 Moving MNIST, 11 highway driving) or
            ``[kh, kw]`` (``[1, 13]``: the horizontal filters of stereo prediction).
        origin: where the window sits, ``[oy, ox]``, the offset tap ``(0, 0)`` reads (the op's
            convention, :mod:`dfn.ops.geometry`); ``None`` centres it (the paper). ``[0, 0]`` with
            ``kernel_size [1, K]`` reads offsets ``0 .. K-1``: rectified stereo, whose disparity
            has one sign, gets twice the reach of centred filters for the same taps.
        softmax: normalise filters over their taps (the paper does).
        bias_channels: 0, or 1 for the dynamic per-pixel bias (highway driving).
        context_frames: frames the generator sees at once (1 for Moving MNIST, 2 for highway).
        start: ``"paper"``: the net's own initialisation (He-uniform, zero biases), whose first
            filters are near-uniform blurs; ``"identity"``: the first predictions are nearly the
            last frame (copy-last; the left view for stereo): the net's last layer is scaled by
            ``start_gain`` and biased towards filters with ``start_centre_weight`` on the centre
            tap and a zero dynamic bias (the net needs a ``start_output(bias, gain)`` method);
            ``"uniform"``: the same with zero logits, so the first filters are uniform, or, with
            ``cost_prior``, the cost volume's soft winner-take-all.
        start_centre_weight: of the ``"identity"`` start; start_gain: of both.
        matching_costs: with a ``guide`` (binocular stereo), the generator also sees the
            ``kh*kw`` matching costs of the filtered frame against the guide, one per tap.
        cost_prior: with ``matching_costs``, > 0 adds ``-cost_prior * costs`` (each cost averaged
            over a 5x5 box; the scale is learned from this start) to the filter logits; 0: off.
        backend: the dynamic filtering op's implementation (:mod:`dfn.ops.backends`).
    """

    def __init__(self, net: nn.Module, kernel_size: KernelSize = 9, origin: Optional[list[int]] = None,
                 softmax: bool = True, bias_channels: int = 0, context_frames: int = 1, start: str = "paper",
                 start_centre_weight: float = 0.99, start_gain: float = 0.0, matching_costs: bool = False,
                 cost_prior: float = 0.0, backend: str = "auto") -> None:
        super().__init__()
        require_positive("predictor ", context_frames=context_frames)
        if start not in ("paper", "identity", "uniform"):
            raise ConfigError(f"predictor start must be 'paper', 'identity' or 'uniform', got {start!r}")
        check(net, StartableGenerator if start != "paper" else FilterGenerator, "the predictor's net",
              "use dfn.nets.EncoderDecoder, or give the net these members" + (
                  f" (or use start 'paper': start {start!r} sets the net's output)" if start != "paper" else ""))
        self.net, self.context_frames, self.matching_costs = net, context_frames, matching_costs
        if backend not in BACKENDS:
            raise ConfigError(f"predictor backend must be one of {list(BACKENDS)}, got {backend!r}")
        try:
            self.filter = DynamicLocalFilter(kernel_size, softmax=softmax, bias_channels=bias_channels,
                                             origin=origin, backend=backend)
        except ValueError as error:
            raise ConfigError(f"predictor: {error}") from None
        self.filter.check_generator(net, f"kernel_size {kernel_size} with bias_channels {bias_channels}",
                                    "pixel")
        self.cost_prior = self._cost_prior(cost_prior) if cost_prior else None
        if start != "paper":
            if not 0 < start_centre_weight < 1 or start_gain < 0:
                raise ConfigError(f"start_centre_weight must be in (0, 1) and start_gain >= 0, got "
                                  f"{start_centre_weight} and {start_gain}")
            try:
                output = (self.filter.identity_theta(start_centre_weight) if start == "identity"
                          else torch.zeros(self.filter.theta_channels))
            except ValueError as error:
                raise ConfigError(f"predictor start 'identity': {error}") from None
            net.start_output(output, start_gain)

    def _cost_prior(self, scale: float) -> CostPrior:
        if scale < 0:
            raise ConfigError(f"predictor cost_prior must be > 0 (0: off), got {scale}")
        if not self.matching_costs:
            raise ConfigError("cost_prior reads the matching costs: set matching_costs true "
                              "(binocular stereo)")
        if not self.filter.softmax or self.filter.separable:
            raise ConfigError("cost_prior adds to filter logits: it needs softmax true and full "
                              "(not separable) filters")
        return CostPrior(scale)

    @property
    def filter_window(self) -> Window:
        """The window (``kh, kw``, origin ``oy, ox``) of the filters that ``forward`` returns."""
        return self.filter.window

    def forward(self, observed: Tensor, future: int, return_filters: bool = False,
                guide: Optional[Tensor] = None) -> tuple[Tensor, Optional[Tensor]]:
        """Predictions ``(B, future, C, H, W)`` and, if asked, the filters that made them
        ``(B, future, kh*kw, H, W)``. ``guide (B, future, C, H, W)``: frames the generator also
        sees at each predicted step (binocular stereo: the right view), never filtered."""
        T_in, channels = observed.shape[1], observed.shape[2]
        costs = self.matching_costs and guide is not None
        seen = (self.context_frames + (guide is not None)) * channels + (self.filter.window.taps if costs else 0)
        expected = self.net.in_channels
        if seen != expected:
            what = f"{self.context_frames} context frame(s) of {channels} channel(s)" + (
                " and the guide frame" if guide is not None else "") + (
                f" and {self.filter.window.taps} matching costs" if costs else "")
            raise ConfigError(f"the filter generator takes {expected} input channels, but {what} give {seen}: "
                              f"set the net's in_channels to {seen} (or make the data grayscale)")
        if guide is not None and guide.shape[1] != future:
            raise ValueError(f"guide holds {guide.shape[1]} frames for {future} predicted steps")
        history = [observed[:, 0]] * (self.context_frames - 1)
        hidden, predictions, filters = None, [], []
        for t in range(T_in + future - 1):
            frame = observed[:, t] if t < T_in else predictions[-1]
            history = (history + [frame])[-self.context_frames:]
            if t < T_in - 1:                            # steps before only update the state
                hidden = self._advance(torch.cat(history, dim=1), hidden)
                continue
            seen_now = history + ([] if guide is None else [guide[:, t - T_in + 1]])
            if costs:
                seen_now.append(matching_costs(frame, guide[:, t - T_in + 1], self.filter.window))
            theta, hidden = self.net(torch.cat(seen_now, dim=1), hidden)
            if costs and self.cost_prior is not None:
                prior = self.cost_prior(seen_now[-1])                      # (B, taps, H, W)
                theta = theta + F.pad(prior, (0, 0, 0, 0, 0, self.filter.bias_channels))
            if return_filters:                          # normalise once, keep the filters
                step_filters, bias = self.filter.split(theta)
                predictions.append(self.filter.filter_with(frame, step_filters, bias))
                filters.append(step_filters)
            else:
                predictions.append(self.filter(frame, theta))
        return torch.stack(predictions, 1), (torch.stack(filters, 1) if return_filters else None)

    def _advance(self, x: Tensor, hidden: Optional[Tensor]) -> Optional[Tensor]:
        """The state after an observed frame whose filters are not used: the net's
        ``advance(x, hidden)`` where it has one (:class:`dfn.nets.EncoderDecoder` skips its
        decoder there), else the whole net."""
        advance = getattr(self.net, "advance", None)
        return advance(x, hidden) if advance is not None else self.net(x, hidden)[1]
