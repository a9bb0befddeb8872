"""The project's own captures (fixtures/, made on loopback with real software): every labelled verdict."""
from __future__ import annotations

import csv

import pandas as pd
import pytest

from conftest import FIXTURES, LUA, ROOT

import pyshark_tools as pt

with open(ROOT / "fixtures" / "labels.tsv", encoding="utf-8") as _fh:
    LABELS = list(csv.DictReader(_fh, delimiter="\t"))

# Labels the plugin does not meet yet: (file, proto, stream) -> why. Strict expected failures, so a
# fix that meets one fails here until its entry goes (tests/test_issue20.py has the same cases).
PENDING: dict[tuple[str, str, int], str] = {}
# Captures holding a conversation that must give no row at all (only their labelled ones): file -> why.
NOT_MAIL = {
    "phantom_src25_refused.pcap": "a SYN from source port 25 to port 113 is not a mail conversation",
    "phantom_src25_unanswered.pcap": "unanswered SYNs from source port 25 to port 113 are not a mail conversation",
}


def _key(label: dict) -> tuple[str, str, int]:
    return label["file"], label["proto"], int(label["stream"])


def _pending(key, reasons: dict):
    return [pytest.mark.xfail(strict=True, reason=reasons[key])] if key in reasons else []


@pytest.fixture(scope="module")
def fixture_sessions(tshark) -> pd.DataFrame:
    files = sorted({row["file"] for row in LABELS})
    return pt.sessions([str(FIXTURES / f) for f in files], tshark=tshark)


def test_labels_cover_every_smtp_code():
    codes = {"ok", "no_response", "connection_refused", "no_banner", "greeting_rejected", "pregreet",
             "banner_masked", "command_masked", "starttls_stripped", "tls_failed", "auth_failed", "tempfail",
             "rejected", "bare_lf_terminator", "smuggling_attempt", "data_not_terminated", "data_timeout",
             "data_reset", "bdat_incomplete", "mtu_blackhole", "reset", "incomplete"}
    assert codes <= {row["failure_cause"] for row in LABELS}


def test_labels_cover_dns_and_mailbox_codes():
    codes = {"dns_nxdomain", "dns_servfail", "dns_refused", "dns_no_response", "dns_no_answer",
             "pop_auth_failed", "imap_auth_failed", "tls_failed", "connection_refused"}
    assert codes <= {row["failure_cause"] for row in LABELS if row["proto"] != "smtp"}


def _seen(fixture_sessions: pd.DataFrame) -> set[tuple[str, str, int]]:
    return set(zip(fixture_sessions.pcap_file.astype(str), fixture_sessions.proto.astype(str),
                   fixture_sessions.stream.astype(int)))


def test_every_fixture_session_is_labelled(fixture_sessions):
    assert _seen(fixture_sessions) == {_key(r) for r in LABELS}


@pytest.mark.parametrize("file", sorted(NOT_MAIL))
def test_capture_has_only_its_labelled_sessions(fixture_sessions, file):
    seen = {k for k in _seen(fixture_sessions) if k[0] == file}
    assert seen == {_key(r) for r in LABELS if r["file"] == file}, NOT_MAIL[file]


@pytest.mark.parametrize("label", [pytest.param(r, marks=_pending(_key(r), PENDING)) for r in LABELS],
                         ids=[f"{r['file']}#{r['proto']}{r['stream']}" for r in LABELS])
def test_fixture_verdict(fixture_sessions, label):
    rows = fixture_sessions[(fixture_sessions.pcap_file == label["file"])
                            & (fixture_sessions.proto == label["proto"])
                            & (fixture_sessions.stream == int(label["stream"]))]
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row.failure_cause == label["failure_cause"], row.detail
    want_dt = {"true": True, "false": False, "": None}[label["data_terminated"]]
    if want_dt is None:
        assert pd.isna(row.data_terminated), row.detail
    else:
        assert not pd.isna(row.data_terminated) and row.data_terminated == want_dt, row.detail
    if label["terminator"]:
        assert row.terminator == label["terminator"]
    else:
        assert pd.isna(row.terminator)
    wanted = {a for a in label["anomalies"].split(",") if a}
    assert wanted <= set(row.anomalies), row.anomalies
    assert row.first_frame >= 1 and row.last_frame >= row.first_frame


def _frames(tshark, cap: str, two_pass: bool, fields: list[str]) -> pd.DataFrame:
    args = ["-n", "-r", str(FIXTURES / cap), "-X", f"lua_script:{LUA}", "-T", "fields", "-E", "occurrence=f"]
    if two_pass:
        args += ["-2", "-Y", "tcp"]
    for f in ["frame.number", "tcp.stream", *fields]:
        args += ["-e", f]
    out = tshark.run(args).stdout.decode()
    rows = [l.split("\t") for l in out.splitlines()]
    return pd.DataFrame(rows, columns=["frame", "stream", *fields])


def test_one_pass_verdict_on_the_deciding_frame(tshark):
    df = _frames(tshark, "data_timeout.pcap", False, ["smtpdiag.failure_cause", "smtpdiag.reply_code"])
    decided = df[df["smtpdiag.failure_cause"] == "data_timeout"]
    assert len(decided) >= 1
    # decided at the 421, not before it
    first = int(decided.frame.iloc[0])
    reply421 = int(df[df["smtpdiag.reply_code"] == "421"].frame.iloc[0])
    assert first == reply421
    assert (df[df.frame.astype(int) < reply421]["smtpdiag.failure_cause"] != "data_timeout").all()


def test_two_pass_verdict_on_every_frame(tshark):
    df = _frames(tshark, "data_timeout.pcap", True, ["smtpdiag.failure_cause", "smtp.failure_cause"])
    assert (df["smtpdiag.failure_cause"] == "data_timeout").all()
    assert (df["smtp.failure_cause"] == "data_timeout").all()


def test_two_pass_capture_end_verdict(tshark):
    df = _frames(tshark, "data_not_terminated_capture_end.pcap", True,
                 ["smtpdiag.failure_cause", "smtp.data_terminated"])
    assert (df["smtpdiag.failure_cause"] == "data_not_terminated").all()
    assert set(df["smtp.data_terminated"]) <= {"0", "False"}


def test_expert_info_per_finding(tshark):
    res = tshark.run(["-n", "-2", "-Y", "tcp", "-r", str(FIXTURES / "bare_lf_terminator.pcap"),
                      "-X", f"lua_script:{LUA}", "-q", "-z", "expert"])
    out = res.stdout.decode()
    assert "bare_lf_terminator" in out and "data_timeout" in out


def test_retransmitted_terminator_not_scanned_twice(fixture_sessions):
    row = fixture_sessions[fixture_sessions.pcap_file == "ok_retransmit.pcap"].iloc[0]
    assert row.messages == 1 and row.failure_cause == "ok" and "smuggling_suspect" not in row.anomalies
