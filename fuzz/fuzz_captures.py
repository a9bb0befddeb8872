#!/usr/bin/env python3
"""Fuzz the smtpdiag Lua plugin and the smtpdiag CLI with mutated captures.

Each mutated capture is made from one seed capture (fixtures/captures/*.pcap and
../shared/corpus/zeek/*.pcap*) by one mutation, chosen from a fixed seed:

  editcap    `editcap -E <prob>`: random byte errors
  truncate   the file cut at a random offset
  snaplen    `editcap -s <snap>`: every packet cut to a snap length
  resegment  SMTP payloads split into several TCP segments (consistent seq numbers)
  shuffle    SMTP segments duplicated, reordered, dropped
  inject     random bytes, NULs, invalid UTF-8, C1/ANSI controls or a 64 KB line without
             newline inside a command line, a reply line or message data
  hostile    ANSI escapes, <script>, spreadsheet formulas, bidi overrides as the
             banner, HELO/EHLO name, MAIL FROM/RCPT TO address or reply text
  portmove   the server's port moved off the mail ports (the greeting heuristic's path)
  combo      inject/hostile/portmove followed by resegment/shuffle/inject/snaplen
  credential a client line replaced by a base64 credential (ending in spaces or not) split
             over several segments, or opening the capture (the conversation's earlier
             packets dropped: a capture that starts inside an AUTH exchange)
  oooflood   a segment cut into up to 3000 tiny segments sent last first, some dropped
  future     packets stamped far in the future (year 5138 and beyond) or before 1970

and checked:

  (a) tshark + plugin, one pass and two pass (-2 -Y tcp), -T fields: exit 0 (or, for a
      cut-short/damaged file, 2 on tshark 4.0, 3 or 14 on 4.2+), no "Lua Error" on stderr or
      in any expert info, no non-empty smtpdiag.internal_error, no crash/assertion; `-q -z expert` clean too;
  (b) `smtpdiag sessions --format csv|json|table` (and `transactions` for hostile
      inputs): exit 0/3/4, or 1 with exactly one `smtpdiag: error:` line, no traceback;
  (c) CSV cells formula-safe, JSON valid, terminal text free of ESC, C0 (but newline),
      DEL, C1 and bidi controls;
  (d) resegment only: the sessions' verdicts (cause, messages, data_terminated,
      terminator) are the unmutated seed's: the byte streams are the same;
  (e) credential only: the credential (any case) is in no plugin field (two pass) and no
      output of (b).

Failing inputs are kept in --out with a .txt that names the mutation and the checks.

Quick run (as in tests/e2e/test_fuzz.py):
  .venv/bin/python fuzz/fuzz_captures.py --seed 1 --count 50
Long run:
  .venv/bin/python fuzz/fuzz_captures.py --seed 7 --count 2000 --jobs 2
Strictest tshark (4.6 aborts on an escaped Lua error; as root it must run unprivileged):
  .venv/bin/python fuzz/fuzz_captures.py --seed 7 --count 200 \\
      --tshark .tshark-releases/4.6/bin/tshark --run-as nobody
"""
from __future__ import annotations

import argparse
import base64
import csv
import gzip
import hashlib
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "lua" / "smtpdiag.lua"
FIXTURES = ROOT / "fixtures" / "captures"
CORPUS = ROOT.parent / "shared" / "corpus" / "zeek"
MAIL_PORTS = {25, 465, 587, 2525, 110, 995, 143, 993}  # the servers' side when classifying segments
MSS = 1460
MOD32 = 1 << 32

MUTATIONS = ("editcap", "truncate", "snaplen", "resegment", "shuffle", "inject", "hostile", "portmove", "combo",
             "credential", "oooflood", "future")
