"""Real-world captures nobody on this project made: the verdicts a careful analyst would reach."""
from __future__ import annotations

import subprocess

import pandas as pd
import pytest

from conftest import CORPUS, LUA, corpus_file

import pyshark_tools as pt

# (capture, tcp.stream) -> (failure_cause, data_terminated, anomalies that must be present)
EXPECTED = {
    ("smtp.pcap", 0): ("ok", True, set()),                      # Exim, AUTH LOGIN, 14.5 KB message, QUIT
    ("smtp.pcap", 2): ("ok", True, {"open_at_capture_end"}),    # 250 Ok, capture ends without QUIT
    ("connect-with-smtp.pcap", 0): ("ok", True, set()),         # SMTP inside an HTTP CONNECT tunnel, port 8240
    ("ipv6.pcap", 0): ("ok", None, {"open_at_capture_end"}),    # typed EHLO, capture ends
    ("mime-header-size-limit.pcap.gz", 0): ("ok", True, set()),
    ("rfc3030-bdat-0-last.pcap", 0): ("ok", None, set()),       # BDAT: no terminator, data_terminated absent
    ("rfc3030-bdat-example1.pcap", 0): ("ok", None, set()),
    ("rfc3030-bdat-multipart.pcap", 0): ("ok", None, set()),
    ("rfc3030-bdat-multipart-chunked.pcap", 0): ("ok", None, set()),
    ("rfc3030-bdat-nonascii.pcap", 0): ("ok", None, set()),
    ("smtp-bdat-pipeline-8bitmime.pcap", 0): ("ok", None, set()),
    ("smtp-bdat-gap.pcap", 0): ("ok", True, {"capture_gap"}),   # the gap is the capture's, the server said 250
    ("smtp-many-addresses.pcap.gz", 0): ("ok", True, set()),
    ("smtp-multi-addr.pcap", 0): ("ok", True, set()),           # 451 idle timeout after the accepted message
    ("smtp-starttls.pcap", 0): ("ok", None, set()),
    ("smtp-attachment-msg.pcap", 0): ("incomplete", True, {"one_sided"}),
    ("smtp-one-side-only.pcap", 0): ("incomplete", True, {"one_sided"}),
    ("truncated-header.pcap", 0): ("incomplete", None, {"truncated_packets"}),
    ("smtp-bdat-cmd-chunk-size-overflow.pcap", 0): ("rejected", None, set()),   # 521 Syntax
    ("smtp-bdat-cmd-chunk-size-overflow2.pcap", 0): ("rejected", None, set()),
    ("smtp-bdat-cmd-negative-chunk-size.pcap", 0): ("rejected", None, set()),
    ("smtp-bdat-cmd-invalid.pcapng", 0): ("rejected", None, set()),
    ("smtp-bdat-cmd-invalid.pcapng", 1): ("rejected", None, set()),
    ("smtp-bdat-cmd-invalid.pcapng", 2): ("rejected", None, set()),
    # RCPT without MAIL answered 503: the contract counts a 503 "bad sequence" as rejected.
    # The EHLO before the greeting is Exim's PIPE_CONNECT, which the server invited: not pregreet.
    ("smtp-mail-transactions-invalid.pcap", 0): ("rejected", True, {"pipe_connect"}),
}
NOT_SMTP = ["pop3.pcap", "pop3-starttls.pcap", "pop3-unknown-commands.pcap", "bad-list-retr-crafted.pcap",
            "imap-starttls.pcap", "redis-50-pings.pcap", "telesec.pcap", "long-connection.pcap"]


@pytest.fixture(scope="module")
def corpus_sessions(tshark, corpus_dir) -> pd.DataFrame:
    return pt.sessions(str(corpus_dir), tshark=tshark)


@pytest.mark.parametrize("key", sorted(EXPECTED), ids=[f"{f}#{s}" for f, s in sorted(EXPECTED)])
def test_verdict(corpus_sessions, key):
    cap, stream = key
    cause, terminated, anomalies = EXPECTED[key]
    rows = corpus_sessions[(corpus_sessions.pcap_file == cap) & (corpus_sessions.stream == stream)]
    assert len(rows) == 1, f"{cap} stream {stream}: {len(rows)} session rows"
    row = rows.iloc[0]
    assert row.failure_cause == cause, row.detail
    if terminated is None:
        assert pd.isna(row.data_terminated)
    else:
        assert row.data_terminated == terminated
    assert anomalies <= set(row.anomalies), row.anomalies
    assert isinstance(row.detail, str) and row.detail


def test_every_smtp_session_in_the_corpus_is_expected(corpus_sessions):
    seen = set(zip(corpus_sessions.pcap_file.astype(str), corpus_sessions.stream.astype(int)))
    assert seen == set(EXPECTED)


def test_no_false_smtp_sessions_in_other_protocols(corpus_sessions):
    assert not set(corpus_sessions.pcap_file.astype(str)) & set(NOT_SMTP)


def test_icmp_frag_needed_is_not_a_blackhole(corpus_sessions):
    # smtp.pcap stream 0 carries 4 ICMP frag-needed and window-full episodes, and delivered its message.
    row = corpus_sessions[(corpus_sessions.pcap_file == "smtp.pcap") & (corpus_sessions.stream == 0)].iloc[0]
    assert "mtu_blackhole" not in row.anomalies and row.messages == 1


@pytest.mark.parametrize("cap", sorted(p.name for p in CORPUS.glob("*.pcap*")) if CORPUS.is_dir() else [])
def test_no_lua_error_one_and_two_pass(tshark, cap):
    path = corpus_file(cap)
    for two_pass in (False, True):
        args = ["-n", "-r", str(path), "-X", f"lua_script:{LUA}", "-T", "fields", "-e", "frame.number",
                "-e", "smtpdiag.internal_error"]
        if two_pass:
            args[3:3] = ["-2", "-Y", "frame"]
        res = tshark.run(args)
        err = res.stderr.decode(errors="replace")
        assert "Lua Error" not in err and "lua_script" not in err.lower().replace("lua_script:", ""), err
        assert res.returncode == 0, err
        internal = [l for l in res.stdout.decode(errors="replace").splitlines() if l.split("\t")[1:2] != [""]]
        assert not internal, internal[:3]
        expert = tshark.run(["-n", "-r", str(path), "-X", f"lua_script:{LUA}", "-q", "-z", "expert,error"])
        assert b"Lua Error" not in expert.stdout + expert.stderr
