#!/usr/bin/env python3
"""Build a large, realistic capture from the project's own fixture sessions (fixed seed).

Each copy of a fixture gets its own client address (10.x.y.z), client ports and a start
time spread over `--span` seconds, so sessions interleave as on a busy relay; SMTP servers
listen on port 25, a relay's (the fixtures' servers use the unprivileged 2525: `--smtp-port 2525`
keeps it). Payloads, sequence and acknowledgement numbers are untouched (TCP stays consistent per session);
the IPv4 header checksum is recomputed, TCP/UDP checksums are left as captured (Wireshark
does not validate them by default). Raw pcap record rewriting with `struct`: about 1 M
packets in well under a minute.

    .venv/bin/python bench/make_capture.py                     # bench/out/mail-1000000-port25.pcap
    .venv/bin/python bench/make_capture.py --packets 200000 -o /tmp/x.pcap
    .venv/bin/python bench/make_capture.py --one-session      # 1 M packets, one SMTP session
"""
from __future__ import annotations

import argparse
import random
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "captures"
OUT_DIR = Path(__file__).resolve().parent / "out"
BASE_EPOCH = 1736150400  # 2025-01-06 08:00:00 UTC
SERVER_PORTS = {25, 53, 110, 143, 465, 587, 993, 995, 2525, 2526}
MX_SERVERS = [bytes([10, 0, 0, 25 + i]) for i in range(4)]

# (fixture name prefix or exact name, weight of the group, names) — a relay's ordinary day:
# mostly delivered mail, some refused or broken sessions, a few MX lookups.
GROUPS: list[tuple[str, float]] = [
    ("ok", 0.80),
    ("fail", 0.17),
    ("dns", 0.03),
]
FAILURES = ["tempfail", "rejected", "data_timeout", "bare_lf_terminator", "bare_lf_accepted", "reset",
            "no_response", "data_reset", "auth_failed", "greeting_rejected", "connection_refused",
            "pregreet", "no_banner"]


@dataclass
class Template:
    """One fixture: its packets, with where the addresses and ports sit, and its endpoints."""

    name: str
    records: list[tuple[int, bytes, int, int, int, int]]  # (t_us from start, frame, ip_off, l4_off, src_ep, dst_ep)
    endpoints: list[tuple[bytes, int, bool]]               # (ip, port, is_server)


def read_pcap(path: Path) -> tuple[int, list[tuple[int, bytes]]]:
    """(linktype, [(t_us, frame)]) of a classic microsecond little-endian pcap."""
    data = path.read_bytes()
    magic, _vmaj, _vmin, _tz, _sig, _snap, linktype = struct.unpack_from("<IHHiIII", data, 0)
    if magic != 0xA1B2C3D4:
        raise ValueError(f"{path.name}: not a little-endian microsecond pcap")
    out, off = [], 24
    while off + 16 <= len(data):
        sec, usec, incl, _orig = struct.unpack_from("<IIII", data, off)
        out.append((sec * 1_000_000 + usec, data[off + 16: off + 16 + incl]))
        off += 16 + incl
    return linktype, out


def load_template(path: Path) -> Template:
    linktype, pkts = read_pcap(path)
    if linktype != 1:
        raise ValueError(f"{path.name}: linktype {linktype}, expected Ethernet")
    t0 = pkts[0][0]
    parsed: list[tuple] = []
    servers: set[tuple[bytes, int]] = set()
    for t, frame in pkts:
        if len(frame) < 34 or frame[12:14] != b"\x08\x00":
            parsed.append((t - t0, frame, -1, -1, None, None))
            continue
        ihl = (frame[14] & 0x0F) * 4
        proto = frame[23]
        l4 = 14 + ihl
        src, dst = frame[26:30], frame[30:34]
        if proto not in (6, 17) or len(frame) < l4 + 4:
            parsed.append((t - t0, frame, 14, -1, None, None))
            continue
        sport, dport = struct.unpack_from("!HH", frame, l4)
        if proto == 6 and len(frame) >= l4 + 14:
            flags = frame[l4 + 13]
            if flags & 0x02 and not flags & 0x10:   # SYN without ACK: dst is the server
                servers.add((dst, dport))
        parsed.append((t - t0, frame, 14, l4, (src, sport), (dst, dport)))
    eps: dict[tuple[bytes, int], int] = {}
    records = []
    for t, frame, ip_off, l4_off, s, d in parsed:
        if s is None:
            records.append((t, frame, ip_off, -1, -1, -1))
            continue
        ids = []
        for ep in (s, d):
            if ep not in eps:
                eps[ep] = len(eps)
            ids.append(eps[ep])
        records.append((t, frame, ip_off, l4_off, ids[0], ids[1]))
    endpoints = [(ip, port, (ip, port) in servers or (not servers and port in SERVER_PORTS))
                 for (ip, port) in eps]
    return Template(path.stem, records, endpoints)