HOSTILE: tuple[bytes, ...] = (
    b"\x1b[2J\x1b[31mevil", b"<script>alert(1)</script>", b"=cmd|' /C calc'!A0",
    b'=HYPERLINK("http://x","y")', b"+1+1", b"-2+3", b"@SUM(1+1)", b"\tTAB", b"\rCR",
    "\u202egpj.exe".encode(), "\u2066x\u2069".encode(), b"\xc2\x9b31m", b"\x9b31m", b"\x07\x08\x7f",
)
INVALID_UTF8: tuple[bytes, ...] = (b"\xff\xfe", b"\xc3\x28", b"\xa0\xa1", b"\xe2\x28\xa1", b"\xf0\x28\x8c\xbc",
                                   b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80", b"\x80")
_BAD_TERMINAL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
DAMAGED_EXITS = (2, 3, 14)
_DAMAGED = re.compile(r"cut short|damaged or corrupt|isn't a capture file|unknown file format")
_TSHARK_TROUBLE = re.compile(r"Lua Error|Lua: Error|[Aa]ssertion|\bERROR\b|\bCRITICAL\b|Segmentation fault|Aborted|core dumped")


# -- captures as packet lists ----------------------------------------------------------

def seed_captures() -> list[Path]:
    """The project's fixtures and the real-world corpus (read in place, never copied)."""
    out = sorted(FIXTURES.glob("*.pcap"))
    if CORPUS.is_dir():
        out += sorted(p for p in CORPUS.iterdir() if p.is_file() and ".pcap" in p.name)
    return out


def _scapy():
    import scapy.all as sa  # slow import: only where packets are rewritten

    sa.conf.verb = 0
    return sa


def load_packets(path: Path) -> tuple[list, Optional[int]]:
    """All packets (scapy) and the pcap link type (None for pcapng: taken from the packets)."""
    sa = _scapy()
    pkts = list(sa.rdpcap(str(path)))
    linktype = None
    try:
        with sa.PcapReader(str(path)) as r:
            linktype = getattr(r, "linktype", None)
    except Exception:
        pass
    return pkts, linktype


def dump_packets(pkts: list, linktype: Optional[int]) -> bytes:
    sa = _scapy()
    buf = io.BytesIO()
    w = sa.PcapWriter(buf, linktype=linktype, sync=True)
    for p in pkts:
        w.write(p)
    return buf.getvalue()


@dataclass
class Seg:
    """One TCP segment with payload: its packet index, direction and bytes."""

    idx: int
    key: tuple
    seq: int
    payload: bytes
    role: str = "?"      # "c" client, "s" server
    kind: str = "?"      # "command", "reply", "data"


def tcp_view(pkt) -> Optional[tuple[tuple, int, int, bytes]]:
    """(direction key, seq, ack, payload) of a complete, unfragmented TCP packet, else None."""
    sa = _scapy()
    if sa.TCP not in pkt:
        return None
    tcp = pkt[sa.TCP]
    l3 = pkt[sa.IP] if sa.IP in pkt else (pkt[sa.IPv6] if sa.IPv6 in pkt else None)
    if l3 is None or (sa.IP in pkt and (l3.flags.MF or l3.frag)):
        return None
    data = bytes(tcp.payload)
    pad = pkt.getlayer(sa.Padding)
    if pad is not None and pad.load and data.endswith(pad.load):
        data = data[: len(data) - len(pad.load)]
    if sa.IP in pkt and l3.len is not None and len(bytes(l3)) < l3.len:
        return None  # cut by the snap length: not rewritten
    return (l3.src, tcp.sport, l3.dst, tcp.dport), tcp.seq, tcp.ack, data


def segments(pkts: list) -> list[Seg]:
    """Payload segments of mail streams (all TCP streams when none is on a mail port), classified."""
    views = [(i, tcp_view(p)) for i, p in enumerate(pkts)]
    segs = [Seg(i, v[0], v[1], v[3]) for i, v in views if v and v[3]]
    mail = [s for s in segs if s.key[1] in MAIL_PORTS or s.key[3] in MAIL_PORTS]
    segs = mail or segs
    first: dict[tuple, bytes] = {}
    for s in segs:
        first.setdefault(s.key, s.payload)
    in_data: dict[tuple, bool] = {}
    for s in segs:
        sport, dport = s.key[1], s.key[3]
        server = (sport in MAIL_PORTS and dport not in MAIL_PORTS) or (
            not (dport in MAIL_PORTS and sport not in MAIL_PORTS) and re.match(rb"^(\d{3}[ -]|\+OK|\* OK)", first[s.key]) is not None)
        s.role = "s" if server else "c"
        if server:
            s.kind = "reply"
            continue
        s.kind = "data" if in_data.get(s.key) else "command"
        lines = s.payload.upper().split(b"\n")
        if s.kind == "command" and any(l.strip() == b"DATA" for l in lines):
            in_data[s.key] = True
        elif s.kind == "data" and (b"\r\n.\r\n" in s.payload or s.payload.startswith(b".\r\n")):
            in_data[s.key] = False
    return segs


def _rebuilt(pkt, payload: Optional[bytes] = None, seq: Optional[int] = None, ack: Optional[int] = None,
             flags: Optional[int] = None):
    """A copy of pkt with new TCP payload/seq/ack/flags; lengths and checksums recomputed."""
    sa = _scapy()
    q = pkt.copy()
    tcp = q[sa.TCP]
    if payload is not None:
        tcp.remove_payload()
        if payload:
            tcp.add_payload(sa.Raw(load=payload))
    if seq is not None:
        tcp.seq = seq % MOD32
    if ack is not None:
        tcp.ack = ack % MOD32
    if flags is not None:
        tcp.flags = flags
    if sa.IP in q:
        del q[sa.IP].len
        del q[sa.IP].chksum
    if sa.IPv6 in q:
        del q[sa.IPv6].plen
    del tcp.chksum
    q.time = pkt.time
    return q


def _seqdiff(a: int, b: int) -> int:
    d = (a - b) % MOD32
    return d - MOD32 if d >= 1 << 31 else d


def replace_segment(pkts: list, seg: Seg, chunks: Sequence[bytes]) -> list:
    """Replace seg's packet by one packet per chunk, shifting later seq numbers and the peer's acks."""
    sa = _scapy()
    new_len = sum(len(c) for c in chunks)
    delta = new_len - len(seg.payload)
    rev = (seg.key[2], seg.key[3], seg.key[0], seg.key[1])
    out: list = []
    for i, p in enumerate(pkts):
        if i == seg.idx:
            flags = int(p[sa.TCP].flags)
            pos = seg.seq
            for k, c in enumerate(chunks):
                last = k == len(chunks) - 1
                q = _rebuilt(p, c, seq=pos, flags=flags if last else flags & ~0x09)
                q.time = p.time + k * 1e-6
                out.append(q)
                pos += len(c)
            continue
        v = tcp_view(p) if delta else None
        if v and v[0] == seg.key and _seqdiff(v[1], seg.seq) > 0:
            p = _rebuilt(p, seq=v[1] + delta)
        elif v and v[0] == rev and p[sa.TCP].flags.A and _seqdiff(v[2], seg.seq) > 0:
            p = _rebuilt(p, ack=v[2] + delta)
        out.append(p)
    return out


def split_points(rng: random.Random, data: bytes, cuts: int) -> list[bytes]:
    """data cut at `cuts` random points, then every piece cut to at most MSS bytes."""
    points = sorted({rng.randint(1, len(data) - 1) for _ in range(cuts)}) if len(data) > 1 else []
    pieces, prev = [], 0
    for pt in points + [len(data)]:
        pieces.append(data[prev:pt])
        prev = pt
    return [piece[i:i + MSS] for piece in pieces for i in range(0, len(piece), MSS)] or [b""]


# -- mutations -------------------------------------------------------------------------

@dataclass
class Mutated:
    """A mutated capture and how it was made."""

    data: bytes
    suffix: str
    desc: str
    hostile: bool = False
    secret: Optional[bytes] = None  # a credential the outputs must never show


class NotApplicable(Exception):
    """The seed has nothing this mutation can change (e.g. no TCP payload)."""


def _frames(seg: Seg, n: int = 1) -> str:
    return f"frame {seg.idx + 1}" if n == 1 else f"frames {seg.idx + 1}-{seg.idx + n}"


def m_editcap(rng: random.Random, src: Path, work: Path) -> Mutated:
    prob = rng.choice([0.001, 0.005, 0.01, 0.02, 0.05])
    seed = rng.randint(1, 2**31 - 1)
    out = work / "editcap.out"
    subprocess.run(["editcap", "-E", str(prob), "--seed", str(seed), str(src), str(out)],
                   check=True, capture_output=True, timeout=60)
    data = out.read_bytes()
    out.unlink()
    return Mutated(data, ".pcapng" if data[:4] == b"\x0a\x0d\x0d\x0a" else ".pcap",
                   f"editcap -E {prob} --seed {seed}")


def m_truncate(rng: random.Random, src: Path, work: Path) -> Mutated:
    raw = src.read_bytes()
    suffix = ".pcapng" if raw[:4] == b"\x0a\x0d\x0d\x0a" else ".pcap"
    if raw[:2] == b"\x1f\x8b":
        if rng.random() < 0.3:
            cut = rng.randint(1, len(raw) - 1)
            return Mutated(raw[:cut], ".pcap.gz", f"gzip file truncated at byte {cut} of {len(raw)}")
        raw = gzip.decompress(raw)
    low = 0 if rng.random() < 0.1 else min(24, len(raw) - 1)  # mostly past the file header
    cut = rng.randint(low, max(low, len(raw) - 1))
    return Mutated(raw[:cut], suffix, f"truncated at byte {cut} of {len(raw)}")


def _load_segs(src: Path) -> tuple[list, Optional[int], list[Seg]]:
    pkts, lt = load_packets(src)
    segs = segments(pkts)
    if not segs:
        raise NotApplicable("no TCP payload")
    return pkts, lt, segs


def m_resegment(rng: random.Random, src: Path, work: Path, state=None) -> Mutated:
    pkts, lt, segs = state or _load_segs(src)
    notes = []
    for seg in sorted(rng.sample(segs, min(len(segs), rng.randint(1, 4))), key=lambda s: -s.idx):
        chunks = split_points(rng, seg.payload, rng.randint(1, 6))
        pkts = replace_segment(pkts, seg, chunks)
        notes.append(f"{_frames(seg)} ({seg.kind}, {len(seg.payload)} B) -> {len(chunks)} segments "
                     f"{[len(c) for c in chunks]}")
    return Mutated(dump_packets(pkts, lt), ".pcap", "resegment: " + "; ".join(reversed(notes)))


def m_shuffle(rng: random.Random, src: Path, work: Path, state=None) -> Mutated:
    pkts, lt, segs = state or _load_segs(src)
    notes = []
    for _ in range(rng.randint(1, 3)):
        idxs = [s.idx for s in segments(pkts)] or [0]
        i = rng.choice(idxs)
        op = rng.choice(["duplicate", "reorder", "drop"])
        if op == "duplicate":
            j = min(len(pkts), i + rng.randint(1, 4))
            pkts.insert(j, pkts[i].copy())
            notes.append(f"duplicate frame {i + 1} as frame {j + 1}")
        elif op == "reorder":
            j = min(len(pkts) - 1, i + rng.randint(1, 4))
            pkts[i], pkts[j] = pkts[j], pkts[i]
            if rng.random() < 0.5:
                pkts[i].time, pkts[j].time = pkts[j].time, pkts[i].time
            notes.append(f"swap frames {i + 1} and {j + 1}")
        elif len(pkts) > 1:
            del pkts[i]
            notes.append(f"drop frame {i + 1}")
    return Mutated(dump_packets(pkts, lt), ".pcap", "shuffle: " + "; ".join(notes))


def _junk(rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(["random", "nul", "utf8", "long", "long", "ansi"])
    if kind == "random":
        return kind, bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))
    if kind == "nul":
        return kind, b"\x00" * rng.randint(1, 16)
    if kind == "utf8":
        return kind, b"".join(rng.choice(INVALID_UTF8) for _ in range(rng.randint(1, 4)))
    if kind == "long":
        fill = rng.choice([b"A", b"x", b".", b" ", b"\r"])
        return kind, fill * 65536
    return kind, rng.choice([b"\x1b[2J", b"\x1b]0;title\x07", b"\x9b2J", b"\x1bc"])


