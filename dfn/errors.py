"""The one error type for a user's mistake: a config value, an input file, a checkpoint.

Models, DataModules, ``pack`` and the CLI raise :class:`ConfigError` (or a subclass) with a
message that names the key or file and the fix; ``python -m dfn`` prints it as one line
``dfn: error: ...`` and exits with status 2. Ops and layers raise plain ``ValueError`` /
``TypeError`` for bad tensors: those are programming errors and keep their traceback.
"""
from __future__ import annotations

from typing import Sequence


class ConfigError(ValueError):
    """A configuration value, input file or checkpoint that cannot work; the message names it
    and the fix."""


class CheckpointMismatch(ConfigError):
    """A checkpoint written by a different model than the one configured, or not a checkpoint."""


def require_positive(prefix: str, **values: int | Sequence[int]) -> None:
    """:class:`ConfigError` for the first value (or list with an entry) below 1, named
    ``prefix + name``: ``require_positive("data.", batch_size=0)`` -> "data.batch_size must be >= 1, got 0"."""
    for name, value in values.items():
        entries = list(value) if isinstance(value, (list, tuple)) else [value]
        if any(entry < 1 for entry in entries):
            raise ConfigError(f"{prefix}{name} must be >= 1, got {value}")
