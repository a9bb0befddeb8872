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
from typing import Optional

from .pcapio import NEVER, Iface, PcapngWriter, Reader, conversation
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


def _addresses(keys: set[Key]) -> set[bytes]:
    """Source+destination address bytes, both ways, of the packets the keys can match: a packet
    whose IP header holds neither is skipped without parsing it."""
    out: set[bytes] = set()
    for k in keys:
        a, b = (k[1][0], k[2][0]) if k[0] != "d" else (k[1], k[2])
        out.update((a + b, b + a))
    return out


def _frame_ranges(spans: list[tuple[Key, Pos, Pos]], f: int) -> list[tuple[int, int]]:
    """The frame ranges of file f the spans cover, merged, in order."""
    out: list[tuple[int, int]] = []
    for a, b in sorted((s[1] if s[0] == f else 1, e[1] if e[0] == f else END) for _, s, e in spans):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
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
    push, pop = heapq.heappush, heapq.heappop
    with open(out, "wb") as fh:
        w = PcapngWriter(fh)
        secrets_seen: set[tuple[int, bytes]] = set()
        for f, path in enumerate(x.files):
            if f > last_span_file and not due:
                break
            active = [(k, s, e) for k, s, e in x.spans if s[0] <= f <= e[0]]
            ivs = _frame_ranges(active, f)
            lo, hi = (ivs[0][0], ivs[-1][1]) if ivs else (END, 0)
            j = 0                                        # the first range not ended before frame n
            keys = {k for k, _, _ in active}
            pairs4 = {a for a in _addresses(keys) if len(a) == 8}
            pairs6 = {a for a in _addresses(keys) if len(a) == 32}
            chosen: list[tuple[int, tuple, bool]] = []
            frags: set[tuple] = set()
            loose: dict[tuple, list] = {}
            n = 0
            with Reader(_plain(path, tmp)) as rd:
                d = rd.data
                last = None
                # Outside the spans' frames only the first frame due for a timeout, the first span
                # frame and the file's end matter: the frames between them are walked over.
                it = rd.scan(lo if lo != END and not due else 1)
                rec = next(it, None)
                ended = rec is None
                while rec is not None:
                    n, ts = rec[0], rec[1]
                    sel = False
                    while j < len(ivs) and ivs[j][1] < n:
                        j += 1
                    if j < len(ivs) and ivs[j][0] <= n:
                        i = rec[2]
                        lt = rd.ifaces[i].linktype if i < len(rd.ifaces) else -1
                        po = rec[3]
                        if lt == 1 and d[po + 12: po + 14] == b"\x08\x00":
                            maybe = d[po + 26: po + 34] in pairs4
                        elif lt == 1 and d[po + 12: po + 14] == b"\x86\xdd":
                            maybe = d[po + 22: po + 54] in pairs6
                        else:
                            maybe = True
                        if maybe:
                            ks, frag, ported = _keys(lt, d[po: po + rec[4]])
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
                    while due and (ts >= due[0][0] if due[0][1] == 0 else ts > due[0][0]):
                        if pop(due)[2]:
                            push(due, (ts + 60 * SECOND, 0, False))
                        tick = True
                    if sel:
                        for secs, at_or_after, cascade in x.timeouts:
                            push(due, (ts + secs * SECOND, 0 if at_or_after else 1, cascade))
                    if sel or tick:
                        chosen.append((n, rec, sel))
                    last = rec
                    after = f >= last_span_file and n >= hi
                    if after and n > hi and not due:
                        break
                    k = j if j < len(ivs) and ivs[j][1] > n else j + 1
                    upto = ivs[k][0] if k < len(ivs) else END    # the next range's first frame
                    try:
                        if upto <= n + 1 or (after and not due):
                            rec = next(it)
                        else:
                            rec = it.send((due[0][0], due[0][1] == 1, upto) if due else (NEVER, False, upto))
                    except StopIteration:
                        rec, ended = None, True
                if ended and f == len(x.files) - 1 and last is not None \
                        and (not chosen or chosen[-1][0] != last[0]):
                    chosen.append((last[0], last, False))           # the set's end, as the plugin sees it
                for fr, recs in loose.items():
                    if fr in frags:
                        chosen += [(r[0], r, True) for r in recs]
                chosen.sort(key=lambda c: c[0])
                for kind, data in rd.secrets:
                    if (kind, data) not in secrets_seen:
                        secrets_seen.add((kind, data))
                        w.secrets(kind, data)
                for fr, rec, sel in chosen:
                    if sel:
                        i = rd.ifaces[rec[2]] if rec[2] < len(rd.ifaces) else Iface(1)
                        oid = w.iface((f, rec[2]), Iface(i.linktype, i.snaplen, 9, 0, i.fcslen))
                        w.packet(oid, rec[1], d[rec[3]: rec[3] + rec[4]], rec[5])
                    else:
                        w.filler(rec[1])
                    fmap.append((f, fr))
            counts.append(n)
    return fmap, counts
