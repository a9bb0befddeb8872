"""One bad file never sinks the run: a far-future timestamp, a name that is not UTF-8, a damaged
file beside good ones; a malformed watch state is one line; watch keeps going."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import FIXTURES

from pyshark_tools import watch
from pyshark_tools.cli import cli
from pyshark_tools.runner.options import configured

scapy = pytest.importorskip("scapy.all", reason="scapy is in the test extra: pip install -e .[test]")
from test_output_safety import conversation  # noqa: E402

YEAR_5138 = 100_000_000_000.0           # seconds since 1970: beyond pandas' datetime64[ns] (2262)
BAD_NAME = os.fsdecode(b"x\xff\xfe.pcap")


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def future(tmp_path_factory) -> Path:
    """A session whose packets after the greeting are stamped in the year 5138 (pcapng: 64-bit times)."""
    pkts = conversation([("s", b"220 mx.example.test ESMTP\r\n"), ("c", b"EHLO c.example.test\r\n"),
                         ("s", b"250 ok\r\n"), ("c", b"QUIT\r\n"), ("s", b"221 Bye\r\n")])
    for i, p in enumerate(pkts):
        if i >= 5:
            p.time = YEAR_5138 + i
    path = tmp_path_factory.mktemp("future") / "future.pcapng"
    scapy.wrpcapng(str(path), pkts)
    return path


def test_far_future_timestamp_is_nat_with_an_anomaly(future, tmp_path):
    res = invoke("sessions", str(future), str(FIXTURES / "ok.pcap"), "--format", "json", "--no-cache")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["pcap_file"] for r in rows] == ["future.pcapng", "ok.pcap"]
    assert rows[0]["duration"] is None and "timestamp_out_of_range" in rows[0]["anomalies"]
    assert rows[1]["duration"] is not None and rows[1]["anomalies"] == []
    res = invoke("packets", str(future), "-e", "frame.number", "-e", "frame.time_epoch", "--format", "json")
    assert res.exit_code == 0, res.output
    times = {r["frame.number"]: r["frame.time_epoch"] for r in json.loads(res.stdout)}
    assert times[3] is not None and times[16] is None
    out = tmp_path / "t.parquet"
    assert invoke("transactions", str(future), "--format", "parquet", "-o", str(out)).exit_code == 0


def test_watch_survives_a_far_future_file(future, tmp_path, tshark):
    ring = tmp_path / "ring"
    ring.mkdir()
    shutil.copy(FIXTURES / "ok.pcap", ring / "a.pcap")
    shutil.copy(future, ring / "b.pcapng")
    with configured(cache_dir=tmp_path / "cache"):
        cycle = watch.process(ring, tmp_path / "out", tshark, final=True)
    assert sorted(cycle.new) == ["a.pcap", "b.pcapng"] and cycle.sessions == 2


@pytest.fixture
def odd_dir(tmp_path) -> Path:
    d = tmp_path / "caps"
    d.mkdir()
    shutil.copy(FIXTURES / "ok.pcap", os.fsencode(d) + b"/x\xff\xfe.pcap")
    shutil.copy(FIXTURES / "no_banner.pcap", d / "good.pcap")
    return d


@pytest.mark.parametrize("command", ["sessions", "transactions", "summary", "packets"])
def test_name_not_utf8_shown_with_escapes(odd_dir, tmp_path, command):
    res = invoke(command, str(odd_dir), "--format", "csv")
    assert res.exit_code == 0, res.output
    if command != "summary":
        assert "x\\xff\\xfe.pcap" in res.stdout
    if command in ("sessions", "packets"):
        assert "good.pcap" in res.stdout
    out = tmp_path / "t.parquet"
    assert invoke(command, str(odd_dir), "--format", "parquet", "-o", str(out)).exit_code == 0


def test_name_not_utf8_in_report_and_plot(odd_dir, tmp_path):
    res = invoke("report", str(odd_dir), "-o", str(tmp_path / "rep"))
    assert res.exit_code == 0, res.output
    assert invoke("plot", "causes", str(odd_dir), "-o", str(tmp_path / "c.svg")).exit_code == 0


def test_damaged_file_named_exit_4_no_traceback(odd_dir):
    (odd_dir / "broken.pcap").write_bytes(b"\xd4\xc3\xb2\xa1" + os.urandom(200))
    res = invoke("sessions", str(odd_dir), "--format", "csv")
    assert res.exit_code == 4, res.output
    assert "broken.pcap" in res.stderr and "Traceback" not in res.output
    assert "good.pcap" in res.stdout and "x\\xff\\xfe.pcap" in res.stdout


@pytest.mark.parametrize("state", ["{not json", "[]", '{"done": 5}', '{"done": [1, 2]}', '{"unsettled": []}'])
def test_malformed_watch_state_is_one_line(tmp_path, state):
    ring, out = tmp_path / "ring", tmp_path / "out"
    ring.mkdir()
    out.mkdir()
    shutil.copy(FIXTURES / "ok.pcap", ring / "a.pcap")
    (out / "watch-state.json").write_text(state)
    res = invoke("watch", str(ring), "-o", str(out), "--final")
    assert res.exit_code == 1, res.output
    assert "malformed watch state" in res.stderr and "Traceback" not in res.output
    assert len(res.stderr.strip().splitlines()) == 1
    assert (out / "watch-state.json").read_text() == state       # left as it was


def test_watch_keeps_going_when_a_pass_fails(tmp_path, tshark, monkeypatch):
    calls = []

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("disk hiccup")
        return watch.Cycle()
    monkeypatch.setattr(watch, "process", flaky)
    log = watch.watch(tmp_path, tmp_path / "out", tshark, interval=0, stop=lambda: len(calls) >= 2)
    assert len(calls) == 2 and "disk hiccup" in next(iter(log.failed.values()))


# -- no hang, bounded work -------------------------------------------------------------------

def test_fifo_in_a_folder_is_skipped_with_a_warning(tmp_path):
    d = tmp_path / "caps"
    d.mkdir()
    shutil.copy(FIXTURES / "ok.pcap", d / "ok.pcap")
    os.mkfifo(d / "pipe.pcap")            # nobody writes: opening it for reading would wait forever
    res = subprocess_cli("sessions", str(d), "--format", "csv", timeout=120)
    assert res.returncode == 0, res.stderr
    assert "ok.pcap" in res.stdout and "pipe.pcap" not in res.stdout
    assert "pipe.pcap: not a regular file" in res.stderr and "warning" in res.stderr
    # A FIFO named on the command line is an input like `-` (tests/e2e/test_cli_io.py): read as a pipe.


def subprocess_cli(*args: str, timeout: float, env: dict | None = None):
    """The CLI in its own process, so that a hang is a timeout here, not a stuck test run."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "pyshark_tools", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """A valid pcap header, then 300 MB of zeros: 300 KB compressed."""
    import gzip

    path = tmp_path_factory.mktemp("bomb") / "bomb.pcap.gz"
    with gzip.open(path, "wb", compresslevel=9) as g:
        g.write((FIXTURES / "ok.pcap").read_bytes()[:24])
        for _ in range(300):
            g.write(bytes(1 << 20))
    return path


@pytest.mark.parametrize("how", ["option", "env"])
def test_gzip_bomb_is_refused_as_damaged(bomb, tmp_path, how):
    args = ["sessions", str(bomb), str(FIXTURES / "ok.pcap"), "--format", "csv", "--no-cache"]
    env = {"SMTPDIAG_MAX_DECOMPRESSED": "50M"} if how == "env" else {}
    res = subprocess_cli(*args, *(["--max-decompressed", "50M"] if how == "option" else []), timeout=120, env=env)
    assert res.returncode == 4, res.stderr
    assert "bomb.pcap.gz" in res.stderr and "more than 52,428,800 bytes" in res.stderr and "damaged" in res.stderr
    assert "ok.pcap" in res.stdout and "Traceback" not in res.stderr


def test_gzip_within_the_limit_is_read(tmp_path):
    import gzip

    gz = tmp_path / "ok.pcap.gz"
    gz.write_bytes(gzip.compress((FIXTURES / "ok.pcap").read_bytes()))
    res = invoke("sessions", str(gz), "--format", "csv", "--max-decompressed", "1M", "--no-cache")
    assert res.exit_code == 0 and "ok.pcap.gz" in res.stdout
    assert invoke("sessions", str(gz), "--max-decompressed", "lots").exit_code == 2     # a usage error


def test_gzip_with_bad_inner_header_names_the_file(tmp_path):
    import gzip

    gz = tmp_path / "inner.pcap.gz"
    head = bytearray((FIXTURES / "ok.pcap").read_bytes())
    head[20:24] = b"\x00\x00\xe1\x03"               # the link type's reserved bits set: tshark refuses it
    gz.write_bytes(gzip.compress(bytes(head)))
    res = invoke("sessions", str(gz), str(FIXTURES / "ok.pcap"), "--format", "csv", "--no-cache")
    assert res.exit_code == 4, res.output
    assert "inner.pcap.gz" in res.stderr and "Traceback" not in res.output
