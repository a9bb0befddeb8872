"""Capture inputs: files, directories and globs → an ordered list of readable captures."""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional, Sequence

from .errors import InputError
from .tshark import sniff_capture

if TYPE_CHECKING:
    from .sessions import RunReport

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".ntar", ".pcap.gz", ".pcapng.gz", ".gz", ".zst", ".lz4")
_DECODE = re.compile(r"^(\d{1,5})=(smtp|pop|imap)$", re.I)


@dataclass(frozen=True)
class Capture:
    """One capture file and the tshark options it is read with."""

    path: Path
    kind: str = "pcap"
    decode_args: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.path.name


def decode_as_args(specs: Sequence[str]) -> tuple[str, ...]:
    """['2526=smtp', '1110=pop'] → tshark -d options; a bad spec is a one-line error."""
    out: list[str] = []
    for spec in specs:
        m = _DECODE.match(spec.strip())
        if not m or not (0 < int(m.group(1)) < 65536):
            raise InputError(f"--decode-as {spec!r}: expected PORT=PROTO with PROTO one of smtp, pop, imap")
        out += ["-d", f"tcp.port=={int(m.group(1))},{m.group(2).lower()}"]
    return tuple(out)


def _is_capture_name(name: str) -> bool:
    return name.lower().endswith(CAPTURE_SUFFIXES)


def _candidates(item: str) -> list[str]:
    if os.path.isdir(item):
        found = []
        for root, _dirs, files in os.walk(item):
            found += [os.path.join(root, f) for f in files if _is_capture_name(f)]
        return sorted(found)
    if any(ch in item for ch in "*?[") and not os.path.exists(item):
        matches = sorted(glob.glob(item, recursive=True))
        if not matches:
            raise InputError(f"{item}: no file matches")
        return [m for m in matches if os.path.isfile(m)]
    return [item]


def expand_inputs(captures: Iterable[str] | str, decode_as: Sequence[str] = (),
                  report: Optional["RunReport"] = None) -> list[Capture]:
    """Expand and check the inputs. With a `report`, unreadable files are recorded there and skipped."""
    items = [captures] if isinstance(captures, (str, os.PathLike)) else list(captures)
    if not items:
        raise InputError("no capture given")
    dargs = decode_as_args(decode_as)
    out: list[Capture] = []
    seen: set[str] = set()
    for item in items:
        item = os.fspath(item)
        try:
            paths = _candidates(item)
            if not paths and os.path.isdir(item):
                raise InputError(f"{item}: directory holds no capture files")
        except InputError as e:
            if report is None:
                raise
            report.failed[item] = str(e)
            continue
        for p in paths:
            key = os.path.realpath(p)
            if key in seen:
                continue
            seen.add(key)
            try:
                kind = sniff_capture(p)
            except InputError as e:
                if report is None:
                    raise
                report.failed[p] = str(e)
                continue
            out.append(Capture(Path(p), kind, dargs))
    if not out and report is not None and report.failed:
        first = next(iter(report.failed.values()))
        raise InputError(first if len(report.failed) == 1 else f"no readable capture ({len(report.failed)} failed; first: {first})")
    return out
