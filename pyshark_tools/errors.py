"""Exceptions, each carrying one line that the CLI prints as is, and the ReadLog of per-file problems."""
from __future__ import annotations

from dataclasses import dataclass, field


class SmtpdiagError(Exception):
    """Base class; str(e) is a one-line message for the user."""

    exit_code = 1


class TsharkNotFound(SmtpdiagError):
    """No usable tshark executable."""


class TsharkError(SmtpdiagError):
    """tshark failed; the message quotes its last stderr line."""


class PluginNotLoaded(SmtpdiagError):
    """tshark ran without the smtpdiag Lua plugin (e.g. 4.4+ as root)."""


class PluginMismatch(PluginNotLoaded):
    """tshark ran another smtpdiag plugin than the one the toolkit meant to load."""


class InputError(SmtpdiagError):
    """A capture path that cannot be read as a capture."""


class DamagedInput(InputError):
    """A capture refused before tshark reads it (a gzip bomb): recorded as damaged."""


@dataclass
class ReadLog:
    """What happened while reading captures: the files read, and per-file problems kept beside the rows
    that could be read. Pass one as `read_log=` to collect damaged/failed files instead of raising."""

    files: list[str] = field(default_factory=list)
    damaged: dict[str, str] = field(default_factory=dict)   # file -> tshark's one line
    failed: dict[str, str] = field(default_factory=dict)    # file -> why no row could be read
    skipped: dict[str, str] = field(default_factory=dict)   # path -> why it was not read (a FIFO in a folder)

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.failed

    def add(self, other: "ReadLog") -> None:
        """Take in another log's files and problems (a file already listed keeps its place)."""
        self.damaged.update(other.damaged)
        self.failed.update(other.failed)
        self.skipped.update(other.skipped)
        self.files += [f for f in other.files if f not in self.files]
