#!/usr/bin/env python3
"""Does a live tshark with the plugin's summary file see every session, with and without -w/-b ring buffers?

    sudo python3 bench/live_rotation.py [--sessions 6]

Runs an SMTP server and client on 127.0.0.1:2525 (one session a second) under three live
tshark commands on `lo` and prints, for each, the ring files written and the summary rows
(docs/exports.md quotes the result). Needs capture rights on `lo`; tshark from PATH.
"""
from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

PLUGIN = Path(__file__).resolve().parent.parent / "lua" / "smtpdiag.lua"
PORT = 2525


def _serve(sock: socket.socket) -> None:
    while True:
        conn, _ = sock.accept()
        f = conn.makefile("rwb")

        def say(line: str) -> None:
            f.write(line.encode() + b"\r\n")
            f.flush()
        say("220 mx.example.test ESMTP")
        in_data = False
        for raw in f:
            line = raw.decode().strip()
            if in_data:
                if line == ".":
                    in_data = False
                    say("250 2.0.0 Ok: queued")
                continue
            verb = line.split(" ")[0].upper()
            if verb == "EHLO":
                say("250-mx.example.test")
                say("250 8BITMIME")
            elif verb == "DATA":
                in_data = True
                say("354 go ahead")
            elif verb == "QUIT":
                say("221 Bye")
                break
            else:
                say("250 Ok")
        conn.close()


def _client(i: int) -> None:
    conn = socket.create_connection(("127.0.0.1", PORT))
    f = conn.makefile("rwb")
    f.readline()
    for cmd in ("EHLO client.example.test", "MAIL FROM:<alice@example.test>", f"RCPT TO:<bob{i}@example.test>", "DATA"):
        f.write(cmd.encode() + b"\r\n")
        f.flush()
        while f.readline()[3:4] == b"-":
            pass
    f.write(b"Subject: t\r\n\r\nhello\r\n.\r\nQUIT\r\n")
    f.flush()
    f.readline()
    f.readline()
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=6)
    n = ap.parse_args().sessions
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", PORT))
    server.listen(5)
    threading.Thread(target=_serve, args=(server,), daemon=True).start()
    variants = {"no -w": [], "-w -b": ["-w", "RING", "-b", "duration:4"], "-P -w -b": ["-P", "-w", "RING", "-b", "duration:4"]}
    for name, extra in variants.items():
        tmp = Path(tempfile.mkdtemp(prefix="smtpdiag-live-"))
        out = tmp / "summary.tsv"
        args = [shutil.which("tshark") or "tshark", "-n", "-q", "-i", "lo", "-f", f"tcp port {PORT}",
                "-a", f"duration:{n + 8}", "-X", f"lua_script:{PLUGIN}", "-o", f"smtpdiag.summary_file:{out}",
                *[str(tmp / "ring.pcapng") if a == "RING" else a for a in extra]]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while b"Capture started" not in (proc.stderr.readline() or b"Capture started"):   # type: ignore[union-attr]
            pass
        time.sleep(1)
        for i in range(n):
            _client(i)
            time.sleep(1)
        proc.wait()
        rows = out.read_text().splitlines()[2:] if out.exists() else []
        ok = sum(1 for r in rows if "\t1 message accepted\t" in r)
        rings = len(list(tmp.glob("ring_*")))
        print(f"{name:10} {n} sessions: {rings} ring files, {len(rows)} summary rows, {ok} of them '1 message accepted'")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
