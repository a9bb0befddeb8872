"""Planning the inputs: files, directories and globs → checked captures, dumpcap ring-buffer sets in index order.

An input is a capture or an export a sensor wrote (exports/): which one, its first bytes say.
"""
from __future__ import annotations

import glob
import gzip
import os
import re
import stat
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

from ..errors import DamagedInput, InputError, ReadLog
from ..exports.formats import HEAD_BYTES, ExportKind, is_export_name, sniff_export
from .options import current_options
from .streams import StreamSource, is_fileobj, is_stream_input, open_source

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".ntar", ".pcap.gz", ".pcapng.gz", ".gz", ".zst", ".lz4")
RING = re.compile(r"^(?P<prefix>.+)_(?P<index>\d{5,})_(?P<stamp>\d{14})(?P<ext>\.[A-Za-z0-9.]+)$")
_DECODE = re.compile(r"^(\d{1,5})=(smtp|pop|imap)$", re.I)
_MAGIC = {"d4c3b2a1": "pcap", "a1b2c3d4": "pcap", "4d3cb2a1": "pcap", "a1b23c4d": "pcap", "0a0d0d0a": "pcapng"}


@dataclass(frozen=True)
class Capture:
    """One capture file and the tshark options it is read with; or an export (`export` says which), read as is."""

    path: Path
    kind: str = "pcap"
    decode_args: tuple[str, ...] = field(default=())
    export: Optional[ExportKind] = None
    source: Optional[StreamSource] = field(default=None, compare=False, repr=False)   # a pipe input

    @property
    def name(self) -> str:
        """The file name as text ('stdin' for `-`): bytes that are not UTF-8 shown as backslash escapes (\\xff)."""
        return "stdin" if str(self.path) == "-" else shown(self.path.name)

    @property
    def is_export(self) -> bool:
        return self.export is not None


def shown(name: str) -> str:
    """A file name or path as valid text: undecodable bytes (surrogate escapes) become \\xNN."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def decode_as_args(specs: Sequence[str]) -> tuple[str, ...]:
    """['2526=smtp', '1110=pop'] → tshark -d options; a bad spec is a one-line error."""
    out: list[str] = []
    for spec in specs:
        m = _DECODE.match(spec.strip())
        if not m or not (0 < int(m.group(1)) < 65536):
            raise InputError(f"--decode-as {spec!r}: expected PORT=PROTO with PROTO one of smtp, pop, imap")
        out += ["-d", f"tcp.port=={int(m.group(1))},{m.group(2).lower()}"]
    return tuple(out)


def tls_keylog_args(path: Optional[str]) -> tuple[str, ...]:
    """A TLS key log (NSS format, as SSLKEYLOGFILE writes it) → the tshark option that decrypts with it;
    a missing or unreadable file is a one-line error."""
    if not path:
        return ()
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--tls-keylog {path}: no such file")
    try:
        with open(p, "rb") as fh:
            fh.read(1)
    except OSError as e:
        raise InputError(f"--tls-keylog {path}: cannot read ({e.strerror})") from None
    return ("-o", f"tls.keylog_file:{p.resolve()}")


def is_capture_name(name: str) -> bool:
    """Does the file name end like a capture (pcap, pcapng, compressed) or an export (.tsv, .json, ...)?"""
    return name.lower().endswith(CAPTURE_SUFFIXES) or is_export_name(name)


def _open_regular(path: str) -> int:
    """A descriptor of `path` if it is a regular file: opened without blocking (a FIFO would wait for a writer)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise InputError(f"{path}: is a directory" if stat.S_ISDIR(mode) else
                         f"{path}: not a regular file (a FIFO, socket or device), not read")
    os.set_blocking(fd, True)
    return fd


def check_decompressed_size(path: str, limit: int) -> None:
    """Raise DamagedInput when the gzip file at `path` expands to more than `limit` bytes (a gzip bomb):
    tshark would decompress it without bound. Reads at most `limit` bytes of output."""
    got = 0
    try:
        with gzip.open(path, "rb") as fh:
            while got <= limit:
                chunk = fh.read(1 << 20)
                if not chunk:
                    return
                got += len(chunk)
    except (OSError, EOFError):
        return                  # damage after the header: tshark reads what it can and says so
    raise DamagedInput(f"{path}: decompresses to more than {limit:,} bytes (a gzip bomb?); not read "
                       "(--max-decompressed / $SMTPDIAG_MAX_DECOMPRESSED raises the limit)")


