"""docs/wireshark.md's cause tables are written from pyshark_tools/report/causes.py: the committed doc matches."""
from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

from pyshark_tools.report.causes import CAUSES

SCRIPT = ROOT / "scripts" / "cause_table.py"
DOC = ROOT / "docs" / "wireshark.md"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_the_committed_doc_matches_causes_py():
    res = _run("--check")
    assert res.returncode == 0, res.stderr
    doc = DOC.read_text(encoding="utf-8")
    for code, cause in CAUSES.items():
        assert f"| `{code}` | {cause.meaning.replace('|', chr(92) + '|')} |" in doc


def test_a_doc_that_drifted_is_caught_and_rewritten(tmp_path):
    drifted = tmp_path / "wireshark.md"
    original = DOC.read_text(encoding="utf-8")
    drifted.write_text(original.replace("| `tempfail` | ", "| `tempfail` | an edit by hand; "), encoding="utf-8")
    res = _run("--check", str(drifted))
    assert res.returncode == 1 and "differ" in res.stderr
    assert _run(str(drifted)).returncode == 0
    assert drifted.read_text(encoding="utf-8") == original
