"""Conversations cut by file boundaries (ring buffers, editcap -c, parts of one capture): find them,
have them dissected again from their own frames only, put the rows back.

Nothing is diagnosed here. A conversation is cut when its endpoints have rows in more than one
file (a session going on in the next file, SYN retransmissions whose continuation starts with a
SYN, late packets; also across files where it sent nothing), or when it was still open at the end
of a file that is not the last one (its verdict may depend on time passing after that: unanswered
SYNs and DNS queries are decided by timeouts). For each cut conversation, `find_spans()` gives
the frame range it occupies in the set (whole rows of the same endpoints that overlap are taken
in); the runner copies those conversations' frames, and nothing else, into one small capture
(extract.py) — with zero-length frames at the times the plugin's timeouts fall due, so that the
plugin's clock moves as in the whole set — runs tshark+plugin on it, and `apply()` swaps the
cut rows for its rows. A TCP conversation's key is its two ip:port endpoints; a DNS lookup's is
its client and server address (its retransmissions may change ports).

Provenance of a row from a stitched run: `pcap_file` is the file its first frame is in,
`pcap_files` all files from there to the last one any of its frame numbers is in. `stream` is
the one of `pcap_file` read on its own; all frame numbers (`first_frame`, `last_frame`,
transaction frames, frames named in `detail`) count frames of the concatenation `mergecap -a`
of `pcap_files`, in that order (so they coincide with `pcap_file`'s own numbers).
"""
from __future__ import annotations

import functools
import ipaddress
import re
import socket
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from ..tshark.stream import SEP
from .cache import Entry

Row = list[str]
Link = tuple[int, int]          # (file index, row index)
Pos = tuple[int, int]           # (file index, frame number in that file)
Key = tuple                     # ("t", endpoint, endpoint) | ("d", ip, ip)
TCP_PROTOS = ("smtp", "pop", "imap")
MAX_SPAN = 32                   # files a conversation may stay silent across and still be stitched
END = 1 << 62                   # "up to the end of the file"
FRAME_FIELDS = ("smtpdiag.first_frame", "smtpdiag.last_frame", "smtpdiag.txn.first_frame",
                "smtpdiag.txn.last_frame")
_QUOTED = re.compile(r"('[^']*')")
_FRAMES = re.compile(r"\b(frames? )(\d+)(?:-(\d+))?")


@dataclass
class Span:
    """One cut conversation: its key, the frames it occupies (start, end inclusive), the rows it replaces."""

    key: Key
    start: Pos
    end: Pos
    rows: list[Link] = field(default_factory=list)


def _ip(s: str) -> Optional[bytes]:
    """The address's bytes (None: not an address)."""
    try:
        return socket.inet_pton(socket.AF_INET6 if ":" in s else socket.AF_INET, s)
    except (OSError, ValueError):
        return _ip_slow(s)


@functools.lru_cache(maxsize=4096)
def _ip_slow(s: str) -> Optional[bytes]:
    try:
        return ipaddress.ip_address(s).packed      # what inet_pton refuses: a scope id (fe80::1%eth0)
    except ValueError:
        return None


class Cols:
    """Where the fields the stitching reads are in a row."""

    def __init__(self, fields: Sequence[str]):
        ix = {f: i for i, f in enumerate(fields)}
        self.n = len(fields)
        self.proto, self.anom, self.detail = ix["smtpdiag.proto"], ix["smtpdiag.anomalies"], ix["smtpdiag.detail"]
        self.cause, self.stream = ix["smtpdiag.failure_cause"], ix["smtpdiag.stream"]
        self.cli, self.cport = ix["smtpdiag.client"], ix["smtpdiag.client_port"]
        self.srv, self.sport = ix["smtpdiag.server"], ix["smtpdiag.server_port"]
        self.first, self.last = ix["smtpdiag.first_frame"], ix["smtpdiag.last_frame"]
        self.frames = [ix[f] for f in FRAME_FIELDS if f in ix]
        self.start = ix["smtpdiag.start"]

    @staticmethod
    def one(cell: str) -> str:
        return cell.split(SEP, 1)[0]

    def frame(self, r: Row, which: int) -> int:
        v = self.one(r[which])
        return int(v) if v.isdigit() else 0

    def time(self, r: Row) -> float:
        try:
            return float(self.one(r[self.start]))
        except ValueError:
            return 0.0

    def key(self, r: Row) -> Optional[Key]:
        """The conversation's key: TCP endpoints, or for a DNS lookup its two addresses."""
        proto = self.one(r[self.proto])
        a, b = _ip(self.one(r[self.cli])), _ip(self.one(r[self.srv]))
        if a is None or b is None:
            return None
        if proto == "dns":
            return ("d", *sorted((a, b)))
        if proto in TCP_PROTOS:
            pa, pb = self.one(r[self.cport]), self.one(r[self.sport])
            if not (pa.isdigit() and pb.isdigit()):
                return None
            return ("t", *sorted(((a, int(pa)), (b, int(pb)))))
        return None

    def open_at_end(self, r: Row) -> bool:
        """Still open when its file ended (a timeout after that may change its verdict)."""
        if self.one(r[self.proto]) == "dns":
            return self.one(r[self.cause]) == "dns_no_response" and "the capture ended" in r[self.detail]
        return "open_at_capture_end" in r[self.anom].split(SEP)


