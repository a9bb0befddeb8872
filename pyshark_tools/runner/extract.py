"""Copying the frames of a few conversations out of a set of captures into one small pcapng.

The copy holds, in their order, the frames of the cut conversations (stitch.Span: key and frame
range) and zero-length filler frames at the first frame, in the whole set, at or after each time
one of the plugin's timeouts falls due for them (DNS timeout, idle SYN attempts, ended sessions
kept for trailing packets) and at the set's last frame: the plugin's clock moves as it would in
the whole set, for a fraction of the frames. `frame_map` gives each copied frame's (file, frame).
"""
from __future__ import annotations

import gzip
import heapq
import os
import shutil
from dataclasses import dataclass
from typing import Optional, Sequence

from .pcapio import Iface, PcapngWriter, Reader, conversation
from .stitch import END, Key, Pos

SECOND = 1_000_000_000
# (seconds, due at >= rather than >, an expiry that queues the conversation for writing)
TIMEOUTS = ((10, False, True), (300, False, True), (60, True, False))


@dataclass(frozen=True)
class Extract:
    """What to copy: files in reading order, and (key, start, end) of each cut conversation in them."""

    files: tuple[str, ...]
    spans: tuple[tuple[Key, Pos, Pos], ...]
    timeouts: tuple[tuple[int, bool, bool], ...] = TIMEOUTS


def _keys(linktype: int, pkt: bytes) -> tuple[list[Key], Optional[tuple], bool]:
    """The conversation keys a packet can belong to, its fragment id, whether its ports are known."""
    conv = conversation(linktype, pkt)
    if conv is None:
        return [], None, False
    proto, src, dst, frag = conv
    if src[1] < 0:
        return [], frag, False
    keys: list[Key] = [("t" if proto == 6 else "u", *sorted((src, dst)))]
    if src[1] == 53 or dst[1] == 53:
        keys.append(("d", *sorted((src[0], dst[0]))))
    return keys, frag, True


def _plain(path: str, tmp: str) -> str:
    """The path of an uncompressed copy (gzip is decompressed once into tmp)."""
    with open(path, "rb") as fh:
        if fh.read(2) != b"\x1f\x8b":
            return path
    out = os.path.join(tmp, f"in{len(os.listdir(tmp))}.cap")
    with gzip.open(path, "rb") as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    return out


def write_extract(x: Extract, out: str, tmp: str) -> tuple[list[Pos], list[int]]:
    """Write the copy to `out`; return its frames' (file, frame) and the frame count of each file walked."""
    by_key: dict[Key, list[tuple[Pos, Pos]]] = {}
    for k, s, e in x.spans:
        by_key.setdefault(k, []).append((s, e))
    last_span_file = max((e[0] for _, _, e in x.spans), default=-1)
    fmap: list[Pos] = []
    counts: list[int] = []
    due: list[tuple[int, int, bool]] = []            # (time ns, 0 at >= / 1 at >, cascades)
    with open(out, "wb") as fh:
        w = PcapngWriter(fh)
        secrets_seen: set[tuple[int, bytes]] = set()
        for f, path in enumerate(x.files):
            if f > last_span_file and not due:
                break
            active = [(k, s, e) for k, s, e in x.spans if s[0] <= f <= e[0]]
            lo = min((s[1] if s[0] == f else 1 for _, s, _ in active), default=END)
            hi = max((e[1] if e[0] == f else END for _, _, e in active), default=0)
            keys = {k for k, _, _ in active}
            chosen: list[tuple[int, object, bool]] = []
            frags: set[tuple] = set()
            loose: dict[tuple, list] = {}
            n = 0
            with Reader(_plain(path, tmp)) as rd:
                last = None
                for rec in rd.records():
                    n = rec.frame
                    sel = False
                    if lo <= n <= hi:
                        lt = rd.ifaces[rec.iface].linktype if rec.iface < len(rd.ifaces) else -1
                        ks, frag, ported = _keys(lt, rd.packet(rec))
                        for k in ks:
                            if k in keys and any(s <= (f, n) <= e for s, e in by_key[k]):
                                sel = True
                                break
                        if frag is not None:
                            if sel:
                                frags.add(frag)
                            elif not ported:
                                loose.setdefault(frag, []).append(rec)
                    tick = False
                    while due and (rec.ts_ns >= due[0][0] if due[0][1] == 0 else rec.ts_ns > due[0][0]):
                        _, _, cascade = heapq.heappop(due)
                        tick = True
                        if cascade:
                            heapq.heappush(due, (rec.ts_ns + 60 * SECOND, 0, False))
                    if sel:
                        for secs, at_or_after, cascade in x.timeouts:
                            heapq.heappush(due, (rec.ts_ns + secs * SECOND, 0 if at_or_after else 1, cascade))
                    if sel or tick:
                        chosen.append((n, rec, sel))
                    last = rec
                    if f >= last_span_file and n > hi and not due:
                        break
                else:
                    if f == len(x.files) - 1 and last is not None and (not chosen or chosen[-1][0] != last.frame):
                        chosen.append((last.frame, last, False))       # the set's end, as the plugin sees it
                for fr, recs in loose.items():
                    if fr in frags:
                        chosen += [(r.frame, r, True) for r in recs]
                chosen.sort(key=lambda c: c[0])
                for kind, data in rd.secrets:
                    if (kind, data) not in secrets_seen:
                        secrets_seen.add((kind, data))
                        w.secrets(kind, data)
                for fr, rec, sel in chosen:
                    if sel:
                        i = rd.ifaces[rec.iface] if rec.iface < len(rd.ifaces) else Iface(1)
                        oid = w.iface((f, rec.iface), Iface(i.linktype, i.snaplen, 9, 0, i.fcslen))
                        w.packet(oid, rec.ts_ns, rd.packet(rec), rec.origlen)
                    else:
                        w.filler(rec.ts_ns)
                    fmap.append((f, fr))
            counts.append(n)
    return fmap, counts
