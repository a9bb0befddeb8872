"""conftest.py's rule: as root, with tshark 4.4 and 4.6 unpacked, a 4.4/4.6 test that skips fails the run."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import IS_ROOT, ROOT

SAMPLE = '''
import pytest

@pytest.mark.parametrize("version", ["4.0", "4.4"])
def test_release(version):
    if version != "4.0":
        pytest.skip(f"tshark {version} not installed")

def test_skip_reason_names_it():
    pytest.skip("tshark 4.6 is not runnable here")

def test_other_skip():
    pytest.skip("no corpus here")
'''


def run_sample(tmp_path: Path, releases: Path) -> dict[str, int]:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {**os.environ, "SMTPDIAG_RELEASES": str(releases), "PYTHONPATH": str(ROOT / "tests")}
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
                          "--rootdir", str(tmp_path), str(tmp_path / "test_sample.py")],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    last = res.stdout.strip().splitlines()[-1]
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped)", last)}


@pytest.mark.skipif(not IS_ROOT, reason="the rule holds for root runs only")
def test_skipped_release_test_fails_when_releases_are_unpacked(tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    for v in ("4.4", "4.6"):
        exe = releases / v / "bin" / "tshark"
        exe.parent.mkdir(parents=True)
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    assert run_sample(tmp_path, releases) == {"passed": 1, "failed": 2, "skipped": 1}
    (releases / "4.6" / "bin" / "tshark").unlink()
    assert run_sample(tmp_path, releases) == {"passed": 1, "skipped": 3}
