"""The package as users install it: scripts/check-install builds the sdist and the wheel from it, installs the
wheel into a fresh venv outside the checkout and runs doctor, lua install, sessions, report and pt.sessions()
there; here its tables must equal the checkout's, row for row."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from conftest import FIXTURES, ROOT

import pyshark_tools as pt

COLUMNS = ["pcap_file", "stream", "first_frame", "proto", "failure_cause"]


@pytest.mark.slow
def test_wheel_installed_outside_the_checkout_gives_the_checkouts_tables(tmp_path: Path) -> None:
    res = subprocess.run([str(ROOT / "scripts" / "check-install"), str(tmp_path)], capture_output=True,
                         text=True, timeout=1800)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    wheel = (tmp_path / "wheel-files.txt").read_text()
    for packaged in ("pyshark_tools/lua/smtpdiag.lua", "pyshark_tools/lua/profile/smtpdiag/preferences",
                     "pyshark_tools/lua/profile/smtpdiag/colorfilters", "pyshark_tools/notebooks/investigate.ipynb",
                     "licenses/LICENSE"):
        assert packaged in wheel, packaged
    sdist = (tmp_path / "sdist-files.txt").read_text()
    for source in ("lua/build.py", "lua/smtpdiag/main.lua", "lua/profile/smtpdiag/preferences",
                   "notebooks/investigate.ipynb", "LICENSE", "setup.py"):
        assert f"/{source}\n" in sdist, source
    here = verdicts(pt.sessions(str(FIXTURES)))
    assert len(here) > 50
    for name in ("sessions.csv", "api.csv"):
        assert verdicts(pd.read_csv(tmp_path / name, dtype=str, keep_default_na=False)) == here, name


def verdicts(df: pd.DataFrame) -> list[tuple[str, ...]]:
    """Each session's place and verdict, as text, in a fixed order."""
    return sorted(zip(*(df[c].astype("string").fillna("").astype(str) for c in COLUMNS)))