def find_spans(per_file: Sequence[list[Row]], fields: Sequence[str], joined: Optional[Sequence[bool]] = None,
               max_span: int = MAX_SPAN) -> list[Span]:
    """The cut conversations of a set of files in reading order, each with the rows it replaces;
    `joined[f]`: file f+1 continues file f (default: all do)."""
    c = Cols(fields)
    last_file = len(per_file) - 1
    joined = list(joined) if joined is not None else [True] * last_file
    run_start = [0] * (last_file + 1)                 # the first file of the continuous run each file is in
    for f in range(1, last_file + 1):
        run_start[f] = run_start[f - 1] if joined[f - 1] else f
    by_key: dict[Key, list[tuple[Pos, Pos, Link]]] = {}
    for f, rows in enumerate(per_file):
        for j, r in enumerate(rows):
            k = c.key(r)
            if k is not None:
                by_key.setdefault(k, []).append(((f, c.frame(r, c.first)), (f, c.frame(r, c.last) or END), (f, j)))
    spans: list[Span] = []
    for k, occ in by_key.items():
        occ.sort()
        # intervals to re-dissect: rows linked to the next file of the key, or open at their file's end
        want: list[tuple[Pos, Pos]] = []
        for i, (s, e, (f, j)) in enumerate(occ):
            nxt = occ[i + 1] if i + 1 < len(occ) else None
            r = per_file[f][j]
            if nxt and f < nxt[2][0] <= f + max_span and run_start[nxt[2][0]] <= f \
                    and c.time(per_file[nxt[2][0]][nxt[2][1]]) >= c.time(r):
                want.append((s, nxt[1]))
            elif f < last_file and joined[f] and c.open_at_end(r):
                want.append((s, (f, END)))
        if not want:
            continue
        for s, e in _merge(want):
            span = Span(k, s, e)
            grew = True
            while grew:                       # take in every row of the key that overlaps
                grew = False
                for rs, re_, link in occ:
                    if link in span.rows or re_ < span.start or rs > span.end:
                        continue
                    span.rows.append(link)
                    if rs < span.start or re_ > span.end:
                        span.start, span.end = min(span.start, rs), max(span.end, re_)
                        grew = True
            spans.append(span)
    spans.sort(key=lambda s: s.start)
    return spans


def _merge(iv: list[tuple[Pos, Pos]]) -> list[tuple[Pos, Pos]]:
    out: list[tuple[Pos, Pos]] = []
    for s, e in sorted(iv):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def map_frames(row: Row, c: Cols, fn: Callable[[int], int]) -> Row:
    """The row with every frame number (frame fields, frames named in detail) passed through fn."""
    out = list(row)
    for i in c.frames:
        out[i] = SEP.join(str(fn(int(v))) if v.isdigit() else v for v in row[i].split(SEP))
    parts = _QUOTED.split(row[c.detail])      # quoted capture text is left alone
    for i in range(0, len(parts), 2):
        parts[i] = _FRAMES.sub(lambda m: m.group(1) + str(fn(int(m.group(2))))
                               + (f"-{fn(int(m.group(3)))}" if m.group(3) else ""), parts[i])
    out[c.detail] = "".join(parts)
    return out


def frames_named(row: Row, c: Cols) -> list[int]:
    """Every frame number the row names."""
    seen: list[int] = []
    map_frames(row, c, lambda n: seen.append(n) or n)
    return seen


def apply(spans: Sequence[Span], result: Optional[Entry], per_file: Sequence[list[Row]], names: Sequence[str],
          fields: Sequence[str]) -> tuple[list[Row], list[str], list[list[str]], list[int]]:
    """Rows, pcap_file, pcap_files and file index per row, the cut rows replaced by the stitched run's.

    `result.rows` carry two more cells: the index of the file their first frame is in and of the
    last file any of their frames is in (frame numbers already counted from the first one). With
    no result (the stitched run failed), the cut rows stay as they are.
    """
    c = Cols(fields)
    dropped: set[Link] = set()
    added: dict[int, list[tuple[Row, int]]] = {}
    if result is not None and (result.returncode == 0 or result.damaged):
        got = [(r[:c.n], int(r[c.n]), int(r[c.n + 1])) for r in result.rows]
        for span in spans:
            mine = [(r, hf, lf) for r, hf, lf in got if c.key(r) == span.key
                    and span.start <= (hf, c.frame(r, c.first)) <= span.end]
            if not mine:
                continue                                # keep the cut rows
            dropped.update(span.rows)
            streams = {(f, c.frame(per_file[f][j], c.first)): per_file[f][j][c.stream] for f, j in span.rows}
            any_stream = {f: per_file[f][j][c.stream] for f, j in reversed(span.rows)}
            for r, hf, lf in mine:
                r = list(r)
                r[c.stream] = streams.get((hf, c.frame(r, c.first)), any_stream.get(hf, ""))
                added.setdefault(hf, []).append((r, lf))
    rows: list[Row] = []
    out_names: list[str] = []
    files: list[list[str]] = []
    sources: list[int] = []
    all_names = list(names)
    for f, frows in enumerate(per_file):
        mine = [(r, f) for i, r in enumerate(frows) if (f, i) not in dropped]
        mine += added.get(f, [])
        mine.sort(key=lambda x: (c.frame(x[0], c.first), c.one(x[0][c.proto])))
        rows.extend([r for r, _ in mine])
        out_names.extend([names[f]] * len(mine))
        files.extend([all_names[f: lf + 1] for _, lf in mine])      # a new list per row
        sources.extend([f] * len(mine))
    return rows, out_names, files, sources
