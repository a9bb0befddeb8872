"""Exceptions: each carries one line that the CLI prints as is."""
from __future__ import annotations


class SmtpdiagError(Exception):
    """Base class; str(e) is a one-line message for the user."""

    exit_code = 1


class TsharkNotFound(SmtpdiagError):
    """No usable tshark executable."""


class TsharkError(SmtpdiagError):
    """tshark failed; the message quotes its last stderr line."""


class PluginNotLoaded(SmtpdiagError):
    """tshark ran without the smtpdiag Lua plugin (e.g. 4.4+ as root)."""


class InputError(SmtpdiagError):
    """A capture path that cannot be read as a capture."""