def _line_span(rng: random.Random, payload: bytes) -> tuple[int, int]:
    starts = [0] + [i + 1 for i, b in enumerate(payload) if b == 10 and i + 1 < len(payload)]
    s = rng.choice(starts)
    e = payload.find(b"\n", s)
    e = len(payload) if e < 0 else (e - 1 if e > s and payload[e - 1] == 13 else e)
    return s, e


def m_inject(rng: random.Random, src: Path, work: Path, state=None) -> Mutated:
    pkts, lt, segs = state or _load_segs(src)
    target = rng.choice(["command", "reply", "data"])
    pool = [s for s in segs if s.kind == target] or segs
    seg = rng.choice(pool)
    kind, junk = _junk(rng)
    s, e = _line_span(rng, seg.payload)
    space = seg.payload.find(b" ", s, e)
    lo = space + 1 if space >= 0 and rng.random() < 0.7 else s
    pos = rng.randint(min(lo, e), e)
    new = seg.payload[:pos] + junk + seg.payload[pos:]
    chunks = split_points(rng, new, 0)
    pkts = replace_segment(pkts, seg, chunks)
    return Mutated(dump_packets(pkts, lt), ".pcap",
                   f"inject {kind} ({len(junk)} B) into a {seg.kind} line of frame {seg.idx + 1} at payload "
                   f"offset {pos} (line {seg.payload[s:e][:40]!r}); now {_frames(seg, len(chunks))}")


_HOSTILE_LINES = (
    ("banner", rb"^220[ -]", lambda h: b"220 " + h + b" ESMTP\r\n"),
    ("helo", rb"^(EHLO|HELO|ehlo|helo) ", lambda h: b"EHLO " + h + b"\r\n"),
    ("mailfrom", rb"^(MAIL|mail) (FROM|from):", lambda h: b"MAIL FROM:<" + h + b">\r\n"),
    ("rcptto", rb"^(RCPT|rcpt) (TO|to):", lambda h: b"RCPT TO:" + h + b"\r\n"),
    ("reply", rb"^[2-5]\d\d[ -]", lambda h: b"250 " + h + b"\r\n"),
)


