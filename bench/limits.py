"""Resource limits: many sessions, or one huge message, through tshark + the plugin in batch mode.

    .venv/bin/python bench/limits.py --sessions 100000      # 100k short SMTP sessions
    .venv/bin/python bench/limits.py --message-mb 1024      # one session carrying a 1 GB message

Writes a synthetic pcap under bench/out/ (valid TCP, one timestamp step per packet), runs
`smtpdiag sessions` on it, and prints wall time, CPU time and peak RSS of tshark and of the
Python process, next to raw tshark (same options, no plugin) on the same file.
"""
from __future__ import annotations

import argparse
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


def measured(cmd: list[str]) -> tuple[float, float, float]:
    """Run `cmd` in a fresh child; return (wall s, CPU s, peak RSS MB of its process tree's largest process)."""
    probe = [sys.executable, "-c",
             "import resource,subprocess,sys,time;t=time.time();r=subprocess.run(sys.argv[1:]).returncode;"
             "u=resource.getrusage(resource.RUSAGE_CHILDREN);"
             "print(time.time()-t,u.ru_utime+u.ru_stime,u.ru_maxrss/1024,r)", *cmd]
    out = subprocess.run(probe, capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1]), float(out[2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=0)
    ap.add_argument("--message-mb", type=int, default=0)
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
    else:
        ap.error("give --sessions N or --message-mb N")
    root = Path(__file__).resolve().parent.parent
    smtpdiag = str(root / ".venv" / "bin" / "smtpdiag")
    out = OUT / (cap.stem + ".parquet")
    raw = ["tshark", "-n", "-q", "-r", str(cap), "-o", "smtp.desegment_data:FALSE", "-o", "smtp.desegment_lines:FALSE",
           "-Y", "frame"]
    print(f"capture {cap.name}: {cap.stat().st_size / 1e6:.0f} MB")
    for name, cmd in [("raw tshark", raw),
                      ("smtpdiag sessions", [smtpdiag, "-q", "sessions", str(cap), "--format", "parquet", "-o", str(out), "--no-cache"])]:
        wall, cpu, rss = measured(cmd)
        print(f"{name:20s} wall {wall:7.1f} s  cpu {cpu:7.1f} s  peak RSS {rss:7.0f} MB")
    import pandas as pd

    df = pd.read_parquet(out)
    print(f"sessions: {len(df)}; causes: {df.failure_cause.value_counts().to_dict()}")


if __name__ == "__main__":
    main()
