"""Real-world captures nobody on this project made: the verdicts a careful analyst would reach."""
from __future__ import annotations

import pandas as pd
import pytest

from conftest import CORPUS, LUA, corpus_file

import pyshark_tools as pt

# (capture, proto, stream) -> (failure_cause, data_terminated, anomalies that must be present)
EXPECTED = {
    ("smtp.pcap", "smtp", 0): ("ok", True, set()),                      # Exim, AUTH LOGIN, 14.5 KB message, QUIT
    ("smtp.pcap", "smtp", 2): ("ok", True, {"open_at_capture_end"}),    # 250 Ok, capture ends without QUIT
    ("connect-with-smtp.pcap", "smtp", 0): ("ok", True, set()),         # SMTP inside an HTTP CONNECT tunnel, port 8240
    ("ipv6.pcap", "smtp", 0): ("ok", None, {"open_at_capture_end"}),    # typed EHLO, capture ends
    ("mime-header-size-limit.pcap.gz", "smtp", 0): ("ok", True, set()),
    ("rfc3030-bdat-0-last.pcap", "smtp", 0): ("ok", None, set()),       # BDAT: no terminator, data_terminated absent
    ("rfc3030-bdat-example1.pcap", "smtp", 0): ("ok", None, set()),
    ("rfc3030-bdat-multipart.pcap", "smtp", 0): ("ok", None, set()),
    ("rfc3030-bdat-multipart-chunked.pcap", "smtp", 0): ("ok", None, set()),
    ("rfc3030-bdat-nonascii.pcap", "smtp", 0): ("ok", None, set()),
    ("smtp-bdat-pipeline-8bitmime.pcap", "smtp", 0): ("ok", None, set()),
    ("smtp-bdat-gap.pcap", "smtp", 0): ("ok", True, {"capture_gap"}),   # the gap is the capture's, the server said 250
    ("smtp-many-addresses.pcap.gz", "smtp", 0): ("ok", True, set()),
    ("smtp-multi-addr.pcap", "smtp", 0): ("ok", True, set()),           # 451 idle timeout after the accepted message
    ("smtp-starttls.pcap", "smtp", 0): ("ok", None, set()),
    ("smtp-attachment-msg.pcap", "smtp", 0): ("incomplete", True, {"one_sided"}),
    ("smtp-one-side-only.pcap", "smtp", 0): ("incomplete", True, {"one_sided"}),
    ("truncated-header.pcap", "smtp", 0): ("incomplete", None, {"truncated_packets"}),
    ("smtp-bdat-cmd-chunk-size-overflow.pcap", "smtp", 0): ("rejected", None, set()),   # 521 Syntax
    ("smtp-bdat-cmd-chunk-size-overflow2.pcap", "smtp", 0): ("rejected", None, set()),
    ("smtp-bdat-cmd-negative-chunk-size.pcap", "smtp", 0): ("rejected", None, set()),
    ("smtp-bdat-cmd-invalid.pcapng", "smtp", 0): ("rejected", None, set()),
    ("smtp-bdat-cmd-invalid.pcapng", "smtp", 1): ("rejected", None, set()),
    ("smtp-bdat-cmd-invalid.pcapng", "smtp", 2): ("rejected", None, set()),
    # RCPT without MAIL answered 503: the contract counts a 503 "bad sequence" as rejected.
    # The EHLO before the greeting is Exim's PIPE_CONNECT, which the server invited: not pregreet.
    ("smtp-mail-transactions-invalid.pcap", "smtp", 0): ("rejected", True, {"pipe_connect"}),
    # POP3: two servers refuse the SYN; a failed AUTH PLAIN; the others log in (or only CAPA) and QUIT.
    ("pop3.pcap", "pop", 0): ("connection_refused", None, set()),
    ("pop3.pcap", "pop", 1): ("connection_refused", None, set()),
    ("pop3.pcap", "pop", 2): ("ok", None, set()),
    ("pop3.pcap", "pop", 3): ("pop_auth_failed", None, {"auth_refused"}),
    ("pop3.pcap", "pop", 4): ("ok", None, set()),
    ("pop3.pcap", "pop", 5): ("ok", None, set()),
    ("pop3.pcap", "pop", 6): ("ok", None, set()),
    ("pop3-starttls.pcap", "pop", 0): ("ok", None, set()),          # STLS, TLS handshake, server RSTs at the end
    ("pop3-unknown-commands.pcap", "pop", 0): ("ok", None, {"malformed_reply"}),  # junk lines in a reply
    # The server's LIST reply lacks its '.', and a GARBAGE line: malformed, but QUIT got +OK bye.
    ("bad-list-retr-crafted.pcap", "pop", 0): ("ok", None, {"malformed_reply"}),
    ("imap-starttls.pcap", "imap", 0): ("ok", None, set()),        # CAPABILITY, STARTTLS OK, handshake
    ("telesec.pcap", "imap", 0): ("ok", None, set()),              # IMAPS on 993: implicit TLS, transport only
    ("long-connection.pcap", "dns", 0): ("ok", None, set()),       # MX google.com: 6 answers
}
# Redis traffic whose '+OK' fools Zeek's POP3 signature: not a mail conversation at all.
NOT_MAIL = ["redis-50-pings.pcap"]