def m_hostile(rng: random.Random, src: Path, work: Path, state=None) -> Mutated:
    pkts, lt, segs = state or _load_segs(src)
    h = rng.choice(HOSTILE)
    if rng.random() < 0.3:
        h = h + rng.choice(HOSTILE)
    found = []
    for name, pat, make in _HOSTILE_LINES:
        for seg in segs:
            for m in re.finditer(rb"(?m)^[^\n]*\n?", seg.payload):
                if m.group(0) and re.match(pat, m.group(0)):
                    found.append((name, seg, m.start(), m.end(), make))
    if not found:
        raise NotApplicable("no banner/HELO/MAIL/RCPT/reply line")
    banners = [f for f in found if f[0] == "banner"]
    name, seg, s, e, make = banners[0] if banners and rng.random() < 0.35 else rng.choice(found)
    new = seg.payload[:s] + make(h) + seg.payload[e:]
    pkts = replace_segment(pkts, seg, split_points(rng, new, 0))
    return Mutated(dump_packets(pkts, lt), ".pcap",
                   f"hostile {name} {h!r} in frame {seg.idx + 1} (was {seg.payload[s:e][:50]!r})", hostile=True)


def m_snaplen(rng: random.Random, src: Path, work: Path) -> Mutated:
    snap = rng.randint(40, 160)
    out = work / "snaplen.out"
    subprocess.run(["editcap", "-s", str(snap), str(src), str(out)], check=True, capture_output=True, timeout=60)
    data = out.read_bytes()
    out.unlink()
    return Mutated(data, ".pcapng" if data[:4] == b"\x0a\x0d\x0d\x0a" else ".pcap", f"editcap -s {snap} (snap length)")


def m_portmove(rng: random.Random, src: Path, work: Path, state=None) -> Mutated:
    """The mail server's port moved off the mail ports: the greeting heuristic must find SMTP."""
    sa = _scapy()
    pkts, lt, segs = state or _load_segs(src)
    ports = {s.key[1] for s in segs if s.role == "s"} or {s.key[3] for s in segs}
    old = rng.choice(sorted(ports))
    new = rng.choice([8025, 2526, 10025, 443, 110, 143, 80, 1024 + rng.randint(0, 60000)])
    out = []
    for p in pkts:
        if sa.TCP in p and old in (p[sa.TCP].sport, p[sa.TCP].dport):
            p = p.copy()
            tcp = p[sa.TCP]
            tcp.sport = new if tcp.sport == old else tcp.sport
            tcp.dport = new if tcp.dport == old else tcp.dport
            del tcp.chksum
        out.append(p)
    return Mutated(dump_packets(out, lt), ".pcap", f"server port {old} moved to {new}")


def m_combo(rng: random.Random, src: Path, work: Path) -> Mutated:
    first = rng.choice([m_inject, m_hostile, m_portmove])
    m1 = first(rng, src, work)
    tmp = work / "combo.pcap"
    tmp.write_bytes(m1.data)
    try:
        second = rng.choice([m_resegment, m_shuffle, m_inject, m_snaplen])
        if second is m_snaplen:
            m2 = m_snaplen(rng, tmp, work)
        else:
            m2 = second(rng, tmp, work, state=_load_segs(tmp))
    finally:
        tmp.unlink()
    return Mutated(m2.data, m2.suffix, f"{m1.desc}; then {m2.desc}", hostile=m1.hostile)


# A password as base64, as AUTH LOGIN sends it: the credential mutation's secret.
SECRET = base64.b64encode(b"fuzz-secret-password-4711")


def m_credential(rng: random.Random, src: Path, work: Path, state=None) -> Mutated:
    """A client command line becomes a credential line (trailing spaces or not), split over
    segments; or the capture starts with it (its conversation's earlier packets dropped)."""
    pkts, lt, segs = state or _load_segs(src)
    pool = [s for s in segs if s.kind == "command"]
    if not pool:
        raise NotApplicable("no client command line")
    seg = rng.choice(pool)
    midstream = rng.random() < 0.4
    s, e = (0, _line_span(rng, seg.payload)[1]) if midstream else _line_span(rng, seg.payload)
    nl = seg.payload.find(b"\n", e)
    e = len(seg.payload) if nl < 0 else nl + 1
    line = SECRET + b" " * rng.choice([0, 0, 1, 3]) + b"\r\n"
    new = seg.payload[:s] + line + seg.payload[e:]
    cuts = sorted({rng.randint(s + 1, s + len(SECRET)) for _ in range(rng.randint(1, 4))})
    chunks = [new[a:b] for a, b in zip([0, *cuts], [*cuts, len(new)]) if b > a]
    pkts = replace_segment(pkts, seg, chunks)
    desc = f"credential line in frame {seg.idx + 1} at payload offset {s} (was {seg.payload[s:e][:40]!r}), " \
           f"now {_frames(seg, len(chunks))}"
    if midstream:
        conv = {seg.key, (seg.key[2], seg.key[3], seg.key[0], seg.key[1])}
        pkts = [p for i, p in enumerate(pkts) if i >= seg.idx or (tcp_view(p) or ((),))[0] not in conv]
        desc += "; the conversation's earlier packets dropped (capture starts there)"
    return Mutated(dump_packets(pkts, lt), ".pcap", desc, secret=SECRET)


