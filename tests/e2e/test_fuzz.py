"""A small fixed-seed fuzz run (fuzz/fuzz_captures.py): the plugin and the CLI survive mutated captures.

The long runs are documented in fuzz/README.md.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

pytest.importorskip("scapy.all", reason="scapy is in the test extra: pip install -e .[test]")
sys.path.insert(0, str(ROOT / "fuzz"))
import fuzz_captures as fz  # noqa: E402

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
TSHARK_46 = Path(os.environ.get("SMTPDIAG_RELEASES", ROOT / ".tshark-releases")) / "4.6" / "bin" / "tshark"


def test_resegmentation_keeps_the_byte_streams():
    """The rewrite the fuzzer relies on: split segments carry the same bytes at consistent seq numbers."""
    src = ROOT / "fixtures" / "captures" / "ok.pcap"
    pkts, _lt = fz.load_packets(src)
    before = _streams(pkts)
    rng = random.Random(3)
    for seg in sorted(fz.segments(pkts), key=lambda s: -s.idx):
        pkts = fz.replace_segment(pkts, seg, fz.split_points(rng, seg.payload, 4))
    assert _streams(pkts) == before
    first = fz.segments(pkts)[0]  # the first payload of its direction: grow it by 5000 bytes
    pkts = fz.replace_segment(pkts, first, fz.split_points(rng, first.payload + b"X" * 5000, 0))
    assert _streams(pkts)[first.key] == first.payload + b"X" * 5000 + before[first.key][len(first.payload):]
    acks = [v[2] for v in map(fz.tcp_view, pkts) if v and v[0] == (first.key[2], first.key[3], first.key[0], first.key[1])]
    assert max(acks, key=lambda a: fz._seqdiff(a, first.seq)) == (first.seq + len(before[first.key]) + 5000 + 1) % 2**32


def _streams(pkts: list) -> dict:
    """Each direction's payload bytes, in sequence-number order."""
    out: dict = {}
    for v in filter(None, map(fz.tcp_view, pkts)):
        if v[3]:
            out.setdefault(v[0], []).append((v[1], v[3]))
    return {k: b"".join(p for _, p in sorted(segs, key=lambda x: fz._seqdiff(x[0], segs[0][0]))) for k, segs in out.items()}


def test_checks_catch_what_they_should():
    assert fz.csv_problems("a,b\n'=1+1,-3\n=1+1,2\n")
    assert not fz.csv_problems("a,b\n'=1+1,-3.5\n'-x,2\n")
    assert fz.terminal_problems("x \x1b[2J y\n")
    assert fz.terminal_problems("rtl \u202e\n")
    assert not fz.terminal_problems("plain\nlines \\x1b[2J\n")


def test_fuzz_system_tshark(tmp_path, tshark):
    """~40 mutated captures on the system tshark (4.0): zero failures."""
    cfg = fz.Config(tshark=tshark.path)
    s = fz.run(seed=1, count=40, cfg=cfg, jobs=2, out_dir=str(tmp_path / "failures"))
    assert s.captures == 40
    assert not s.failures, fz.report(s) + "\n" + s.line()


def test_fuzz_tshark_46_unprivileged(tmp_path):
    """tshark 4.6 aborts when a Lua error escapes: the strictest check of the plugin's error handling."""
    if not TSHARK_46.exists():
        pytest.skip(f"tshark 4.6 not unpacked at {TSHARK_46} (scripts/test fetches it as root)")
    run_as = "nobody" if IS_ROOT else None
    if run_as and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: cannot run tshark 4.6 unprivileged (it skips Lua as root)")
    cfg = fz.Config(tshark=str(TSHARK_46), run_as=run_as)
    probe = subprocess.run(fz._as_user(cfg, [str(TSHARK_46), "-X", f"lua_script:{fz.LUA}", "-G", "protocols"]),
                           capture_output=True, timeout=120)
    if probe.returncode != 0 or b"smtpdiag" not in probe.stdout:
        pytest.skip(f"tshark 4.6 is not runnable here with the plugin{' as nobody' if run_as else ''}: "
                    f"{probe.stderr.decode(errors='replace').strip()[-200:]}")
    s = fz.run(seed=46, count=12, cfg=cfg, jobs=2, out_dir=str(tmp_path / "failures"))
    assert s.captures == 12
    assert not s.failures, fz.report(s) + "\n" + s.line()


def test_fuzz_hostile_shapes(tmp_path, tshark):
    """Credential lines (split, ending in spaces, opening a mid-session capture) and out-of-order
    floods with holes: the plugin survives them and never shows the credential."""
    cfg = fz.Config(tshark=tshark.path)
    s = fz.run(seed=13, count=8, cfg=cfg, jobs=2, out_dir=str(tmp_path / "failures"), only=("credential", "oooflood"))
    assert s.captures == 8
    assert not s.failures, fz.report(s) + "\n" + s.line()
