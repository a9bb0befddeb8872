"""The summary file: how the plugin hands the toolkit one line per conversation.

With the preference `smtpdiag.summary_file:PATH` (the plugin's batch mode) the plugin writes PATH
as tab-separated text: a line naming the plugin that wrote it ("#smtpdiag", its version and
build, tab-separated), a header line of field names, then one line per conversation as it
ends, and at the end of the capture one for each still open. A field with several values
(one per mail transaction) holds them separated by "\\x1f".
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

SUMMARY_FILE_PREF = "smtpdiag.summary_file"


def summary_file_option(path: str) -> list[str]:
    """The tshark options that make the plugin write its summary file to `path`."""
    return ["-o", f"{SUMMARY_FILE_PREF}:{path}"]


class SummaryFileWriter(NamedTuple):
    """The plugin that wrote a summary file, from its first line."""
    version: str
    build: str


def read_summary_writer(path: str) -> Optional[SummaryFileWriter]:
    """Who wrote the summary file at `path`, or None when its first line does not say."""
    with open(path, "rb") as fh:
        first = fh.readline().rstrip(b"\n").decode("utf-8", "replace").split("\t")
    if len(first) >= 3 and first[0] == "#smtpdiag":
        return SummaryFileWriter(first[1], first[2])
    return None


def read_summary_file(path: str, fields: Sequence[str]) -> list[list[str]]:
    """One row per conversation, cells in `fields` order ('' where the plugin wrote no such field)."""
    rows: list[list[str]] = []
    with open(path, "rb") as fh:
        line = fh.readline()
        while line.startswith(b"#"):
            line = fh.readline()
        header = line.rstrip(b"\n").decode().split("\t")
        index = {name: i for i, name in enumerate(header)}
        pick = [index.get(f) for f in fields]
        for raw in fh:
            cells = raw.rstrip(b"\n").decode("utf-8", "replace").split("\t")
            rows.append([cells[i] if i is not None and i < len(cells) else "" for i in pick])
    return rows
