"""The real Wireshark GUI (4.0, Qt, on a virtual X display, as an unprivileged user with the plugin
in its personal plugins folder): a display filter given when the file is opened (`wireshark -r f
-Y ...`) shows, once the load is done, exactly the frames the same filter shows after a two-pass
read; never the first pass's half answer.

A count probe (count_probe.lua, a tap with the same filter) records how many frames matched on
each pass: the first pass (what the filter saw while the file loaded) and the pass the plugin
starts when the load is done.
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import FIXTURES, LUA

HERE = Path(__file__).resolve().parent
USER = "nobody"

CASES = [
    ("data_timeout.pcap", 'smtp.failure_cause != "ok"'),
    ("data_timeout.pcap", "smtpdiag.session_end"),
    ("rejected.pcap", 'smtpdiag.failure_cause == "rejected"'),
    ("ok_multi.pcap", "smtpdiag.session_end"),
]


def gui_available() -> str:
    for tool in ("wireshark", "Xvfb", "setpriv"):
        if not shutil.which(tool):
            return f"{tool} not installed (bench/gui-setup installs the GUI, Xvfb and xdotool)"
    if os.geteuid() != 0:
        return "needs root to run Wireshark as an unprivileged user"
    return ""


@pytest.fixture(scope="module")
def display():
    why = gui_available()
    if why:
        pytest.skip(why)
    n = 90 + os.getpid() % 9
    proc = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    yield f":{n}"
    proc.terminate()
    proc.wait(10)


def frames_two_pass(capture: Path, flt: str) -> int:
    res = subprocess.run(["tshark", "-n", "-2", "-r", str(capture), "-X", f"lua_script:{LUA}", "-Y", flt,
                          "-T", "fields", "-e", "frame.number"], capture_output=True, text=True, check=True)
    return len(res.stdout.split())


def gui_counts(display: str, capture: Path, flt: str, timeout: float = 60.0) -> list[int]:
    """Frames matching `flt` on each pass of the GUI opened with `-r capture -Y flt`."""
    pw = pwd.getpwnam(USER)
    home = Path(tempfile.mkdtemp(prefix="smtpdiag-gui-"))
    try:
        plugins = home / ".local" / "lib" / "wireshark" / "plugins"
        plugins.mkdir(parents=True)
        shutil.copyfile(LUA, plugins / "smtpdiag.lua")
        shutil.copyfile(HERE / "count_probe.lua", plugins / "zz_count_probe.lua")
        cap = home / capture.name
        shutil.copyfile(capture, cap)
        out = home / "counts"
        for p in [home, *home.rglob("*")]:
            os.chown(p, pw.pw_uid, pw.pw_gid)
        env = {"HOME": str(home), "DISPLAY": display, "XDG_RUNTIME_DIR": str(home), "PATH": "/usr/bin:/bin",
               "COUNT_FILTER": flt, "COUNT_OUT": str(out)}
        cmd = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", "env", "-i",
               *(f"{k}={v}" for k, v in env.items()), "wireshark", "-r", str(cap), "-Y", flt]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + timeout
            counts: list[int] = []
            while time.time() < deadline:
                time.sleep(0.5)
                counts = [int(line.split()[1]) for line in out.read_text().splitlines()] if out.exists() else []
                if len(counts) >= 2 or (counts and time.time() > deadline - timeout / 2):
                    time.sleep(2.0)       # a pass the plugin starts would come now
                    break
            return [int(line.split()[1]) for line in out.read_text().splitlines()] if out.exists() else []
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize("capture,flt", CASES, ids=[f"{c}:{f}" for c, f in CASES])
def test_filter_given_at_open_shows_the_complete_answer(display, capture, flt):
    want = frames_two_pass(FIXTURES / capture, flt)
    counts = gui_counts(display, FIXTURES / capture, flt)
    assert counts, "the GUI drew no pass"
    assert want > 0 and counts[-1] == want, (counts, want)
    assert counts[0] < want      # what the filter saw while the file loaded: why the plugin filters again
