"""The plugin's Lua unit tests (tests/lua/test_*.lua), each run inside tshark as Wireshark runs
its own: `tshark -r EMPTY.pcap -X lua_script:tests/lua/test_NAME.lua`. The system tshark (4.0)
runs them as the current user, 4.4 and 4.6 (when unpacked in .tshark-releases) as nobody when
the tests run as root, since those skip Lua scripts for root."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RELEASES = Path(os.environ.get("SMTPDIAG_RELEASES", ROOT / ".tshark-releases"))
LUA_TESTS = sorted(HERE.glob("test_*.lua"))
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
# An empty pcap (little-endian header, Ethernet): tshark runs the scripts, then reads no packet.
EMPTY_PCAP = bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000")


def readable_by_everyone(path: Path) -> bool:
    for p in [path, *path.parents]:
        if not p.stat().st_mode & (0o001 if p.is_dir() else 0o004):
            return False
    return True


@pytest.fixture(scope="module")
def workdir():
    """A folder nobody can read: the empty capture, and HOME (so no personal plugin loads)."""
    d = Path(tempfile.mkdtemp(prefix="smtpdiag-lua-"))
    os.chmod(d, 0o755)
    (d / "empty.pcap").write_bytes(EMPTY_PCAP)
    os.chmod(d / "empty.pcap", 0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def tshark_for(version: str) -> list[str]:
    """The command prefix running that tshark so that it loads Lua scripts (skips when absent)."""
    if version == "system":
        exe = shutil.which("tshark")
        if not exe:
            pytest.skip("no tshark on PATH")
        return [exe]
    exe = RELEASES / version / "bin" / "tshark"
    if not exe.exists():
        pytest.skip(f"tshark {version} not unpacked at {exe}")
    if not IS_ROOT:
        return [str(exe)]
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: cannot run tshark 4.4+ unprivileged")
    if not readable_by_everyone(HERE / "testlib.lua"):
        pytest.skip(f"{HERE} is not readable by nobody")
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", str(exe)]


@pytest.mark.parametrize("version", ["system", "4.4", "4.6"])
@pytest.mark.parametrize("script", LUA_TESTS, ids=[p.stem for p in LUA_TESTS])
def test_lua_unit(script: Path, version: str, workdir: Path):
    cmd = tshark_for(version)
    env = dict(os.environ, HOME=str(workdir), XDG_CONFIG_HOME=str(workdir / "config"))
    res = subprocess.run([*cmd, "-n", "-r", str(workdir / "empty.pcap"), "-X", f"lua_script:{script}"],
                         capture_output=True, text=True, env=env, timeout=120)
    if "All tests passed!" in res.stdout:
        return
    failed = [l for l in res.stdout.splitlines() if l.startswith("FAIL")]
    summary = res.stdout.partition("===== Test Results =====")[2].strip()
    errors = [l for l in res.stderr.splitlines() if l.strip() and not l.startswith("Running as user")]
    pytest.fail(f"{script.name} in tshark {version} (exit {res.returncode}):\n"
                + "\n".join(failed + ([summary] if summary else []) + errors[-10:]), pytrace=False)


def test_every_lua_test_is_collected():
    assert {p.name for p in LUA_TESTS} >= {
        "test_terminator.lua", "test_replies.lua", "test_tls.lua", "test_base64.lua",
        "test_verdict.lua", "test_modules.lua", "test_build.lua"}
