"""Resource limits: many sessions, or one huge message, through tshark + the plugin in batch mode.

    .venv/bin/python bench/limits.py --sessions 100000      # 100k short SMTP sessions
    .venv/bin/python bench/limits.py --message-mb 1024      # one session carrying a 1 GB message
    .venv/bin/python bench/limits.py --ooo 40000            # one session, 40k one-byte segments out of order
    .venv/bin/python bench/limits.py --transactions 40000   # one session of 40k mail transactions
    .venv/bin/python bench/limits.py --dns-lookups 400000   # 400k answered MX lookups

`--lua FILE` runs `smtpdiag` with another plugin file (SMTPDIAG_LUA), e.g. one built from an
older commit with `python lua/build.py -o FILE`: the same capture and command, before and after.

Writes a synthetic pcap under bench/out/ (valid TCP, one timestamp step per packet), runs
`smtpdiag sessions` on it, and prints wall time, CPU time and peak RSS of tshark and of the
Python process, next to raw tshark (same options, no plugin) on the same file.
"""
from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


class Writer:
    """A minimal pcap writer for IPv4/TCP frames."""

    def __init__(self, path: Path):
        self.fh = open(path, "wb")
        self.fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        self.t = 1_700_000_000.0

    def tcp(self, src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
            payload: bytes = b"") -> None:
        self.t += 0.00005
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags,
                          65535, 0, 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, src, dst)
        frame = b"\x00" * 6 + b"\x11" * 6 + b"\x08\x00" + ip + tcp
        sec = int(self.t)
        self.fh.write(struct.pack("<IIII", sec, int((self.t - sec) * 1e6), len(frame), len(frame)) + frame)

    def udp(self, src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> None:
        self.t += 0.00005
        udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst)
        frame = b"\x00" * 6 + b"\x11" * 6 + b"\x08\x00" + ip + udp
        sec = int(self.t)
        self.fh.write(struct.pack("<IIII", sec, int((self.t - sec) * 1e6), len(frame), len(frame)) + frame)

    def close(self) -> None:
        self.fh.close()


class Conn:
    """One TCP connection of the synthetic capture."""

    def __init__(self, w: Writer, n: int, sport: int = 25):
        self.w, self.sport = w, sport
        self.c = bytes([10, (n >> 16) & 255, (n >> 8) & 255, n & 255])
        self.s = bytes([192, 0, 2, 25])
        self.cp = 1024 + n % 60000
        self.cs, self.ss = 1000, 5000

    def open(self) -> None:
        w = self.w
        w.tcp(self.c, self.s, self.cp, self.sport, self.cs - 1, 0, 0x02)
        w.tcp(self.s, self.c, self.sport, self.cp, self.ss - 1, self.cs, 0x12)
        w.tcp(self.c, self.s, self.cp, self.sport, self.cs, self.ss, 0x10)

    def client(self, data: bytes, flags: int = 0x18) -> None:
        self.w.tcp(self.c, self.s, self.cp, self.sport, self.cs, self.ss, flags, data)
        self.cs += len(data)

    def server(self, data: bytes, flags: int = 0x18) -> None:
        self.w.tcp(self.s, self.c, self.sport, self.cp, self.ss, self.cs, flags, data)
        self.ss += len(data)

    def close(self) -> None:
        self.client(b"", 0x11)
        self.cs += 1
        self.server(b"", 0x11)
        self.ss += 1
        self.client(b"", 0x10)


def many_sessions(path: Path, n: int) -> None:
    w = Writer(path)
    for i in range(n):
        c = Conn(w, i)
        c.open()
        c.server(b"220 mx.example.test ESMTP\r\n")
        c.client(b"EHLO client.example.test\r\n")
        c.server(b"250 mx.example.test\r\n")
        if i % 10 == 0:
            c.client(b"MAIL FROM:<a@example.test>\r\n")
            c.server(b"451 4.7.1 greylisted, try again later\r\n")
        c.client(b"QUIT\r\n")
        c.server(b"221 bye\r\n")
        c.close()
    w.close()


