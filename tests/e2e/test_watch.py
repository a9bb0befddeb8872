"""`smtpdiag watch`: files are diagnosed as dumpcap closes them; tables and report follow."""
from __future__ import annotations

import os
import shutil
import smtplib
import socket
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import FIXTURES, corpus_file

import pyshark_tools as pt
from pyshark_tools import watch
from pyshark_tools.runner.options import configured
from pyshark_tools.cli import cli


def _split(capture: Path, into: Path, packets: int = 10) -> list[Path]:
    into.mkdir()
    subprocess.run(["editcap", "-c", str(packets), str(capture), str(into / f"ring{capture.suffix}")],
                   check=True, capture_output=True)
    return sorted(into.iterdir())


def test_files_copied_in_one_by_one(tmp_path, tshark):
    """A ring buffer imitated: files appear one by one, settled old ones are deleted."""
    src = _split(corpus_file("smtp.pcap"), tmp_path / "src")
    ring, out = tmp_path / "ring", tmp_path / "out"
    ring.mkdir()
    with configured(cache_dir=tmp_path / "cache", jobs=2):
        for k, f in enumerate(src):
            shutil.copy(f, ring / f.name)
            cycle = watch.process(ring, out, tshark)
            assert cycle.new == ([src[k - 1].name] if k else [])       # the newest is still being written
            state = watch.State.load(out)
            first_needed = min(state.done.index(n) for n in state.unsettled) - 1 if state.unsettled else len(state.done)
            for old in state.done[:max(0, first_needed)]:
                (ring / old).unlink(missing_ok=True)                 # dumpcap's ring drops old files
        assert watch.process(ring, out, tshark).new == []
        last = watch.process(ring, out, tshark, final=True)
        whole = pt.sessions(str(corpus_file("smtp.pcap")))
    assert last.new == [src[-1].name]
    got = pd.read_parquet(out / "sessions.parquet")
    assert len(got) == len(whole)
    for col in ("client_port", "failure_cause", "messages", "helo", "last_reply"):
        assert list(got[col]) == list(whole[col]), col
    assert not any("midstream" in list(a) for a in got["anomalies"])
    assert [len(f) for f in got["pcap_files"]] == [6, 3]
    assert len(list((out / "sessions.parts").glob("*.parquet"))) == len(src)
    assert len(pd.read_parquet(out / "transactions.parquet")) == 2


def test_once_processes_closed_files_only(tmp_path):
    ring, out = tmp_path / "ring", tmp_path / "out"
    _split(FIXTURES / "data_timeout.pcap", ring)
    args = ["-q", "watch", str(ring), "-o", str(out), "--once", "--cache-dir", str(tmp_path / "c")]
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    first = pd.read_parquet(out / "sessions.parquet")
    assert len(first) == 1 and "open_at_capture_end" in list(first.loc[0, "anomalies"])   # 2 of 3 files closed
    res = CliRunner().invoke(cli, [*args, "--final"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    final = pd.read_parquet(out / "sessions.parquet")
    assert list(final["failure_cause"]) == ["data_timeout"] and len(final.loc[0, "pcap_files"]) == 3
    assert (out / "report" / "index.html").is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _can_capture() -> bool:
    return bool(shutil.which("dumpcap")) and hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.mark.skipif(not _can_capture(), reason="needs dumpcap and root to capture on lo")
def test_follows_a_real_dumpcap_ring_buffer(tmp_path, tshark):
    from aiosmtpd.controller import Controller

    class Sink:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    port = _free_port()
    server = Controller(Sink(), hostname="127.0.0.1", port=port)
    server.start()
    ring, out = tmp_path / "ring", tmp_path / "out"
    ring.mkdir()
    dumpcap = subprocess.Popen(["dumpcap", "-q", "-i", "lo", "-f", f"tcp port {port}", "-b", "duration:1",
                                "-b", "files:50", "-a", "duration:6", "-w", str(ring / "mail.pcapng")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    msg = "Subject: hi\r\n\r\nhello\r\n"

    def send() -> None:
        for i in range(4):
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
                c.sendmail("a@example.test", [f"b{i}@example.test"], msg)
            time.sleep(0.4)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:   # a session across a file boundary
            c.ehlo("slow.example.test")
            time.sleep(1.6)
            c.sendmail("a@example.test", ["slow@example.test"], msg)

    try:
        deadline = time.time() + 10
        while not any(ring.iterdir()) and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        sender = threading.Thread(target=send)
        sender.start()
        seen_live = 0
        with configured(cache_dir=tmp_path / "cache"):
            while dumpcap.poll() is None:               # follow while dumpcap writes
                seen_live += len(watch.process(ring, out, tshark, decode_as=[f"{port}=smtp"]).new)
                time.sleep(0.3)
        sender.join()
    finally:
        if dumpcap.poll() is None:
            dumpcap.terminate()
        dumpcap.wait()
        server.stop()
    assert seen_live >= 2, "files were processed while dumpcap was writing"
    res = CliRunner().invoke(cli, ["-q", "watch", str(ring), "-o", str(out), "--once", "--final",
                                   "--decode-as", f"{port}=smtp", "--cache-dir", str(tmp_path / "cache")],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    s = pd.read_parquet(out / "sessions.parquet")
    assert len(s) == 5, s[["pcap_files", "failure_cause", "anomalies"]]
    assert set(s["failure_cause"]) == {"ok"} and not any("midstream" in list(a) for a in s["anomalies"])
    slow = s[s["helo"] == "slow.example.test"]
    assert len(slow) == 1 and len(slow.iloc[0]["pcap_files"]) >= 2
    assert watch.State.load(out).done == [p.name for p in watch.ring_files(ring)]
