"""Sessions cut by file boundaries (ring buffers, editcap -c): find them, put them back together.

Nothing is diagnosed here. A session that is open at the end of file N (`open_at_capture_end`,
or the file's last activity) and continues in a later file without a SYN (`midstream`, same
client and server ip:port; usually file N+1, later if it sent nothing for a whole file) is a
chain of partial rows. For every file where such chains
start, the runner (run.py) re-runs tshark+plugin on the concatenation `mergecap -a` of
that file and the following ones the chains reach (the last one cut after the chain's last
frame, which changes no frame number), and `apply()` swaps the partial rows for the merged
run's row of each session.

Provenance of a stitched row: `pcap_file` is the file the session starts in, `pcap_files`
all files it spans. `stream` and `first_frame` are valid in `pcap_file` on its own; all frame
numbers (`first_frame`, `last_frame`, transaction frames, frames named in `detail`) count
frames of the concatenation `mergecap -a` of `pcap_files`, in that order (frames of
pcap_file come first, so the first ones coincide).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from .cache import Entry
from ..tshark.stream import SEP

Row = list[str]
Link = tuple[int, int]          # (file index, row index)
TCP_PROTOS = ("smtp", "pop", "imap")
MAX_SPAN = 32                   # files a session may stay silent across and still be stitched


@dataclass
class Run:
    """One re-run: files head..last concatenated (last one cut after frame `trim`), the chains it joins."""

    head: int
    last: int
    trim: Optional[int]
    chains: list[list[Link]] = field(default_factory=list)


class _Cols:
    def __init__(self, fields: Sequence[str]):
        ix = {f: i for i, f in enumerate(fields)}
        self.proto, self.anom = ix["smtpdiag.proto"], ix["smtpdiag.anomalies"]
        self.ends = [(ix["smtpdiag.client"], ix["smtpdiag.client_port"]), (ix["smtpdiag.server"], ix["smtpdiag.server_port"])]
        self.first, self.last = ix["smtpdiag.first_frame"], ix["smtpdiag.last_frame"]
        self.start = ix["smtpdiag.start"]

    @staticmethod
    def one(cell: str) -> str:
        return cell.split(SEP, 1)[0]

    def pair(self, r: Row) -> frozenset:
        return frozenset((self.one(r[a]), self.one(r[b])) for a, b in self.ends)

    def frame(self, r: Row, which: int) -> int:
        v = self.one(r[which])
        return int(v) if v.isdigit() else 0

    def anomalies(self, r: Row) -> set[str]:
        return {a for a in r[self.anom].split(SEP) if a}

    def time(self, r: Row) -> float:
        try:
            return float(self.one(r[self.start]))
        except ValueError:
            return 0.0

    def tcp(self, r: Row) -> bool:
        return self.one(r[self.proto]) in TCP_PROTOS


def _open_end(rows: list[Row], c: _Cols) -> list[int]:
    """Rows that may go on in a later file: open at the file's end, or the file's last activity."""
    last_activity = max((c.frame(r, c.last) for r in rows), default=0)
    return [i for i, r in enumerate(rows) if c.tcp(r) and
            ("open_at_capture_end" in c.anomalies(r) or c.frame(r, c.last) == last_activity)]


def find_runs(per_file: Sequence[list[Row]], fields: Sequence[str], max_span: int = MAX_SPAN) -> list[Run]:
    """Chains of partial rows across files, grouped by the file they start in.

    A midstream row continues the most recent open row with the same endpoints in an earlier
    file (not necessarily the previous one: an idle session may leave no packet in a whole file),
    at most `max_span` files back; any other row with those endpoints ends the earlier one.
    """
    c = _Cols(fields)
    nxt: dict[Link, Link] = {}
    heads: dict[frozenset, Link] = {}
    for f, rows in enumerate(per_file):
        for j in sorted(range(len(rows)), key=lambda j: c.frame(rows[j], c.first)):
            r = rows[j]
            if not c.tcp(r):
                continue
            h = heads.pop(c.pair(r), None)
            if h and "midstream" in c.anomalies(r) and f - h[0] <= max_span \
                    and c.time(per_file[h[0]][h[1]]) <= c.time(r):
                nxt[h] = (f, j)
        for j in sorted(_open_end(rows, c), key=lambda j: c.frame(rows[j], c.first)):
            heads[c.pair(rows[j])] = (f, j)
    tails = set(nxt.values())
    runs: dict[int, Run] = {}
    for h in sorted(nxt):
        if h in tails:
            continue
        chain: list[Link] = [h]
        while chain[-1] in nxt:
            chain.append(nxt[chain[-1]])
        runs.setdefault(h[0], Run(h[0], h[0], None)).chains.append(chain)
    for run in runs.values():
        run.last = max(ch[-1][0] for ch in run.chains)
        ends = [c.frame(per_file[run.last][ch[-1][1]], c.last) for ch in run.chains if ch[-1][0] == run.last]
        run.trim = max(ends) if ends and min(ends) > 0 else None
    return [runs[f] for f in sorted(runs)]


def apply(runs: Sequence[Run], results: Sequence[Optional[Entry]], per_file: Sequence[list[Row]],
          names: Sequence[str], fields: Sequence[str]) -> tuple[list[Row], list[str], list[list[str]], list[int]]:
    """Rows, pcap_file, pcap_files and file index per row, the chains replaced by the merged runs' rows."""
    c = _Cols(fields)
    replaced: dict[Link, tuple[Row, list[str]]] = {}
    dropped: set[Link] = set()
    for run, res in zip(runs, results):
        if res is None or not res.rows or (res.returncode != 0 and not res.damaged):
            continue                                   # keep the partial rows
        for chain in run.chains:
            hf, hi = chain[0]
            head = per_file[hf][hi]
            same = [r for r in res.rows if c.pair(r) == c.pair(head) and c.frame(r, c.first) >= c.frame(head, c.first)]
            m = [r for r in same if c.frame(r, c.first) == c.frame(head, c.first)]
            if len(m) != 1 or len(same) != 1 or c.frame(m[0], c.last) <= c.frame(head, c.last):
                continue                               # the plugin did not join them (all): keep the parts
            replaced[chain[0]] = (m[0], [names[f] for f in range(hf, chain[-1][0] + 1)])
            dropped.update(chain[1:])
    rows: list[Row] = []
    out_names: list[str] = []
    files: list[list[str]] = []
    sources: list[int] = []
    for f, frows in enumerate(per_file):
        for i, r in enumerate(frows):
            if (f, i) in dropped:
                continue
            row, span = replaced.get((f, i), (r, [names[f]]))
            rows.append(row)
            out_names.append(names[f])
            files.append(span)
            sources.append(f)
    return rows, out_names, files, sources