def huge_message(path: Path, megabytes: int) -> None:
    w = Writer(path)
    c = Conn(w, 1)
    c.open()
    for cmd, reply in [(None, b"220 mx ESMTP\r\n"), (b"EHLO x\r\n", b"250 mx\r\n"), (b"MAIL FROM:<a@b>\r\n", b"250 ok\r\n"),
                       (b"RCPT TO:<c@d>\r\n", b"250 ok\r\n"), (b"DATA\r\n", b"354 go on\r\n")]:
        if cmd:
            c.client(cmd)
        c.server(reply)
    segment = (b"x" * 70 + b"\r\n") * 20
    for i in range(megabytes * 1024 * 1024 // len(segment)):
        c.client(segment, 0x10)
        if i % 20 == 0:
            c.server(b"", 0x10)
    c.client(b".\r\n")
    c.server(b"250 queued\r\n")
    c.client(b"QUIT\r\n")
    c.server(b"221 bye\r\n")
    c.close()
    w.close()


def out_of_order(path: Path, n: int) -> None:
    """One session whose client sends n one-byte segments, each after a one-byte hole (so all
    wait out of order), then the server acknowledges them all: n holes declared at once."""
    w = Writer(path)
    c = Conn(w, 1)
    c.open()
    c.server(b"220 mx ESMTP\r\n")
    c.client(b"EHLO x\r\n")
    c.server(b"250 mx\r\n")
    base = c.cs
    for i in range(n):
        w.tcp(c.c, c.s, c.cp, c.sport, base + 2 * i + 1, c.ss, 0x18, b"x")
    c.cs = base + 2 * n
    c.server(b"", 0x10)
    c.client(b"\r\nQUIT\r\n")
    c.server(b"221 bye\r\n")
    c.close()
    w.close()


def transactions(path: Path, n: int) -> None:
    """One session of n mail transactions, each MAIL, RCPT, DATA, a short message, 250."""
    w = Writer(path)
    c = Conn(w, 1)
    c.open()
    c.server(b"220 mx ESMTP\r\n")
    c.client(b"EHLO x\r\n")
    c.server(b"250 mx\r\n")
    for i in range(n):
        for cmd, reply in [(b"MAIL FROM:<a%d@example.test>\r\n" % i, b"250 ok\r\n"), (b"RCPT TO:<b@example.test>\r\n", b"250 ok\r\n"),
                           (b"DATA\r\n", b"354 go on\r\n"), (b"Subject: %d\r\n\r\nhi\r\n.\r\n" % i, b"250 queued\r\n")]:
            c.client(cmd)
            c.server(reply)
    c.client(b"QUIT\r\n")
    c.server(b"221 bye\r\n")
    c.close()
    w.close()


def dns_name(name: bytes) -> bytes:
    return b"".join(bytes([len(p)]) + p for p in name.split(b".")) + b"\x00"


def dns_lookups(path: Path, n: int) -> None:
    """n MX lookups of distinct domains, each answered with one exchanger."""
    w = Writer(path)
    cli, srv = bytes([10, 0, 0, 53]), bytes([192, 0, 2, 53])
    for i in range(n):
        qid, port = i & 0xFFFF, 1024 + i % 60000
        question = dns_name(b"d%d.example.test" % i) + struct.pack("!HH", 15, 1)
        w.udp(cli, srv, port, 53, struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question)
        mx = struct.pack("!H", 10) + dns_name(b"mx.d%d.example.test" % i)
        answer = b"\xc0\x0c" + struct.pack("!HHIH", 15, 1, 300, len(mx)) + mx
        w.udp(srv, cli, 53, port, struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + answer)
    w.close()


def measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Run `cmd` in a fresh child; return (wall s, CPU s, peak RSS MB of its process tree's largest process)."""
    probe = [sys.executable, "-c",
             "import resource,subprocess,sys,time;t=time.time();r=subprocess.run(sys.argv[1:]).returncode;"
             "u=resource.getrusage(resource.RUSAGE_CHILDREN);"
             "print(time.time()-t,u.ru_utime+u.ru_stime,u.ru_maxrss/1024,r)", *cmd]
    out = subprocess.run(probe, capture_output=True, text=True, env=env).stdout.split()
    return float(out[0]), float(out[1]), float(out[2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=0)
    ap.add_argument("--message-mb", type=int, default=0)
    ap.add_argument("--ooo", type=int, default=0, help="one session of N one-byte out-of-order segments")
    ap.add_argument("--transactions", type=int, default=0, help="one session of N mail transactions")
    ap.add_argument("--dns-lookups", type=int, default=0, help="N answered MX lookups")
    ap.add_argument("--lua", help="the plugin file smtpdiag runs (default: this checkout's)")
    ap.add_argument("--no-raw", action="store_true", help="skip the raw tshark run")
    a = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if a.sessions:
        cap = OUT / f"sessions-{a.sessions}.pcap"
        if not cap.exists():
            many_sessions(cap, a.sessions)
    elif a.message_mb:
        cap = OUT / f"message-{a.message_mb}mb.pcap"
        if not cap.exists():
            huge_message(cap, a.message_mb)
    elif a.ooo or a.transactions or a.dns_lookups:
        kind, n, make = next((k, v, m) for k, v, m in [("ooo", a.ooo, out_of_order), ("transactions", a.transactions, transactions),
                                                     ("dns", a.dns_lookups, dns_lookups)] if v)
        cap = OUT / f"{kind}-{n}.pcap"
        if not cap.exists():
            make(cap, n)
    else:
        ap.error("give --sessions, --message-mb, --ooo, --transactions or --dns-lookups N")
    root = Path(__file__).resolve().parent.parent
    smtpdiag = str(root / ".venv" / "bin" / "smtpdiag")
    out = OUT / (cap.stem + ".parquet")
    raw = ["tshark", "-n", "-q", "-r", str(cap), "-o", "smtp.desegment_data:FALSE", "-o", "smtp.desegment_lines:FALSE",
           "-Y", "frame"]
    print(f"capture {cap.name}: {cap.stat().st_size / 1e6:.0f} MB" + (f"; plugin {a.lua}" if a.lua else ""))
    env = dict(os.environ, SMTPDIAG_LUA=str(Path(a.lua).resolve())) if a.lua else None
    runs = [] if a.no_raw else [("raw tshark", raw)]
    runs.append(("smtpdiag sessions", [smtpdiag, "-q", "sessions", str(cap), "--format", "parquet", "-o", str(out), "--no-cache"]))
    for name, cmd in runs:
        wall, cpu, rss = measured(cmd, env)
        print(f"{name:20s} wall {wall:7.1f} s  cpu {cpu:7.1f} s  peak RSS {rss:7.0f} MB")
    import pandas as pd

    df = pd.read_parquet(out)
    print(f"sessions: {len(df)}; causes: {df.failure_cause.value_counts().to_dict()}")


if __name__ == "__main__":
    main()