def m_oooflood(rng: random.Random, src: Path, work: Path, state=None) -> Mutated:
    """A segment cut into up to 3000 pieces sent last first; with holes, every k-th dropped."""
    pkts, lt, segs = state or _load_segs(src)
    pool = [s for s in segs if len(s.payload) >= 2]
    if not pool:
        raise NotApplicable("no segment of 2 bytes or more")
    seg = rng.choice(pool)
    size = max(1, len(seg.payload) // 3000)
    chunks = [seg.payload[i:i + size] for i in range(0, len(seg.payload), size)]
    pkts = replace_segment(pkts, seg, chunks)
    run = pkts[seg.idx:seg.idx + len(chunks)][::-1]
    drop = rng.choice([0, 0, 2, 7])
    if drop:
        run = [p for k, p in enumerate(run) if k % drop]
    pkts[seg.idx:seg.idx + len(chunks)] = run
    return Mutated(dump_packets(pkts, lt), ".pcap",
                   f"{_frames(seg)} ({seg.kind}, {len(seg.payload)} B) -> {len(chunks)} segments of {size} B sent last "
                   f"first" + (f", every {drop}th dropped" if drop else ""))


def m_future(rng: random.Random, src: Path, work: Path, state=None) -> Mutated:
    """Packets stamped far in the future (year 5138: past what 64-bit nanoseconds hold; pcapng)
    or in 1970."""
    pkts, lt, segs = state or _load_segs(src)
    when = rng.choice([99_999_999_999.0, 2**32 + 12.5, 12_000_000_000.0, 1.0])
    i = rng.randrange(len(pkts))
    tail = rng.random() < 0.5
    for p in (pkts[i:] if tail else [pkts[i]]):
        p.time = when + (p.time - pkts[i].time if tail else 0)
    out = work / "future.pcapng"  # pcapng: 64-bit timestamps, past the year 2106
    with _scapy().PcapNgWriter(str(out)) as w:
        for p in pkts:
            w.write(p)
    data = out.read_bytes()
    out.unlink()
    return Mutated(data, ".pcapng",
                   f"frame {i + 1}{' and every later one' if tail else ''} stamped at epoch {when:.0f}")


MUTATORS: dict[str, Callable[..., Mutated]] = {
    "editcap": m_editcap, "truncate": m_truncate, "snaplen": m_snaplen, "resegment": m_resegment,
    "shuffle": m_shuffle, "inject": m_inject, "hostile": m_hostile, "portmove": m_portmove, "combo": m_combo,
    "credential": m_credential, "oooflood": m_oooflood, "future": m_future,
}
WEIGHTS = {"editcap": 2, "truncate": 1, "snaplen": 1, "resegment": 2, "shuffle": 2, "inject": 4, "hostile": 3,
           "portmove": 1, "combo": 4, "credential": 3, "oooflood": 1, "future": 1}


def mutate(seed: int, index: int, seeds: Sequence[Path], work: Path, only: Sequence[str] = ()) -> tuple[Path, str, Mutated]:
    """The index-th mutated capture of a run: the same (seed, index) always gives the same bytes."""
    rng = random.Random(f"{seed}:{index}")
    src = rng.choice(list(seeds))
    names = [n for n in MUTATIONS if not only or n in only]
    name = rng.choices(names, weights=[WEIGHTS[n] for n in names])[0]
    for attempt in (name, "editcap", "truncate"):
        try:
            return src, attempt, MUTATORS[attempt](rng, src, work)
        except NotApplicable:
            continue
    raise AssertionError("truncate always applies")


# -- checks ----------------------------------------------------------------------------

@dataclass
class Config:
    """What to run the checks with."""

    tshark: str = "tshark"
    run_as: Optional[str] = None
    lua: str = str(LUA)
    cli: str = "inprocess"   # or "subprocess"
    timeout: float = 120.0
    lua_origin: str = ""     # the plugin file `lua` is a snapshot of


def _as_user(cfg: Config, cmd: list[str]) -> list[str]:
    if not cfg.run_as:
        return cmd
    group = "nogroup" if cfg.run_as == "nobody" else cfg.run_as
    # A home that does not exist and that only root could create: no personal Wireshark
    # configuration (a shared temp folder would let any local user plant one), nothing left behind.
    return ["setpriv", f"--reuid={cfg.run_as}", f"--regid={group}", "--clear-groups",
            "env", "-u", "XDG_CONFIG_HOME", "HOME=/nonexistent", *cmd]


def tshark_cmd(cfg: Config, path: Path, two_pass: bool) -> list[str]:
    args = [cfg.tshark, "-n", "-r", str(path), "-X", f"lua_script:{cfg.lua}"]
    if two_pass:
        args += ["-2", "-Y", "tcp"]
    args += ["-T", "fields", "-e", "frame.number", "-e", "smtpdiag.failure_cause",
             "-e", "smtpdiag.internal_error", "-e", "_ws.expert.message"]
    return _as_user(cfg, args)


def expert_cmd(cfg: Config, path: Path) -> list[str]:
    return _as_user(cfg, [cfg.tshark, "-n", "-r", str(path), "-X", f"lua_script:{cfg.lua}", "-q", "-z", "expert"])


def _run(cmd: list[str], timeout: float) -> tuple[int, str, str]:
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -999, "", f"timeout after {timeout} s"
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def _exit_ok(rc: int, err: str) -> bool:
    """0, or tshark's exit for a damaged file with its one-line reason: 2 on 4.0; 3 (bad file
    header) or 14 (read error) on 4.2+ (ws_exit_codes.h)."""
    return rc == 0 or (rc in DAMAGED_EXITS and _DAMAGED.search(err) is not None)


def _stderr_trouble(err: str) -> list[str]:
    return [l for l in err.splitlines() if _TSHARK_TROUBLE.search(l)]


def check_tshark(cfg: Config, path: Path) -> tuple[list[str], int]:
    """(a): the plugin survives one- and two-pass runs and the expert statistics. Returns (problems, runs)."""
    problems: list[str] = []
    for two in (False, True):
        mode = "two-pass" if two else "one-pass"
        rc, out, err = _run(tshark_cmd(cfg, path, two), cfg.timeout)
        if not _exit_ok(rc, err):
            problems.append(f"tshark {mode}: exit {rc}: {err.strip()[-300:]}")
        for l in _stderr_trouble(err):
            problems.append(f"tshark {mode} stderr: {l[:300]}")
        for line in out.splitlines():
            cells = line.split("\t")
            if len(cells) >= 3 and cells[2].strip():
                problems.append(f"tshark {mode}: internal_error in frame {cells[0]}: {cells[2][:300]}")
            if len(cells) >= 4 and "Lua Error" in cells[3]:
                problems.append(f"tshark {mode}: expert 'Lua Error' in frame {cells[0]}: {cells[3][:300]}")
    rc, out, err = _run(expert_cmd(cfg, path), cfg.timeout)
    if not _exit_ok(rc, err):
        problems.append(f"tshark -z expert: exit {rc}: {err.strip()[-300:]}")
    problems += [f"tshark -z expert: {l.strip()[:300]}" for l in out.splitlines() if "Lua Error" in l]
    problems += [f"tshark -z expert stderr: {l[:300]}" for l in _stderr_trouble(err)]
    return problems, 3


_TSHARKS: dict = {}


def _reuse_tshark() -> None:
    """In-process only: one Tshark per (path, user) per worker, so every invocation does not
    reload tshark's 4 MB field list (the capture is still read by a fresh tshark run)."""
    from pyshark_tools import cli as cli_mod
    from pyshark_tools.tshark.program import Tshark

    if getattr(cli_mod.Tshark, "_fuzz_cached", False):
        return
    original = Tshark.discover.__func__  # type: ignore[attr-defined]

    class Cached(Tshark):
        _fuzz_cached = True

        @classmethod
        def discover(cls, explicit=None, run_as=None):  # type: ignore[override]
            key = (explicit, run_as)
            if key not in _TSHARKS:
                _TSHARKS[key] = original(Tshark, explicit, run_as)
            return _TSHARKS[key]

    cli_mod.Tshark = Cached  # type: ignore[misc]


def _invoke_cli(cfg: Config, args: list[str]) -> tuple[int, str, str, Optional[str]]:
    """(exit code, stdout, stderr, traceback or None) of `smtpdiag ARGS`."""
    base = ["--tshark", cfg.tshark] + (["--run-as", cfg.run_as] if cfg.run_as else [])
    if cfg.cli == "subprocess":
        env = dict(os.environ, SMTPDIAG_LUA=cfg.lua)
        try:
            r = subprocess.run([sys.executable, "-m", "pyshark_tools", *base, *args], capture_output=True,
                               timeout=cfg.timeout * 2, env=env)
            rc, out, err = r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            rc, out, err = -999, "", "timeout"
        return rc, out, err, err if "Traceback (most recent call last)" in err else None
    from click.testing import CliRunner

    from pyshark_tools.cli import cli

    _reuse_tshark()
    res = CliRunner().invoke(cli, base + args, catch_exceptions=True,
                             env={"SMTPDIAG_LUA": cfg.lua})
    tb = None
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        tb = "".join(traceback.format_exception(*res.exc_info))  # type: ignore[misc]
    return res.exit_code, res.stdout, res.stderr, tb


def csv_problems(text: str) -> list[str]:
    """Cells a spreadsheet would run as a formula (plain numbers excepted)."""
    bad = []
    for r, row in enumerate(csv.reader(io.StringIO(text, newline=""))):
        for cell in row:
            if cell[:1] in ("=", "+", "-", "@", "\t", "\r") and not _NUMBER.match(cell):
                bad.append(f"CSV row {r}: formula-like cell {cell[:80]!r}")
    return bad


def terminal_problems(text: str) -> list[str]:
    """Control characters (but newline), escape sequences and bidi overrides in terminal text."""
    return [f"table output: control character {m.group(0)!r} at {m.start()} in "
            f"{text[max(0, m.start() - 30):m.start() + 30]!r}" for m in list(_BAD_TERMINAL.finditer(text))[:5]]


SECRET_FIELDS = ("smtpdiag.command", "smtpdiag.reply_to", "smtpdiag.detail", "smtpdiag.last_reply", "smtpdiag.helo",
                 "smtpdiag.mbox.commands", "smtpdiag.mbox.user", "smtpdiag.txn.mailfrom", "smtpdiag.txn.rcptto")


def secret_problems(what: str, text: str, secret: Optional[bytes]) -> list[str]:
    """(e): the credential (its first 16 characters: a verb is cut at 32), in any case, is not in text."""
    if secret and secret.decode()[:16].upper() in text.upper():
        return [f"{what}: the credential {secret.decode()!r} is shown"]
    return []


def check_secret_fields(cfg: Config, path: Path, secret: Optional[bytes]) -> tuple[list[str], int]:
    """(e) for the plugin: no field it adds (two pass) shows the credential."""
    if not secret:
        return [], 0
    args = [cfg.tshark, "-n", "-r", str(path), "-X", f"lua_script:{cfg.lua}", "-2", "-Y", "smtpdiag", "-T", "fields"]
    for f in SECRET_FIELDS:
        args += ["-e", f]
    rc, out, err = _run(_as_user(cfg, args), cfg.timeout)
    return secret_problems("tshark two-pass fields", out, secret), 1


def check_cli(cfg: Config, path: Path, hostile: bool = False,
              secret: Optional[bytes] = None) -> tuple[list[str], int, Optional[list]]:
    """(b), (c) and (e): exit codes, one-line errors, no traceback; safe CSV, valid JSON, clean
    table, no credential shown. Also returns the sessions JSON rows (None when the run failed)."""
    problems: list[str] = []
    rows: Optional[list] = None
    runs = [("sessions", "csv"), ("sessions", "json"), ("sessions", "table")]
    if hostile:
        runs += [("transactions", "csv"), ("transactions", "table")]
    for cmd, fmt in runs:
        rc, out, err, tb = _invoke_cli(cfg, [cmd, str(path), "--format", fmt])
        what = f"smtpdiag {cmd} --format {fmt}"
        if tb:
            problems.append(f"{what}: Python traceback: {tb.strip()[-1500:]}")
            continue
        lines = [l for l in err.splitlines() if l.strip()]
        if rc == 1:
            if len(lines) != 1 or not lines[0].startswith("smtpdiag: error:"):
                problems.append(f"{what}: exit 1 with stderr {err[:500]!r}")
            continue
        if rc not in (0, 3, 4):
            problems.append(f"{what}: exit {rc}, stderr {err[:500]!r}")
            continue
        problems += [f"{what}: stray stderr line {l[:200]!r}" for l in lines if not l.startswith("smtpdiag: ")]
        problems += secret_problems(what, out + err, secret)
        if fmt == "csv":
            problems += [f"{what}: {p}" for p in csv_problems(out)]
        elif fmt == "json":
            try:
                rows = json.loads(out)
                if not isinstance(rows, list):
                    problems.append(f"{what}: JSON is not a list")
                    rows = None
                elif rc == 4:
                    rows = None  # damaged: not comparable
            except ValueError as e:
                problems.append(f"{what}: invalid JSON: {e}")
        else:
            problems += [f"{what}: {p}" for p in terminal_problems(out)]
    return problems, len(runs), rows


_SEED_ROWS: dict[str, Optional[list]] = {}
VERDICT_KEYS = ("stream", "failure_cause", "messages", "data_terminated", "terminator")


def check_same_verdicts(cfg: Config, src: str, rows: Optional[list]) -> tuple[list[str], int]:
    """(d) for pure re-segmentation: the same byte streams must give the seed's verdicts."""
    runs = 0
    if src not in _SEED_ROWS:
        rc, out, _err, _tb = _invoke_cli(cfg, ["sessions", src, "--format", "json"])
        _SEED_ROWS[src] = json.loads(out) if rc == 0 else None
        runs = 1
    base = _SEED_ROWS[src]
    if rows is None or base is None or any(r.get("failure_cause") == "mtu_blackhole" for r in base):
        return [], runs  # segment sizes are the evidence of an MTU black hole
    def key(rs: list) -> list:
        return sorted(tuple(str(r.get(k)) for k in VERDICT_KEYS) for r in rs)
    if key(rows) == key(base):
        return [], runs
    diff = [f"{a} != {b}" for a, b in zip(key(base), key(rows)) if a != b] or [f"{len(base)} vs {len(rows)} sessions"]
    return [f"re-segmentation changed the verdict ({', '.join(VERDICT_KEYS)}): seed {'; '.join(diff)[:400]} (mutant)"], runs


# -- the run ---------------------------------------------------------------------------

@dataclass
class Result:
    """One mutated capture's outcome."""

    index: int
    seed_file: str
    mutation: str
    desc: str
    problems: list[str]
    tshark_runs: int
    saved: Optional[str] = None
    seconds: float = 0.0


def signature(problem: str) -> str:
    """A problem with its numbers and paths blanked: the same bug met twice has one signature."""
    text = re.sub(r"[\w./-]*smtpdiag[\w-]*\.lua", "smtpdiag.lua", problem)
    return re.sub(r"(?<!lua:)\b\d+\b", "N", text)[:160]  # the plugin's line numbers stay


@dataclass
class Summary:
    """A whole run's outcome."""

    captures: int = 0
    tshark_runs: int = 0
    failures: list[Result] = field(default_factory=list)
    by_mutation: dict[str, int] = field(default_factory=dict)
    baseline: dict[str, list[str]] = field(default_factory=dict)  # unmutated seed -> its problems

    def line(self) -> str:
        return f"fuzz: {self.captures} mutated captures, {self.tshark_runs} tshark runs, {len(self.failures)} failures"

    def groups(self) -> dict[str, list[Result]]:
        """Failures by problem signature (a capture with several problems is in several groups)."""
        out: dict[str, list[Result]] = {}
        for r in self.failures:
            for sig in dict.fromkeys(signature(p) for p in r.problems):
                out.setdefault(sig, []).append(r)
        return out


def _readable(path: Path, mode: int) -> None:
    try:
        os.chmod(path, mode)
    except OSError:
        pass


def save_failure(out_dir: Path, res: Result, data: bytes, suffix: str, cfg: Config, seed: int) -> str:
    """Keep the failing capture, the plugin it failed with, and a .txt with the reproduction."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _readable(out_dir, 0o755)
    lua_src = Path(cfg.lua).read_bytes()
    lua = out_dir / f"smtpdiag-{hashlib.sha256(lua_src).hexdigest()[:12]}.lua"
    if not lua.exists():
        lua.write_bytes(lua_src)
        _readable(lua, 0o644)
    kept = Config(cfg.tshark, cfg.run_as, str(lua), cfg.cli, cfg.timeout)
    stem = f"seed{seed}-{res.index:05d}-{res.mutation}-{Path(res.seed_file).name.split('.')[0]}"
    cap = out_dir / (stem + suffix)
    cap.write_bytes(data)
    _readable(cap, 0o644)
    cmds = [tshark_cmd(kept, cap, False), tshark_cmd(kept, cap, True), expert_cmd(kept, cap),
            ["env", f"SMTPDIAG_LUA={lua}", ".venv/bin/smtpdiag", "--tshark", cfg.tshark]
            + (["--run-as", cfg.run_as] if cfg.run_as else []) + ["sessions", str(cap), "--format", "csv"]]
    (out_dir / (stem + ".txt")).write_text(
        f"seed capture: {res.seed_file}\nmutation: {res.mutation}: {res.desc}\n"
        f"fuzz: --seed {seed}, index {res.index}; plugin {cfg.lua_origin} (snapshot {lua.name})\n\n"
        "problems:\n" + "\n".join(res.problems)
        + "\n\nreproduce (from the project folder):\n" + "\n".join(" ".join(map(_q, c)) for c in cmds) + "\n",
        encoding="utf-8")
    return str(cap)


def _q(s: str) -> str:
    return s if re.match(r"^[\w./:=,+-]+$", s) else "'" + s.replace("'", "'\\''") + "'"


def fuzz_one(seed: int, index: int, seeds: Sequence[str], work: str, cfg: Config,
             out_dir: Optional[str], only: Sequence[str] = ()) -> Result:
    """Make, check and (when failing) keep the index-th mutated capture."""
    t0 = time.monotonic()
    wdir = Path(work) / f"w{os.getpid()}"
    wdir.mkdir(exist_ok=True)
    _readable(wdir, 0o755)
    src, name, m = mutate(seed, index, [Path(s) for s in seeds], wdir, only)
    path = wdir / f"m{index}{m.suffix}"
    path.write_bytes(m.data)
    _readable(path, 0o644)
    try:
        p1, n1 = check_tshark(cfg, path)
        p2, n2, rows = check_cli(cfg, path, m.hostile or m.secret is not None, m.secret)
        p4, n4 = check_secret_fields(cfg, path, m.secret)
        p2, n2 = p2 + p4, n2 + n4
        if name == "resegment":
            p3, n3 = check_same_verdicts(cfg, str(src), rows)
            p2, n2 = p2 + p3, n2 + n3
    except Exception:
        p1, n1, p2, n2 = [f"fuzzer error: {traceback.format_exc()[-800:]}"], 0, [], 0
    res = Result(index, str(src), name, m.desc, p1 + p2, n1 + n2, seconds=time.monotonic() - t0)
    if res.problems and out_dir:
        res.saved = save_failure(Path(out_dir), res, m.data, m.suffix, cfg, seed)
    path.unlink(missing_ok=True)
    return res


def check_seed(cfg: Config, path: str) -> tuple[str, list[str]]:
    """The unmutated seed through check (a): tells bugs the seed already shows from found ones."""
    return path, check_tshark(cfg, Path(path))[0]


def run(seed: int = 1, count: int = 50, seconds: Optional[float] = None, cfg: Optional[Config] = None,
        jobs: int = 0, out_dir: Optional[str] = "/tmp/fuzz-failures", seeds: Optional[Sequence[Path]] = None,
        only: Sequence[str] = (), progress: Optional[Callable[[Result], None]] = None,
        baseline: bool = False) -> Summary:
    """Fuzz `count` mutated captures (or until `seconds` have passed) and return the summary."""
    cfg = cfg or Config()
    seed_list = [str(p) for p in (seeds or seed_captures())]
    if not seed_list:
        raise SystemExit("fuzz: no seed captures found")
    jobs = jobs or min(4, os.cpu_count() or 1)
    deadline = time.monotonic() + seconds if seconds else None
    summary = Summary()
    work = tempfile.mkdtemp(prefix="smtpdiag-fuzz-")
    _readable(Path(work), 0o755)
    # The plugin may be edited while we run: every check uses one snapshot of it.
    snap = Path(work) / "smtpdiag.lua"
    shutil.copyfile(cfg.lua, snap)
    _readable(snap, 0o644)
    cfg = Config(cfg.tshark, cfg.run_as, str(snap), cfg.cli, cfg.timeout, cfg.lua_origin or cfg.lua)
    try:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            if baseline:
                for path, probs in pool.map(check_seed, [cfg] * len(seed_list), seed_list):
                    if probs:
                        summary.baseline[path] = probs
            pending: set[Future] = set()
            nxt = 0
            while True:
                while len(pending) < jobs * 2 and (count <= 0 or nxt < count) and (
                        deadline is None or time.monotonic() < deadline):
                    pending.add(pool.submit(fuzz_one, seed, nxt, seed_list, work, cfg, out_dir, only))
                    nxt += 1
                if not pending:
                    break
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    r = f.result()
                    summary.captures += 1
                    summary.tshark_runs += r.tshark_runs
                    summary.by_mutation[r.mutation] = summary.by_mutation.get(r.mutation, 0) + 1
                    if r.problems:
                        summary.failures.append(r)
                    if progress:
                        progress(r)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary.failures.sort(key=lambda r: r.index)
    return summary


def report(s: Summary, verbose: bool = False) -> str:
    """The failures, grouped by signature, each with its first saved inputs."""
    out = []
    for path, probs in s.baseline.items():
        out.append(f"unmutated seed {path} already fails: {probs[0][:200]}" + (f" (+{len(probs) - 1})" if len(probs) > 1 else ""))
    known = {signature(p) for probs in s.baseline.values() for p in probs}
    for sig, rs in sorted(s.groups().items(), key=lambda kv: -len(kv[1])):
        tag = " [also in an unmutated seed]" if sig in known else ""
        out.append(f"\n{len(rs)} x {sig}{tag}")
        for r in rs[: None if verbose else 3]:
            first = next(p for p in r.problems if signature(p) == sig)
            out.append(f"  #{r.index} {r.mutation} of {Path(r.seed_file).name}: {r.desc[:300]}\n"
                       f"    {first[:1500]}\n    saved: {r.saved}")
    return "\n".join(out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Long run: fuzz/fuzz_captures.py --seed 7 --count 2000 --jobs 2")
    ap.add_argument("--seed", type=int, default=1, help="RNG seed (same seed, same mutated captures)")
    ap.add_argument("--count", type=int, default=100, help="mutated captures to check (0 = until --seconds)")
    ap.add_argument("--seconds", type=float, help="time budget: stop starting new captures after this")
    ap.add_argument("--tshark", default=os.environ.get("SMTPDIAG_TSHARK") or shutil.which("tshark") or "tshark")
    ap.add_argument("--run-as", metavar="USER", help="run tshark as USER (tshark 4.4+ skips Lua as root)")
    ap.add_argument("--lua", default=str(LUA), help="the plugin to test (default %(default)s; a snapshot is used)")
    ap.add_argument("--out", default="/tmp/fuzz-failures", help="keep failing inputs here (default %(default)s)")
    ap.add_argument("--jobs", type=int, default=0, help="parallel workers (default: CPUs, at most 4)")
    ap.add_argument("--only", default="", help=f"comma-separated mutations out of {','.join(MUTATIONS)}")
    ap.add_argument("--cli", choices=("inprocess", "subprocess"), default="inprocess",
                    help="run smtpdiag in-process (fast, CliRunner) or as a real subprocess")
    ap.add_argument("--baseline", action="store_true", help="first check the unmutated seeds, to mark known bugs")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per mutated capture, every failure")
    a = ap.parse_args(argv)
    only = [x for x in a.only.split(",") if x]
    unknown = set(only) - set(MUTATIONS)
    if unknown:
        ap.error(f"unknown mutation(s): {', '.join(sorted(unknown))}")
    tshark = shutil.which(a.tshark) or a.tshark
    cfg = Config(tshark=str(Path(tshark).absolute()) if os.sep in tshark else tshark, run_as=a.run_as,
                 lua=str(Path(a.lua).absolute()), cli=a.cli)

    def progress(r: Result) -> None:
        if a.verbose or r.problems:
            mark = "FAIL" if r.problems else "ok  "
            print(f"{mark} #{r.index} {r.seconds:.1f}s {r.mutation} {Path(r.seed_file).name}: {r.desc[:150]}", flush=True)

    t0 = time.monotonic()
    sha = hashlib.sha256(Path(cfg.lua).read_bytes()).hexdigest()[:12]  # run() snapshots this very file now
    s = run(a.seed, a.count, a.seconds, cfg, a.jobs, a.out, only=only, progress=progress, baseline=a.baseline)
    print(report(s, a.verbose))
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(s.by_mutation.items()))
    print(f"({kinds}; {time.monotonic() - t0:.0f} s, tshark {cfg.tshark}{', as ' + cfg.run_as if cfg.run_as else ''}, "
          f"plugin {cfg.lua} sha256 {sha})")
    print(s.line())
    return 1 if s.failures else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
