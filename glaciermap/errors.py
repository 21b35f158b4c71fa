"""Errors that users see: each names the file or config key at fault."""


class GlacierMapError(Exception):
    """Base class of errors caused by bad input (not by bugs)."""


class ConfigError(GlacierMapError):
    """The configuration is invalid; the message names the key."""


class InputDataError(GlacierMapError):
    """A raster or vector input cannot be used; the message names the file."""


class OutputError(GlacierMapError):
    """An output cannot be written (disk full, no permission, occupied); names the path."""


class Interrupted(Exception):
    """A job stopped on request (SIGTERM) after saving its state; ``exit_code`` is 128 + signal."""

    exit_code: int = 143