@pytest.fixture(scope="module")
def corpus_sessions(tshark, corpus_dir) -> pd.DataFrame:
    return pt.sessions(str(corpus_dir), tshark=tshark)


@pytest.mark.parametrize("key", sorted(EXPECTED), ids=[f"{f}#{p}{s}" for f, p, s in sorted(EXPECTED)])
def test_verdict(corpus_sessions, key):
    cap, proto, stream = key
    cause, terminated, anomalies = EXPECTED[key]
    rows = corpus_sessions[(corpus_sessions.pcap_file == cap) & (corpus_sessions.stream == stream)
                           & (corpus_sessions.proto == proto)]
    # One row per connection: pop3.pcap's client retries a refused SYN 3 times on one port pair.
    assert len(rows) == (3 if cause == "connection_refused" else 1), f"{cap} stream {stream}: {len(rows)} rows"
    assert (rows.failure_cause == cause).all(), rows.detail.tolist()
    row = rows.iloc[0]
    if terminated is None:
        assert pd.isna(row.data_terminated)
    else:
        assert row.data_terminated == terminated
    assert anomalies <= set(row.anomalies), row.anomalies
    assert isinstance(row.detail, str) and row.detail


def test_every_session_in_the_corpus_is_expected(corpus_sessions):
    seen = set(zip(corpus_sessions.pcap_file.astype(str), corpus_sessions.proto.astype(str),
                   corpus_sessions.stream.astype(int)))
    assert seen == set(EXPECTED)


def test_no_mail_sessions_in_look_alike_traffic(corpus_sessions):
    assert not set(corpus_sessions.pcap_file.astype(str)) & set(NOT_MAIL)


def test_mailbox_users_without_passwords(tshark, corpus_dir):
    mb = pt.mailbox_sessions(str(corpus_dir / "pop3.pcap"), tshark=tshark)
    assert set(mb.user.dropna()) == {"digitalinvestigator@networksims.com"}
    assert mb[mb.stream == 6].commands.iloc[0] == "AUTH=2,CAPA=1,STAT=1,LIST=1,UIDL=1,RETR=3,QUIT=1"
    out = pt.packets(str(corpus_dir / "pop3.pcap"), ["smtpdiag.command", "smtpdiag.mbox.user", "smtpdiag.detail"],
                     tshark=tshark)
    text = out.astype(str).to_string()
    assert "(AUTH data)" in text
    # AUTH PLAIN's base64 carries the password: neither it nor its decoding reaches a table
    raw = (corpus_dir / "pop3.pcap").read_bytes()
    import base64, re as _re
    for b64 in set(_re.findall(rb"AUTH PLAIN ([A-Za-z0-9+/=]{8,})|\n([A-Za-z0-9+/=]{16,})\r", raw)):
        for token in filter(None, b64):
            password = base64.b64decode(token + b"==")[1:].split(b"\0")[-1].decode(errors="replace")
            assert token.decode() not in text and (not password or password not in text)


def test_dns_lookup_columns(tshark, corpus_dir):
    d = pt.dns_lookups(str(corpus_dir / "long-connection.pcap"), tshark=tshark)
    assert len(d) == 1
    row = d.iloc[0]
    assert (row.query, row.qtype, row.rcode, row.queries) == ("google.com", "MX", "NOERROR", 1)
    assert len(row.answers) == 6 and all(a.endswith("google.com") for a in row.answers)
    assert 0.8 < row.latency.total_seconds() < 0.9


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
