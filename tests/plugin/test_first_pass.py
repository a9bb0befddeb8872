"""A display filter that runs on the first pass (one-pass tshark, the GUI's load) is never a silent
half answer: one-pass tshark with a tree says so on stderr; two-pass and batch runs say nothing.
(The GUI applies such a filter again once the load is done: tests/gui.)"""
from __future__ import annotations

import subprocess

from conftest import FIXTURES, LUA

NOTICE = "smtpdiag: this run read the capture once"
FILTER = 'smtp.failure_cause != "ok"'


def stderr_and_frames(tshark, *args: str) -> tuple[str, int]:
    res = subprocess.run([tshark.path, "-n", "-r", str(FIXTURES / "data_timeout.pcap"), "-X", f"lua_script:{LUA}",
                          *args, "-T", "fields", "-e", "frame.number"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stderr, len(res.stdout.split())


def test_one_pass_filter_on_verdicts_is_told_it_saw_a_half_answer(tshark):
    err, one = stderr_and_frames(tshark, "-Y", FILTER)
    _, two = stderr_and_frames(tshark, "-2", "-Y", FILTER)
    assert one < two == 26           # what the first pass could see: why the notice is needed
    assert NOTICE in err and "-2" in err


def test_two_pass_and_batch_runs_print_no_notice(tshark, tmp_path):
    err, _ = stderr_and_frames(tshark, "-2", "-Y", FILTER)
    assert NOTICE not in err
    err, _ = stderr_and_frames(tshark, "-o", f"smtpdiag.summary_file:{tmp_path / 's.tsv'}", "-Y", "frame")
    assert NOTICE not in err and (tmp_path / "s.tsv").exists()
