"""Every Wireshark users have: tshark 4.4 and 4.6 (Lua 5.4) give the 4.0 verdicts (Lua 5.2)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT

import pyshark_tools as pt
from pyshark_tools.errors import PluginNotLoaded

RELEASES = Path(os.environ.get("SMTPDIAG_RELEASES", ROOT / ".tshark-releases"))
VERSIONS = ["4.4", "4.6"]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def release(version: str) -> pt.Tshark:
    exe = RELEASES / version / "bin" / "tshark"
    if not exe.exists():
        pytest.skip(f"tshark {version} not unpacked at {exe} (scripts/test fetches it with "
                    f"../shared/tools/tshark-release when run as root with the Debian mirror reachable)")
    if IS_ROOT and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: cannot run tshark 4.4+ unprivileged")
    return pt.Tshark(str(exe), run_as="nobody" if IS_ROOT else None)


def readable_by_everyone(path: Path) -> bool:
    p = path.resolve()
    for parent in [p, *p.parents]:
        mode = parent.stat().st_mode
        if parent.is_dir() and not mode & 0o001:
            return False
    return bool(p.stat().st_mode & 0o004) if p.is_file() else True


# tcp.stream differs between versions (4.4+ starts a new stream for a SYN after a RST on the same
# ports); the session's first frame does not.
KEY = ["pcap_file", "proto", "first_frame"]
VERDICT = ["failure_cause", "data_terminated", "terminator", "messages", "helo", "last_reply", "tls"]


def verdicts(df: pd.DataFrame) -> pd.DataFrame:
    out = df[KEY + VERDICT + ["anomalies"]].copy()
    out["pcap_file"] = out["pcap_file"].astype(str)
    out["proto"] = out["proto"].astype(str)
    out["anomalies"] = out["anomalies"].map(lambda a: ",".join(sorted(a)))
    for c in ("failure_cause", "terminator"):
        out[c] = out[c].astype("string")
    return out.sort_values(KEY).reset_index(drop=True)


@pytest.fixture(scope="module")
def system_corpus(tshark, corpus_dir):
    return verdicts(pt.sessions(str(corpus_dir), tshark=tshark))


@pytest.mark.parametrize("version", VERSIONS)
def test_same_verdicts_as_system_tshark(version, system_corpus, corpus_dir):
    ts = release(version)
    if ts.run_as and not readable_by_everyone(corpus_dir):
        pytest.skip(f"{corpus_dir} is not readable by nobody")
    assert ts.version[:2] == tuple(int(x) for x in version.split("."))
    theirs = verdicts(pt.sessions(str(corpus_dir), tshark=ts))
    pd.testing.assert_frame_equal(theirs, system_corpus, check_dtype=False)


@pytest.mark.parametrize("version", VERSIONS)
def test_root_without_privilege_drop_fails_loudly(version):
    if not IS_ROOT:
        pytest.skip("only root triggers tshark 4.4+'s silent skipping of Lua scripts")
    ts = release(version)
    as_root = pt.Tshark(ts.path)
    with pytest.raises(PluginNotLoaded, match="root"):
        as_root.check_plugin()
