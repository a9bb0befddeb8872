"""The session-scoped check in conftest.py sees a tshark this run left running and a smtpdiag-* temporary file."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import left_behind, our_processes


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_left_behind_sees_a_running_tshark_and_a_temp_file(tmp_path):
    fifo = tmp_path / "never.pcap"
    os.mkfifo(fifo)                                   # nobody writes it: tshark waits forever
    proc = subprocess.Popen([shutil.which("tshark") or "tshark", "-r", str(fifo)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    leftover = Path(tempfile.mkdtemp(prefix="smtpdiag-"))
    try:
        deadline = time.monotonic() + 10
        while not any(pid == proc.pid for pid, _ in our_processes()) and time.monotonic() < deadline:
            time.sleep(0.05)
        problems = left_behind(wait=0.2)
        assert any(f"process {proc.pid} (tshark)" in p for p in problems), problems
        assert any(f"{leftover.name} left behind" in p for p in problems), problems
        assert proc.wait(timeout=10) != 0             # killed by the check
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(leftover)
    assert left_behind(wait=0) == []
