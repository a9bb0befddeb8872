"""Which export a file is, from its first bytes: the plugin's summary file, or tshark -T ek/json/fields.

Exports are what a sensor with tshark and the plugin (no Python) writes: one record per
conversation, the same cells the toolkit's own run reads. Each may be gzip-compressed.

    summary  the plugin's summary file: "#smtpdiag<TAB>VERSION<TAB>BUILD", a header of field
             names, one tab-separated line per conversation (an older file starts at the header)
    fields   tshark -T fields -E header=y: a header of field names, one line per summary frame
    ek       tshark -T ek: JSON lines, an {"index": ...} line before each {"layers": ...} record
    json     tshark -T json: one JSON array of {"_source": {"layers": ...}} records
    empty    an empty file named like an export (.tsv, .json, ...): tshark found no conversation
"""
from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Optional

from ..errors import InputError

# Plugin versions whose exports this toolkit reads (major.minor): the cells' meaning is theirs.
READS_PLUGIN_VERSIONS = ("0.1",)
SUMMARY_MAGIC = b"#smtpdiag\t"
HEAD_BYTES = 1 << 16
KINDS = ("summary", "fields", "ek", "json", "empty")
EXPORT_SUFFIXES = (".tsv", ".json", ".ndjson", ".jsonl", ".ek")
_VERSION_IN_JSON = re.compile(rb'"(?:smtpdiag_)?smtpdiag[._]version"\s*:\s*\[?\s*"([^"]*)"')


@dataclass(frozen=True)
class ExportKind:
    """What an export file is: its format, whether it is gzip-compressed, the plugin version it names."""

    kind: str
    gzipped: bool = False
    version: Optional[str] = None


def is_export_name(name: str) -> bool:
    """Does the file name end like an export (.tsv, .json, .ndjson, ..., optionally .gz)?"""
    n = name.lower()
    return n.removesuffix(".gz").endswith(EXPORT_SUFFIXES)


def open_export(path: str | Path, gzipped: bool) -> IO[bytes]:
    """The export's bytes, decompressed."""
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def check_version(path: str | Path, version: Optional[str]) -> None:
    """A plugin version this toolkit does not read is a one-line error (None: an older file, read as 0.1)."""
    if version is None or ".".join(version.split(".")[:2]) in READS_PLUGIN_VERSIONS:
        return
    raise InputError(f"{path}: export written by smtpdiag plugin {version!r}; this toolkit reads exports of plugin "
                     f"{', '.join(v + '.x' for v in READS_PLUGIN_VERSIONS)} (use a toolkit of that plugin's release)")


def _head(path: str | Path, gzipped: bool) -> bytes:
    with open_export(path, gzipped) as fh:
        try:
            return fh.read(HEAD_BYTES)
        except (EOFError, OSError, zlib.error):
            return b""


def _table_version(head: bytes) -> Optional[str]:
    """The version a header-and-rows export names: its #smtpdiag line, else a smtpdiag.version cell."""
    lines = head.split(b"\n")
    if lines[0].startswith(SUMMARY_MAGIC):
        return lines[0].decode("utf-8", "replace").split("\t")[1].strip()
    header = lines[0].decode("utf-8", "replace").split("\t")
    if "smtpdiag.version" in header and len(lines) > 1 and lines[1].strip():
        cells = lines[1].decode("utf-8", "replace").split("\t")
        k = header.index("smtpdiag.version")
        return cells[k].split("\x1f")[0] if k < len(cells) and cells[k] else None
    return None


def sniff_export(path: str | Path, head: Optional[bytes] = None, gzipped: bool = False) -> Optional[ExportKind]:
    """The export `path` is (checked: a plugin version this toolkit reads), or None when it is no export."""
    head = head if head is not None else _head(path, gzipped)
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    first = text.split(b"\n", 1)[0]
    kind: Optional[str] = None
    if first.startswith(SUMMARY_MAGIC):
        kind = "summary"
    elif b"\t" in first or first.startswith(b"smtpdiag."):
        names = first.decode("utf-8", "replace").rstrip("\r").split("\t")
        if "smtpdiag.proto" in names and "smtpdiag.first_frame" in names:
            kind = "summary" if "smtpdiag.session_end" in names and "smtpdiag.internal_error" in names else "fields"
    elif text.startswith(b"{") and (b'"index"' in first or b'"layers"' in first):
        kind = "ek"
    elif text.startswith(b"["):
        rest = text[1:].lstrip()
        if rest.startswith(b"]") or (rest.startswith(b"{") and b'"_source"' in rest):
            kind = "json"
    if kind is None:
        return None
    if kind in ("summary", "fields"):
        versions = [_table_version(text)]
    else:
        versions = [m.decode("utf-8", "replace") for m in _VERSION_IN_JSON.findall(text)] or [None]
    for v in versions:
        check_version(path, v)
    return ExportKind(kind, gzipped, versions[0])
