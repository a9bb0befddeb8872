"""An export's rows: the cells the toolkit's own run reads (runner/jobs.read_conversations), from the file.

A record is a conversation's summary: the plugin puts it on the conversation's last frame
(smtpdiag.first_frame is only there), so an export of every frame still gives one row per
conversation. Rows come in the order the conversations began, like a capture's. A file cut
short keeps every complete record (`damaged` says where it stopped).
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from ..errors import InputError
from ..tshark.stream import SEP
from .formats import ExportKind, check_version

Row = list[str]
# What a capture's name ends with, before an export's own suffixes ('mail.pcapng.ek.json').
CAPTURE_EXTS = (".pcapng.gz", ".pcap.gz", ".pcapng", ".pcap", ".ntar", ".cap")


@dataclass
class ExportRows:
    """The rows of one export, the capture they describe (`pcap_file`) and, if it was cut short, how."""

    rows: list[Row]
    capture: str
    damaged: Optional[str] = None


class _CutShort(Exception):
    """The export ends inside a record."""


def capture_named_by(path: str | Path) -> str:
    """The capture an export's name says it came from ('mail.pcapng.ek.json' → 'mail.pcapng'), else its own name."""
    name = Path(path).name
    low = name.lower()
    best = -1
    for suffix in CAPTURE_EXTS:
        k = low.find(suffix + ".")
        if k > 0 and k + len(suffix) > best:
            best = k + len(suffix)
    return name[:best] if best > 0 else name


def _text(v: Any) -> str:
    if v is True:
        return "1"
    if v is False:
        return "0"
    return "" if v is None else str(v)


def _values(tree: dict, field: str) -> Optional[list[str]]:
    """A field's values in one record's tree (tshark -T json names it `smtpdiag.x`, -T ek `smtpdiag_smtpdiag_x`
    in the protocol's tree or `smtpdiag_x` with -e)."""
    flat = field.replace(".", "_")
    for key in (field, "smtpdiag_" + flat, flat):
        if key in tree:
            v = tree[key]
            return [_text(x) for x in v] if isinstance(v, list) else [_text(v)]
    return None


def _trees(layers: Any) -> list[dict]:
    """The plugin's trees in one record's layers (several when a frame ended several conversations)."""
    if not isinstance(layers, dict):
        return []
    own = layers.get("smtpdiag")
    if isinstance(own, dict):
        return [own]
    if isinstance(own, list):
        return [t for t in own if isinstance(t, dict)]
    return [layers]   # -e fields: the fields sit in layers themselves


def _record_rows(path: str | Path, layers: Any, fields: Sequence[str]) -> list[Row]:
    rows = []
    for tree in _trees(layers):
        if _values(tree, "smtpdiag.first_frame") is None:
            continue   # a frame that carries no conversation summary
        version = _values(tree, "smtpdiag.version")
        check_version(path, version[0] if version else None)
        row = {f: SEP.join(_values(tree, f) or []) for f in fields}
        # In the tree the plugin keeps the smuggling flag on the frames with the sequence, not on the summary
        # frame; its anomaly code on the summary frame is the same finding.
        if "smtpdiag.smuggling_suspect" in row and not row["smtpdiag.smuggling_suspect"] \
                and "smuggling_suspect" in (_values(tree, "smtpdiag.anomalies") or []):
            row["smtpdiag.smuggling_suspect"] = "1"
        rows.append([row[f] for f in fields])
    return rows


def _with_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    """tshark -T json repeats a key for a field that occurs several times: keep every value."""
    out: dict = {}
    multi: set[str] = set()
    for k, v in pairs:
        if k in multi:
            out[k].append(v)
        elif k in out:
            out[k] = [out[k], v]
            multi.add(k)
        else:
            out[k] = v
    return out


def _lines(path: str | Path, gzipped: bool) -> Iterator[bytes]:
    """The export's lines (each ending in a newline, except a last one cut short). A gzip stream that ends
    early gives every complete line it holds, then raises _CutShort (gzip.open would lose the last chunk)."""
    with open(path, "rb") as fh:
        if not gzipped:
            yield from fh
            return
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        rest = b""
        while True:
            raw = (d.unused_data if d.eof else b"") or fh.read(1 << 16)
            if not raw:
                break
            if d.eof:                         # a next member of a concatenated gzip file
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                rest += d.decompress(raw)
            except zlib.error:
                raise _CutShort("damaged compressed data") from None
            *complete, rest = rest.split(b"\n")
            for line in complete:
                yield line + b"\n"
        if not d.eof:
            raise _CutShort("compressed data ends early")
        if rest:
            yield rest


