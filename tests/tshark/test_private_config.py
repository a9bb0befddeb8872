"""Every toolkit tshark run has its own private, empty home and configuration: what the running user (or
anyone writing to a shared temporary folder) installed never loads, the plugin that ran is the one meant,
and what a run writes is readable by tshark's user alone."""
from __future__ import annotations

import io
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest

from conftest import FIXTURES, LUA, ROOT

import pyshark_tools as pt
from pyshark_tools import Tshark
from pyshark_tools.runner.options import configured

CAPTURES = ["auth_failed.pcap", "greeting_rejected.pcap", "dns_nxdomain.pcap"]
IS_ROOT = os.geteuid() == 0


def stale_home(home: Path) -> Path:
    """A home whose personal plugin folder holds an older, different smtpdiag.lua (its auth_failed renamed)."""
    plugins = home / ".local" / "lib" / "wireshark" / "plugins"
    plugins.mkdir(parents=True)
    text = LUA.read_text(encoding="utf-8").replace('SMTPDIAG_BUILD = "', 'SMTPDIAG_BUILD = "old', 1)
    (plugins / "smtpdiag.lua").write_text(text.replace('"auth_failed"', '"stale_verdict"'), encoding="utf-8")
    return plugins / "smtpdiag.lua"


def smtpdiag(*args: str, home: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "WIRESHARK_", "SMTPDIAG_"))}
    env.update(HOME=str(home), SMTPDIAG_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "pyshark_tools", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def causes(home: Path, cache: Path) -> list[str]:
    res = smtpdiag("sessions", *(str(FIXTURES / c) for c in CAPTURES), "--format", "csv", home=home, cache=cache)
    assert res.returncode == 0, res.stderr
    return list(pd.read_csv(io.StringIO(res.stdout)).failure_cause.fillna(""))


def test_stale_personal_plugin_never_changes_verdicts_and_doctor_reports_it(tmp_path: Path) -> None:
    clean, stale = tmp_path / "clean", tmp_path / "stale"
    clean.mkdir()
    planted = stale_home(stale)
    cache = tmp_path / "cache"
    assert "tshark" in shutil.which("tshark")  # the real one: Wireshark would load `planted` for this user
    loaded = subprocess.run(["tshark", "-G", "plugins"], capture_output=True, text=True,
                            env={**os.environ, "HOME": str(stale)}).stdout
    assert str(planted) in loaded
    # The stale home first: its verdicts must not be what the cache then hands the clean run.
    with_stale = causes(stale, cache)
    assert "auth_failed" in with_stale and "stale_verdict" not in with_stale
    assert causes(clean, cache) == with_stale == causes(clean, tmp_path / "cache2")

    doctor = smtpdiag("doctor", home=stale, cache=cache)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    line = next(l for l in doctor.stdout.splitlines() if str(planted) in l)
    assert line.startswith("warn") and "build old" in line and "smtpdiag lua install" in line
    same = smtpdiag("lua", "install", home=stale, cache=cache)
    assert same.returncode == 0, same.stderr
    after = smtpdiag("doctor", home=stale, cache=cache).stdout
    assert next(l for l in after.splitlines() if str(planted) in l).startswith("ok")


def test_plugin_that_ran_is_checked_against_the_one_meant(tmp_path: Path) -> None:
    """A plugin file whose declared build is not the one tshark's plugin writes in its summary: exit 1, one line."""
    other = tmp_path / "smtpdiag.lua"
    other.write_text('-- SMTPDIAG_BUILD = "0123456789ab"\n' + LUA.read_text(encoding="utf-8"), encoding="utf-8")
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "SMTPDIAG_LUA": str(other), "HOME": str(home), "SMTPDIAG_NO_CACHE": "1",
           "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "pyshark_tools", "sessions", str(FIXTURES / CAPTURES[0])],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 1, res.stdout
    assert "0123456789ab" in res.stderr and "smtpdiag doctor" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


needs_root = pytest.mark.skipif(not IS_ROOT or not shutil.which("setpriv"), reason="--run-as needs root and setpriv")


@pytest.fixture
def shared_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary folder every local user can write to (as /tmp is), made the process's temporary folder."""
    shared = Path(tempfile.mkdtemp(prefix="smtpdiag-test-shared-", dir="/tmp"))
    shared.chmod(0o1777)
    monkeypatch.setattr("tempfile.tempdir", str(shared))
    yield shared
    shutil.rmtree(shared, ignore_errors=True)


@needs_root
def test_run_as_gets_a_private_home_not_the_shared_temp_folder(shared_tmp: Path) -> None:
    """Another local user plants a Lua plugin where a dropped tshark with HOME=$TMPDIR would load it."""
    plugins = shared_tmp / ".local" / "lib" / "wireshark" / "plugins"
    plugins.mkdir(parents=True)
    marker = shared_tmp / "planted-plugin-ran"
    (plugins / "planted.lua").write_text(f'local f = io.open("{marker}", "w") f:write("ran") f:close()\n')
    for p in (shared_tmp / ".local", shared_tmp / ".local" / "lib", shared_tmp / ".local" / "lib" / "wireshark",
              plugins, plugins / "planted.lua"):
        p.chmod(0o755)
    capture = shared_tmp / CAPTURES[0]
    shutil.copyfile(FIXTURES / CAPTURES[0], capture)
    capture.chmod(0o644)
    nobody = pwd.getpwnam("nobody")
    ts = Tshark(shutil.which("tshark"), run_as="nobody")
    with configured(cache=False):
        df = pt.sessions(str(capture), tshark=ts)
    assert list(df.failure_cause) == ["auth_failed"]
    assert not marker.exists()

    with ts.private_run(["-v"]) as run:
        for d in (Path(run.work), Path(run.env["HOME"]), Path(run.work).parent):
            st = d.stat()
            assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (nobody.pw_uid, nobody.pw_gid, 0o700), d
            assert not any(d.iterdir()) or d == Path(run.work).parent
        assert Path(run.env["WIRESHARK_CONFIG_DIR"]).parent == Path(run.env["HOME"])
        assert Path(run.env["XDG_CONFIG_HOME"]).parent == Path(run.env["HOME"])
    assert not Path(run.work).parent.exists()
