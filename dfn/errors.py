"""Errors that name a user's mistake and its fix; the CLI prints them as one line."""


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key and the fix."""


class CheckpointMismatch(ValueError):
    """A checkpoint written by a different model than the one configured."""