def ip_checksum(header: bytes) -> int:
    s = sum(struct.unpack(f"!{len(header) // 2}H", header))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def pick_templates() -> dict[str, list[Template]]:
    names = {p.stem: p for p in sorted(FIXTURES.glob("*.pcap"))}
    groups: dict[str, list[Template]] = {"ok": [], "fail": [], "dns": []}
    for stem, p in names.items():
        group = ("ok" if stem.startswith("ok") else "dns" if stem.startswith("dns_")
                 else "fail" if stem in FAILURES else None)
        if group is None:
            continue
        try:
            groups[group].append(load_template(p))
        except ValueError as e:
            print(f"make_capture: skipping {e}", file=sys.stderr)
    return {g: ts for g, ts in groups.items() if ts}


def build(packets: int, out: Path, seed: int = 6, span: float = 3600.0,
          chosen: Optional[list[str]] = None, smtp_port: int = 25,
          only: Optional[list[str]] = None) -> tuple[int, int]:
    """Write the capture; return (packets, sessions copied). `chosen` gets the fixture of each copy;
    `only`: copy these fixtures (each as likely), not the weighted mix.

    `smtp_port`: the SMTP servers' port 2525 (the fixtures' unprivileged one) becomes this one.
    """
    rng = random.Random(seed)
    groups = pick_templates()
    gnames = [g for g, _ in GROUPS if g in groups]
    gweights = [w for g, w in GROUPS if g in groups]
    if only:
        pool = {t.name: t for ts in groups.values() for t in ts}
        pool.update({n: load_template(FIXTURES / f"{n}.pcap") for n in only if n not in pool})
        groups, gnames, gweights = {"only": [pool[n] for n in only]}, ["only"], [1.0]
    recs: list[tuple[int, int, bytes]] = []
    copies = 0
    while len(recs) < packets:
        tpl = rng.choice(groups[rng.choices(gnames, gweights)[0]])
        if chosen is not None:
            chosen.append(tpl.name)
        n = copies + 1
        client = bytes([10, 1 + (n >> 16) % 250, (n >> 8) & 0xFF, n & 0xFF or 1])
        server = rng.choice(MX_SERVERS)
        port = rng.randrange(20000, 60000)
        mapping: list[tuple[bytes, bytes]] = []
        for k, (_ip, p, is_server) in enumerate(tpl.endpoints):
            if is_server and p == 2525:
                p = smtp_port
            mapping.append((server, struct.pack("!H", p)) if is_server
                           else (client, struct.pack("!H", port + k)))
        start = BASE_EPOCH * 1_000_000 + int(rng.random() * span * 1_000_000)
        for t, frame, ip_off, l4_off, s, d in tpl.records:
            if l4_off < 0:
                recs.append((start + t, copies, frame))
                continue
            b = bytearray(frame)
            ihl = (b[ip_off] & 0x0F) * 4
            b[ip_off + 12: ip_off + 16], b[l4_off: l4_off + 2] = mapping[s]
            b[ip_off + 16: ip_off + 20], b[l4_off + 2: l4_off + 4] = mapping[d]
            b[ip_off + 10: ip_off + 12] = b"\0\0"
            b[ip_off + 10: ip_off + 12] = struct.pack("!H", ip_checksum(bytes(b[ip_off: ip_off + ihl])))
            recs.append((start + t, copies, bytes(b)))
        copies += 1
    recs.sort(key=lambda r: (r[0], r[1]))   # stable: a copy's own packet order is kept on equal times
    _write_pcap(out, recs)
    return len(recs), copies


