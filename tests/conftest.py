"""Shared fixtures: the real tshark, the real plugin, the real captures."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import tempfile
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = (ROOT.parent / "shared" / "corpus" / "zeek").resolve()
FIXTURES = ROOT / "fixtures" / "captures"
LUA = ROOT / "lua" / "smtpdiag.lua"
# tshark 4.4 and 4.6 (Lua 5.4) as scripts/test unpacks them: every test of those versions takes them from here.
RELEASES = Path(os.environ.get("SMTPDIAG_RELEASES", ROOT / ".tshark-releases"))
RELEASE_VERSIONS = ("4.4", "4.6")
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def release_tshark(version: str) -> Path:
    """Where scripts/test unpacks tshark `version` (4.4 or 4.6)."""
    return RELEASES / version / "bin" / "tshark"


def releases_fetched() -> bool:
    return all(os.access(release_tshark(v), os.X_OK) for v in RELEASE_VERSIONS)


_RELEASE_TEST = re.compile(r"(?<![\d.])4\.[46](?![\d])")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """As root with tshark 4.4 and 4.6 unpacked (what scripts/test does), a 4.4/4.6 test that skips fails:
    a green run must not hide that those versions were never tried."""
    outcome = yield
    rep = outcome.get_result()
    if not rep.skipped or not IS_ROOT or not releases_fetched() or hasattr(rep, "wasxfail"):
        return
    reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
    params = getattr(getattr(item, "callspec", None), "id", "")
    if item.get_closest_marker("matrix") or _RELEASE_TEST.search(params) or _RELEASE_TEST.search(reason):
        rep.outcome = "failed"
        rep.longrepr = (f"{item.nodeid} skipped although tshark {', '.join(RELEASE_VERSIONS)} are unpacked in "
                        f"{RELEASES} and this run is root: {reason}")


# Every process this test run starts inherits this variable: what is left of them at the end is ours,
# whatever other test runs share the machine. Temporary files go to a folder of this run's own.
RUN_MARK = "SMTPDIAG_TEST_RUN"
CHILD_NAMES = ("tshark", "dumpcap", "editcap", "mergecap", "setpriv")


def pytest_configure(config):
    if os.environ.get(RUN_MARK):
        return                                      # a pytest started by a test: its parent's check covers it
    os.environ[RUN_MARK] = uuid.uuid4().hex
    tmp = tempfile.mkdtemp(prefix="smtpdiag-tests-")
    os.chmod(tmp, 0o755)                            # tshark may run as another user (--run-as nobody)
    os.environ["TMPDIR"] = tmp
    tempfile.tempdir = None
    config._smtpdiag_tmp = tmp


def pytest_unconfigure(config):
    tmp = getattr(config, "_smtpdiag_tmp", None)
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)


def our_processes(names=CHILD_NAMES) -> list[tuple[int, str]]:
    """(pid, name) of the live processes carrying this run's mark."""
    mark = f"{RUN_MARK}={os.environ.get(RUN_MARK, '')}".encode()
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            if comm in names and mark in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                found.append((int(pid), comm))
        except OSError:
            continue
    return found


def left_behind(wait: float = 5.0) -> list[str]:
    """What this run left: its tshark-like processes still running (killed now) and smtpdiag-* temporary files."""
    deadline = time.monotonic() + wait
    while our_processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    left = our_processes()
    for pid, _ in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    tmp = Path(tempfile.gettempdir())
    files = sorted(p.name for p in tmp.iterdir() if p.name.startswith("smtpdiag-"))
    return [f"process {pid} ({name}) still running" for pid, name in left] + [f"{tmp / f} left behind" for f in files]


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind():
    """No test leaves a tshark/dumpcap (or editcap, mergecap, setpriv) running, nor a smtpdiag-* temporary file."""
    yield
    problems = left_behind() if os.path.isdir("/proc") else []
    if problems:
        pytest.fail("tests left things behind: " + "; ".join(problems), pytrace=False)


def pytest_sessionstart(session):
    """Build lua/smtpdiag.lua from lua/smtpdiag/ first: no test runs a stale plugin."""
    spec = importlib.util.spec_from_file_location("smtpdiag_lua_build", ROOT / "lua" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    build.build(LUA)


def corpus_file(name: str) -> Path:
    p = CORPUS / name
    if not p.exists():
        pytest.skip(f"corpus capture {name} not present at {CORPUS}")
    return p


@pytest.fixture(scope="session")
def tshark():
    from pyshark_tools import Tshark

    return Tshark.discover()


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"no corpus at {CORPUS}")
    return CORPUS