def sniff_capture(path: str, max_decompressed: Optional[int] = None) -> str:
    """'pcap', 'pcapng', 'gzip', ... from the first bytes; raise a one-line error for a non-capture."""
    kind, export = sniff_input(path, max_decompressed)
    if export is not None:
        raise InputError(f"{path}: an smtpdiag export (tshark {export.kind}), not a capture")
    return kind


def _gunzip_head(path: Path) -> bytes:
    """The first bytes of a gzip file's content (as much as there is, if it is cut short)."""
    with open(path, "rb") as fh:
        raw = fh.read(HEAD_BYTES)
    return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, HEAD_BYTES)


def sniff_input(path: str, max_decompressed: Optional[int] = None) -> tuple[str, Optional[ExportKind]]:
    """('pcap' | 'pcapng' | 'gzip' | ..., None) for a capture, ('export', what it is) for an export
    (exports/formats.py), from the first bytes; raise a one-line error for anything else: a non-capture,
    a non-regular file (never blocks on a FIFO), a gzip capture expanding beyond `max_decompressed`
    (default: the run options')."""
    p = Path(path)
    fd = _open_regular(path)
    try:
        with open(fd, "rb", closefd=True) as fh:
            head = fh.read(HEAD_BYTES)
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    if len(head) == 0:
        if is_export_name(p.name):
            return "export", ExportKind("empty")   # tshark -T ek/json/fields of a capture with no conversation
        raise InputError(f"{path}: empty file")
    magic = head[:4].hex()
    if magic in _MAGIC:
        return _MAGIC[magic], None
    if head[:2] == b"\x1f\x8b":
        p = Path(path)
        try:
            inner = _gunzip_head(p)
        except (zlib.error, OSError) as e:
            raise InputError(f"{path}: damaged gzip file ({e})") from None
        if len(inner) < 4:
            raise InputError(f"{path}: damaged gzip file (its content is cut short)")
        if inner[:4].hex() in _MAGIC:
            check_decompressed_size(str(p), max_decompressed or current_options().max_decompressed)
            return "gzip", None
        export = sniff_export(p, inner, gzipped=True)
        if export is not None:
            return "export", export
        raise InputError(f"{path}: gzip file that holds no pcap/pcapng capture or smtpdiag export")
    if magic == "28b52ffd":
        return "zstd", None
    if magic == "04224d18":
        return "lz4", None
    export = sniff_export(p, head)
    if export is not None:
        return "export", export
    raise InputError(f"{path}: not a capture file (expected pcap or pcapng, optionally gzip-compressed) "
                     "nor an smtpdiag export (`smtpdiag export-fields`)")


def sniff_head(head: bytes, label: str) -> str:
    """A pipe's capture format from its first bytes (gzip: from the first bytes of its content)."""
    if len(head) == 0:
        raise InputError(f"{label}: empty file")
    magic = head[:4].hex()
    if magic in _MAGIC:
        return _MAGIC[magic]
    if head[:2] == b"\x1f\x8b":
        try:
            inner = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 4)
        except zlib.error:
            raise InputError(f"{label}: damaged gzip file") from None
        if inner[:4].hex() in _MAGIC:
            return "gzip"
        raise InputError(f"{label}: gzip stream that holds no pcap/pcapng capture")
    if magic == "28b52ffd":
        return "zstd"
    if magic == "04224d18":
        return "lz4"
    raise InputError(f"{label}: not a capture file (expected pcap or pcapng, optionally gzip-compressed)")


def _stream_capture(item, dargs: tuple[str, ...]) -> Capture:
    """A pipe input (or binary file object): read once, its format told from the bytes kept for tshark."""
    src = open_source(item)
    label = "standard input" if item == "-" else src.label
    return Capture(Path(item if isinstance(item, str) else src.label), sniff_head(src.head, label), dargs,
                   source=src)