class _Tcp:
    """One synthetic TCP connection (Ethernet/IPv4), sequence and acknowledgement numbers kept right."""

    def __init__(self, client: bytes, server: bytes, cport: int, sport: int, t_us: int):
        self.ends = {"c": (client, cport), "s": (server, sport)}
        self.seq = {"c": 1_000_000, "s": 5_000_000}
        self.t = t_us
        self.ip_id = 0
        self.out: list[tuple[int, bytes]] = []

    def send(self, frm: str, flags: int, payload: bytes = b"", step_us: int = 20) -> None:
        to = "s" if frm == "c" else "c"
        (src, sp), (dst, dp) = self.ends[frm], self.ends[to]
        ack = self.seq[to] if flags & 0x10 else 0
        tcp = struct.pack("!HHIIBBHHH", sp, dp, self.seq[frm] & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags,
                          65535, 0, 0) + payload
        self.ip_id = (self.ip_id + 1) & 0xFFFF
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), self.ip_id, 0x4000, 64, 6, 0, src, dst))
        ip[10:12] = struct.pack("!H", ip_checksum(bytes(ip)))
        self.out.append((self.t, b"\0" * 12 + b"\x08\x00" + bytes(ip) + tcp))
        self.seq[frm] += len(payload) + (1 if flags & 0x03 else 0)     # SYN and FIN count one
        self.t += step_us


def build_one_session(packets: int, out: Path) -> tuple[int, int]:
    """One SMTP session whose message takes about `packets` packets (100-byte segments, an ACK every second)."""
    c = _Tcp(bytes([10, 9, 9, 9]), MX_SERVERS[0], 40000, 25, BASE_EPOCH * 1_000_000)
    SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01
    c.send("c", SYN)
    c.send("s", SYN | ACK)
    c.send("c", ACK)
    for frm, line in [("s", b"220 mx.example.test ESMTP\r\n"), ("c", b"EHLO client.example.test\r\n"),
                      ("s", b"250-mx.example.test\r\n250 8BITMIME\r\n"), ("c", b"MAIL FROM:<a@example.test>\r\n"),
                      ("s", b"250 OK\r\n"), ("c", b"RCPT TO:<b@example.test>\r\n"), ("s", b"250 OK\r\n"),
                      ("c", b"DATA\r\n"), ("s", b"354 End data with <CR><LF>.<CR><LF>\r\n"),
                      ("c", b"Subject: one big message\r\n\r\n")]:
        c.send(frm, PSH | ACK, line)
    k = 0
    while len(c.out) + 7 < packets:
        c.send("c", ACK, b"x" * 98 + b"\r\n", step_us=10)
        k += 1
        if k % 2 == 0:
            c.send("s", ACK, step_us=10)
    for frm, line in [("c", b".\r\n"), ("s", b"250 OK queued\r\n"), ("c", b"QUIT\r\n"), ("s", b"221 Bye\r\n")]:
        c.send(frm, PSH | ACK, line)
    c.send("s", FIN | ACK)
    c.send("c", FIN | ACK)
    c.send("s", ACK)
    _write_pcap(out, [(t, 0, f) for t, f in c.out])
    return len(c.out), 1


def _write_pcap(out: Path, recs: list[tuple[int, int, bytes]]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    pack = struct.Struct("<IIII").pack
    with open(out, "wb", buffering=1 << 20) as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for t, _c, frame in recs:
            fh.write(pack(t // 1_000_000, t % 1_000_000, len(frame), len(frame)))
            fh.write(frame)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000, help="at least this many packets (default 1000000)")
    ap.add_argument("-o", "--output", type=Path, help="default: bench/out/mail-PACKETS.pcap")
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--span", type=float, default=3600.0, help="seconds the sessions' starts spread over")
    ap.add_argument("--one-session", action="store_true", help="instead: one SMTP session with a huge message")
    ap.add_argument("--smtp-port", type=int, default=25,
                    help="the SMTP servers' port (default 25; the fixtures' own is 2525)")
    a = ap.parse_args(argv)
    out = a.output or (OUT_DIR / f"one-session-{a.packets}.pcap" if a.one_session
                       else OUT_DIR / f"mail-{a.packets}-port{a.smtp_port}.pcap")
    t = time.perf_counter()
    n, copies = build_one_session(a.packets, out) if a.one_session else build(a.packets, out, a.seed, a.span,
                                                                                 smtp_port=a.smtp_port)
    print(f"{out}: {n} packets, {copies} sessions copied, {out.stat().st_size / 1e6:.1f} MB "
          f"in {time.perf_counter() - t:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
