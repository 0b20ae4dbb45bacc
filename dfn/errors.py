"""The one error type for a user's mistake: a config value, an input file, a checkpoint.

Models, DataModules, ``pack`` and the CLI raise :class:`ConfigError` (or a subclass) with a
message that names the key or file and the fix; ``python -m dfn`` prints it as one line
``dfn: error: ...`` and exits with status 2. Ops and layers raise plain ``ValueError`` /
``TypeError`` for bad tensors: those are programming errors and keep their traceback.
"""


class ConfigError(ValueError):
    """A configuration value, input file or checkpoint that cannot work; the message names it
    and the fix."""


class CheckpointMismatch(ConfigError):
    """A checkpoint written by a different model than the one configured, or not a checkpoint."""