def _ek_rows(path: str | Path, fh: Iterator[bytes], fields: Sequence[str]) -> Iterator[Row]:
    for raw in fh:
        if not raw.strip():
            continue
        if not raw.endswith(b"\n"):
            raise _CutShort("its last line is cut short")
        try:
            obj = json.loads(raw)
        except ValueError:
            raise _CutShort("a line is not JSON") from None
        if isinstance(obj, dict) and "layers" in obj:
            yield from _record_rows(path, obj["layers"], fields)


def _json_rows(path: str | Path, fh: Iterator[bytes], fields: Sequence[str]) -> Iterator[Row]:
    try:
        text = b"".join(fh).decode("utf-8", "replace")
    except _CutShort:
        raise _CutShort("compressed data ends early") from None
    dec = json.JSONDecoder(object_pairs_hook=_with_duplicates)
    ws = " \t\r\n"
    i = len(text) - len(text.lstrip(ws + "\ufeff"))
    if not text.startswith("[", i):
        raise _CutShort("no JSON array")
    i += 1
    while True:
        while i < len(text) and text[i] in ws:
            i += 1
        if i >= len(text):
            raise _CutShort("the JSON array is not closed")
        if text[i] == "]":
            return
        try:
            obj, i = dec.raw_decode(text, i)
        except ValueError:
            raise _CutShort("a record is cut short") from None
        source = obj.get("_source", {}) if isinstance(obj, dict) else {}
        yield from _record_rows(path, source.get("layers") if isinstance(source, dict) else None, fields)
        while i < len(text) and text[i] in ws:
            i += 1
        if i < len(text) and text[i] == ",":
            i += 1


def _table_rows(path: str | Path, fh: Iterator[bytes], fields: Sequence[str]) -> Iterator[Row]:
    line = next(fh, b"")
    while line.startswith(b"#"):
        line = next(fh, b"")
    header = line.rstrip(b"\r\n").decode("utf-8", "replace").split("\t")
    missing = [f for f in fields if f not in header]
    if missing:
        raise InputError(f"{path}: export lacks the field{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} "
                         f"(`smtpdiag export-fields` prints the command that writes them all)")
    pick = [header.index(f) for f in fields]
    version = header.index("smtpdiag.version") if "smtpdiag.version" in header else None
    smuggling = fields.index("smtpdiag.smuggling_suspect") if "smtpdiag.smuggling_suspect" in fields else None
    anomalies = fields.index("smtpdiag.anomalies") if "smtpdiag.anomalies" in fields else 0
    for raw in fh:
        if not raw.endswith(b"\n"):
            raise _CutShort("its last line is cut short")
        cells = raw.rstrip(b"\r\n").decode("utf-8", "replace").split("\t")
        if version is not None and version < len(cells) and cells[version]:
            check_version(path, cells[version].split(SEP)[0])
        row = [cells[i] if i < len(cells) else "" for i in pick]
        if smuggling is not None and not row[smuggling] and "smuggling_suspect" in row[anomalies].split(SEP):
            row[smuggling] = "1"      # -T fields of the tree: the flag is on other frames (see _record_rows)
        yield row


def _no_rows(path: str | Path, fh: Iterator[bytes], fields: Sequence[str]) -> Iterator[Row]:
    return iter(())


READERS = {"summary": _table_rows, "fields": _table_rows, "ek": _ek_rows, "json": _json_rows, "empty": _no_rows}


def read_export(path: str | Path, kind: ExportKind, fields: Sequence[str]) -> ExportRows:
    """The rows of the export at `path` (cells in `fields` order), in the order the conversations began.

    An export cut short (a partial last record, a truncated gzip stream) keeps every complete
    row and says so in `damaged`; a plugin version this toolkit does not read raises InputError.
    """
    rows: list[Row] = []
    damaged: Optional[str] = None
    try:
        for row in READERS[kind.kind](path, _lines(path, kind.gzipped), fields):
            rows.append(row)
    except _CutShort as e:
        damaged = f"export cut short ({e}): {len(rows)} complete rows kept"
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    first, proto = fields.index("smtpdiag.first_frame"), fields.index("smtpdiag.proto")
    rows.sort(key=lambda r: (int(r[first].split(SEP)[0]) if r[first].split(SEP)[0].isdigit() else 0, r[proto]))
    return ExportRows(rows, capture_named_by(path), damaged)

