"""A tree nobody sees (a display filter, the packet list's columns) gets only the fields that are
referenced: every filter and custom column still finds what the full tree shows."""
from __future__ import annotations

import subprocess

import pytest

from conftest import FIXTURES, LUA
from tshark.test_matrix import VERSIONS, readable_by_everyone, release

FIELDS = ["smtpdiag.role", "smtpdiag.reply_code", "smtpdiag.command", "smtpdiag.session_end", "smtpdiag.duration",
          "smtpdiag.txn.mailfrom", "smtpdiag.terminator", "smtpdiag.reply_latency", "smtp.failure_cause",
          "smtp.data_terminated", "smtpdiag.stream", "smtpdiag.proto", "smtpdiag.dns.query"]
CAPTURES = ["data_timeout.pcap", "ok_multi.pcap", "dns_mx_ok.pcap", "pregreet.pcap"]


def run(tshark, capture: str, *args: str) -> str:
    with tshark.private_run(["-n", "-2", "-r", str(FIXTURES / capture), "-X", f"lua_script:{LUA}", *args]) as r:
        res = subprocess.run(r.command, env=r.env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout


def shown(tshark, capture: str, field: str) -> dict[int, str]:
    """Each frame's values of field in the full tree (-T fields)."""
    out = run(tshark, capture, "-Y", "frame", "-T", "fields", "-e", "frame.number", "-e", field)
    return {int(n): v for n, v in (line.split("\t", 1) for line in out.splitlines())}


@pytest.mark.parametrize("capture", CAPTURES)
def test_a_filter_finds_every_frame_the_full_tree_has(tshark, capture):
    present = 0
    for field in FIELDS:
        full = {n for n, v in shown(tshark, capture, field).items() if v}
        listed = run(tshark, capture, "-Y", field, "-o", "gui.column.format:\"No.\",\"%m\"")
        assert {int(x) for x in listed.split()} == full, field
        present += bool(full)
    assert present >= 6                             # most of the fields are on some frame of it


@pytest.mark.parametrize("capture", CAPTURES)
def test_a_custom_column_shows_what_the_full_tree_has(tshark, capture):
    present = 0
    for field in ("smtp.failure_cause", "smtpdiag.detail", "smtpdiag.role", "smtpdiag.command", "smtpdiag.failure_cause"):
        full = shown(tshark, capture, field)
        out = run(tshark, capture, "-Y", "frame", "-o", f"gui.column.format:\"No.\",\"%m\",\"X\",\"%Cus:{field}:0:R\"")
        listed = {}
        for line in out.splitlines():
            n, _, v = line.strip().partition(" ")
            listed[int(n)] = v.strip()
        assert listed.keys() == full.keys()
        present += any(full.values())
        bad = [(n, listed[n], full[n]) for n in full if listed[n] != full[n].replace("\t", ",")]
        assert not bad, (field, bad[:3])
    assert present >= 2


def test_with_no_field_of_the_plugin_asked_for_expert_infos_and_info_stay(tshark):
    listed = run(tshark, "data_timeout.pcap", "-Y", '_ws.expert.message contains "data_timeout"',
                 "-o", "gui.column.format:\"No.\",\"%m\"")
    assert listed.split() == ["23"]                  # the 421 that ended the wait
    lines = run(tshark, "data_timeout.pcap", "-Y", "tcp").splitlines()
    assert [line.split()[0] for line in lines if line.endswith("[data_timeout]")] == ["23"]


@pytest.mark.parametrize("version", VERSIONS)
def test_the_same_on(version):
    ts = release(version)
    if ts.run_as and not (readable_by_everyone(LUA) and readable_by_everyone(FIXTURES)):
        pytest.skip("the checkout is not readable by the unprivileged user tshark runs as")
    test_a_filter_finds_every_frame_the_full_tree_has(ts, "data_timeout.pcap")
    test_a_custom_column_shows_what_the_full_tree_has(ts, "data_timeout.pcap")
    test_with_no_field_of_the_plugin_asked_for_expert_infos_and_info_stay(ts)
