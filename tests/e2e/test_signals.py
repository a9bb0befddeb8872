"""SIGINT/SIGTERM stop a run at once: every tshark child killed (its process group), temporary
files removed, exit 130/143; if smtpdiag itself is killed, the kernel kills tshark (PR_SET_PDEATHSIG)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT


def procs_reading(marker: str) -> list[int]:
    """Processes whose command line names `marker` (our captures' folder)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if marker in cmd and "tshark" in cmd:
            found.append(int(pid))
    return found


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """Two copies of a 60,000-packet capture (several seconds of tshark each)."""
    d = tmp_path_factory.mktemp("signals")
    subprocess.run([sys.executable, str(ROOT / "bench" / "make_capture.py"), "--packets", "60000",
                    "-o", str(d / "a.pcap")], check=True, capture_output=True)
    shutil.copy(d / "a.pcap", d / "b.pcap")
    return d


def start(big: Path, tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "SMTPDIAG_NO_CACHE": "1", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "pyshark_tools", "sessions", str(big / "a.pcap"),
                             str(big / "b.pcap"), "-j", "2", "--format", "csv", "-o", str(tmp_path / "out.csv"),
                             *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(procs_reading(str(big))) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.5)
    return proc, tmp


def gone(marker: str, within: float = 3.0) -> list[int]:
    deadline = time.monotonic() + within
    while procs_reading(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return procs_reading(marker)


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_kills_tshark_and_cleans_up(big, tmp_path, sig, code):
    proc, tmp = start(big, tmp_path)
    t0 = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - t0
    assert proc.returncode == code, err
    assert took < 5, f"exit took {took:.1f} s: it waited for the running tshark"
    assert b"Traceback" not in err and b"interrupted" in err
    assert gone(str(big)) == []
    assert [p.name for p in tmp.iterdir() if p.name.startswith("smtpdiag")] == []
    assert not (tmp_path / "out.csv").exists()


def test_killed_smtpdiag_takes_tshark_with_it(big, tmp_path):
    proc, _tmp = start(big, tmp_path)
    proc.kill()
    proc.communicate(timeout=30)
    assert gone(str(big)) == []
