"""What the injected parts promise each other, as ``Protocol``s checked when the parts meet.

The config injects a net into a predictor, a predictor into a model and a DataModule beside them
(docs/design.md, "Contracts"); :func:`check` names, at start-up, a member a part lacks and what
supplies it, instead of an ``AttributeError`` at the first batch or validation.
"""
from __future__ import annotations

import inspect
from typing import Any, Optional, Protocol

from torch import Tensor
from torch.utils.data import Dataset

from dfn.errors import ConfigError


class FilterGenerator(Protocol):
    """A :class:`~dfn.predictors.DynamicFilterPredictor`'s net: ``forward(x (B, in_channels, H,
    W), hidden) -> (theta (B, out_channels, H, W), hidden)``, ``hidden`` ``None`` when feed-forward."""
    in_channels: int
    out_channels: int

    def forward(self, x: Tensor, hidden: Optional[Any]) -> tuple[Tensor, Optional[Any]]: ...


class StartableGenerator(FilterGenerator, Protocol):
    """A generator whose output can start at a given ``theta`` (the ``identity`` and ``uniform``
    starts): ``start_output(bias (out_channels,), gain)``."""

    def start_output(self, bias: Tensor, gain: float) -> None: ...


class VideoPredictor(Protocol):
    """A :class:`~dfn.models.VideoPredictionModel`'s predictor: ``forward(observed (B, T_in, C, H,
    W), future, return_filters) -> (predictions (B, future, C, H, W), filters or None)``;
    ``filter_window`` is ``None`` for a predictor without filters (a baseline)."""
    filter_window: Any

    def forward(self, observed: Tensor, future: int, return_filters: bool = False) -> tuple[Tensor, Any]: ...


class HeldOutSequences(Protocol):
    """The DataModule surface :class:`~dfn.callbacks.VideoPictures` draws from, after ``setup``."""
    val_set: Dataset
    test_sets: list[Dataset]


class SteerableHeldOut(Protocol):
    """The DataModule surface :class:`~dfn.callbacks.SteerableFigure` draws from, after ``setup``:
    the held-out batch and the analytic filter's ``filter_size`` and ``sigma``."""
    val_batch: Any
    filter_size: int
    sigma: float


def members(protocol: type) -> dict[str, Any]:
    """The attributes (name -> annotation) and methods (name -> function) ``protocol`` requires,
    its bases' included."""
    found: dict[str, Any] = {}
    for base in reversed(protocol.__mro__):
        if base is object or base is Protocol or not getattr(base, "_is_protocol", False):
            continue
        found.update(getattr(base, "__annotations__", {}))
        found.update({name: value for name, value in vars(base).items()
                      if inspect.isfunction(value) and not name.startswith("_")})
    return found


def _has(part: object, name: str) -> bool:
    """Without calling it (a property may need ``setup`` first)."""
    return name in getattr(part, "__dict__", {}) or any(name in vars(k) for k in type(part).__mro__)


def check(part: object, protocol: type, role: str, fix: str) -> None:
    """Raise ``ConfigError`` naming what ``part`` (the ``role``, e.g. "the predictor's net")
    lacks of ``protocol``, or a method taking fewer arguments than it must, and the ``fix``."""
    required = members(protocol)
    missing = [name for name in required if not _has(part, name)]
    short = [name for name, want in required.items() if inspect.isfunction(want) and name not in missing
             and not _takes(getattr(part, name), len(inspect.signature(want).parameters) - 1)]
    if missing or short:
        what = ", ".join([*(f"no {name}" for name in missing),
                          *(f"{name}{_arguments(getattr(part, name))} where {name}{_arguments(required[name])} "
                            "is needed" for name in short)])
        raise ConfigError(f"{role} {type(part).__name__} is not a {protocol.__name__} ({what}): {fix}")


def _arguments(function: Any) -> str:
    """``(x, hidden)``: the argument names, without ``self``."""
    return "(" + ", ".join(p for p in inspect.signature(function).parameters if p != "self") + ")"


def _takes(method: Any, n: int) -> bool:
    """Whether ``method`` accepts ``n`` positional arguments."""
    try:
        inspect.signature(method).bind(*range(n))
    except TypeError:
        return False
    return True