def _candidates(item: str, skipped: Optional[dict[str, str]] = None) -> list[str]:
    """The files an input names; in a folder, only regular files (a FIFO there would block: `skipped`)."""
    if os.path.isdir(item):
        found = []
        for root, _dirs, files in os.walk(item):
            for f in files:
                path = os.path.join(root, f)
                if not is_capture_name(f):
                    continue
                try:
                    regular = stat.S_ISREG(os.stat(path).st_mode)
                except OSError:
                    regular = True          # sniff_capture says what is wrong with it
                if regular:
                    found.append(path)
                elif skipped is not None:
                    skipped[path] = f"{path}: not a regular file (a FIFO, socket or device), skipped"
        return sorted(found)
    if any(ch in item for ch in "*?[") and not os.path.exists(item):
        matches = sorted(glob.glob(item, recursive=True))
        if not matches:
            raise InputError(f"{item}: no file matches")
        return [m for m in matches if os.path.isfile(m)]
    return [item]


def expand_inputs(captures: Iterable[str] | str, decode_as: Sequence[str] = (),
                  read_log: Optional[ReadLog] = None, tls_keylog: Optional[str] = None) -> list[Capture]:
    """Expand and check the inputs. With a `read_log`, unreadable files are recorded there and skipped.
    `tls_keylog`: a TLS key log every capture is read with (mail inside TLS is diagnosed as in clear)."""
    items = [captures] if isinstance(captures, (str, os.PathLike)) or is_fileobj(captures) else list(captures)
    if not items:
        raise InputError("no capture given")
    dargs = decode_as_args(decode_as) + tls_keylog_args(tls_keylog)
    out: list[Capture] = []
    seen: set[str] = set()
    for item in items:
        item = item if is_fileobj(item) else os.fspath(item)
        if is_fileobj(item) or is_stream_input(item):
            try:
                out.append(_stream_capture(item, dargs))
            except InputError as e:
                if read_log is None:
                    raise
                read_log.failed[item if isinstance(item, str) else "stream"] = str(e)
            continue
        try:
            paths = _candidates(item, read_log.skipped if read_log is not None else None)
            if not paths and os.path.isdir(item):
                raise InputError(f"{item}: directory holds no capture files")
        except InputError as e:
            if read_log is None:
                raise
            read_log.failed[item] = str(e)
            continue
        for p in paths:
            key = os.path.realpath(p)
            if key in seen:
                continue
            seen.add(key)
            try:
                kind, export = sniff_input(p)
            except DamagedInput as e:
                if read_log is None:
                    raise
                read_log.damaged[p] = str(e).removeprefix(f"{p}: ")
                continue
            except InputError as e:
                if os.path.isdir(item) and not p.lower().endswith(CAPTURE_SUFFIXES):
                    continue   # a folder's other text files (.tsv, .json): not an export, not claimed to be one
                if read_log is None:
                    raise
                read_log.failed[p] = str(e)
                continue
            out.append(Capture(Path(p), kind, dargs, export))
    if not out and read_log is not None and read_log.failed:
        first = next(iter(read_log.failed.values()))
        raise InputError(first if len(read_log.failed) == 1 else f"no readable capture ({len(read_log.failed)} failed; first: {first})")
    return out


def ring_key(path: Path) -> Optional[tuple[str, int, str]]:
    """(set, index, timestamp) of a dumpcap ring-buffer file `name_00001_YYYYMMDDhhmmss.pcapng`."""
    m = RING.match(path.name)
    if not m:
        return None
    return (str(path.parent / m["prefix"]) + "|" + m["ext"], int(m["index"]), m["stamp"])


def order_captures(caps: Sequence[Capture]) -> list[Capture]:
    """Input order, except that each ring-buffer set comes whole, in index order, where its first member was."""
    sets: dict[str, list[Capture]] = {}
    for c in caps:
        k = ring_key(c.path)
        if k:
            sets.setdefault(k[0], []).append(c)
    out: list[Capture] = []
    for c in caps:
        k = ring_key(c.path)
        if not k:
            out.append(c)
        elif k[0] in sets:
            out += sorted(sets.pop(k[0]), key=lambda m: ring_key(m.path)[1:])  # type: ignore[index]
    return out
