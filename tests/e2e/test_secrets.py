"""Credentials never leave through the raw fields: `packets` and `session_packets()` blank every
non-safe field of a frame that carries credentials (the plugin's flag, Wireshark's own AUTH/LOGIN
fields, segments reassembled into such a frame) unless asked to show secrets (tables/secrets.py)."""
from __future__ import annotations

import base64
import json

import pytest
from click.testing import CliRunner

import pyshark_tools as pt
from pyshark_tools.cli import cli
from pyshark_tools.tables.secrets import carries_credentials, must_blank, spread_to_segments

pytest.importorskip("scapy.all", reason="scapy is in the test extra: pip install -e .[test]")
from test_output_safety import LOGIN_PW_B64, LOGIN_USER_B64, conversation, write  # noqa: E402

POP_PW, IMAP_USER, IMAP_PW = "pop-pass-word-9", "John Smith", "imap-pass-word-7"


def hexes(text: str) -> list[str]:
    """The secret as tshark shows bytes (hex), whole and in 6-byte pieces (a segment's share)."""
    raw = text.encode().hex()
    return [raw] + [raw[i:i + 12] for i in range(0, len(raw) - 11, 12)]


@pytest.fixture(scope="module")
def caps(tmp_path_factory, tshark) -> dict[str, str]:
    d = tmp_path_factory.mktemp("secrets")
    pw = LOGIN_PW_B64.encode()
    smtp = [("s", b"220 mx.example.test ESMTP\r\n"), ("c", b"EHLO c.example.test\r\n"), ("s", b"250 AUTH LOGIN\r\n"),
            ("c", b"AUTH LOGIN\r\n"), ("s", b"334 VXNlcm5hbWU6\r\n"), ("c", LOGIN_USER_B64.encode() + b"\r\n"),
            ("s", b"334 UGFzc3dvcmQ6\r\n"), ("c", pw[:8]), ("c", pw[8:16]), ("c", pw[16:] + b"\r\n"),
            ("s", b"235 2.7.0 OK\r\n"), ("c", b"QUIT\r\n"), ("s", b"221 Bye\r\n")]
    pop = [("s", b"+OK POP3 ready\r\n"), ("c", b"USER alice\r\n"), ("s", b"+OK\r\n"),
           ("c", f"PASS {POP_PW}\r\n".encode()), ("s", b"+OK logged in\r\n"), ("c", b"QUIT\r\n"), ("s", b"+OK bye\r\n")]
    imap = [("s", b"* OK IMAP4rev1 ready\r\n"), ("c", f'a1 LOGIN "{IMAP_USER}" {IMAP_PW}\r\n'.encode()),
            ("s", b"a1 OK LOGIN completed\r\n"), ("c", b"a2 LOGOUT\r\n"), ("s", b"* BYE\r\na2 OK\r\n")]
    return {"smtp": write(d, "split_auth.pcap", conversation(smtp)),
            "pop": write(d, "pop_pass.pcap", conversation(pop, sport=110)),
            "imap": write(d, "imap_login.pcap", conversation(imap, sport=143))}


def run(*args: str) -> str:
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.stdout


RAW = ["-e", "frame.number", "-e", "tcp.payload", "-e", "smtp.req.command", "-e", "smtp.command_line",
       "-e", "pop.request.parameter", "-e", "pop.request", "-e", "imap.request", "-e", "imap.line",
       "-e", "smtp.auth.password", "-e", "imap.request.password", "-Y", "tcp.len > 0"]


@pytest.mark.parametrize("fmt", ["csv", "json", "table"])
@pytest.mark.parametrize("proto,secret", [("smtp", LOGIN_PW_B64), ("pop", POP_PW), ("imap", IMAP_PW)])
def test_packets_blank_raw_fields_of_credential_frames(caps, proto, secret, fmt):
    out = run("packets", caps[proto], *RAW, "--format", fmt)
    low = out.lower()
    assert "[redacted]" in out
    for piece in [secret, secret[:8]] + hexes(secret):
        assert piece.lower() not in low, f"{piece!r} in {proto} {fmt} output"
    shown = run("packets", caps[proto], *RAW, "--format", fmt, "--show-secrets").lower()
    assert secret.encode().hex()[:12] in shown


def test_packets_split_line_every_segment_blanked(caps):
    """The password line in three segments: the first two (no AUTH field, not flagged on their own)
    are blanked because Wireshark reassembled them into the flagged frame; other frames keep their payload."""
    rows = json.loads(run("packets", caps["smtp"], "-e", "frame.number", "-e", "tcp.payload",
                          "-Y", "tcp.len > 0", "--format", "json"))
    redacted = [r["frame.number"] for r in rows if r["tcp.payload"] == "[redacted]"]
    assert len(redacted) >= 4   # user name line, three password segments
    ehlo = [r for r in rows if r["tcp.payload"] == b"EHLO c.example.test\r\n".hex()]
    assert len(ehlo) == 1


def test_packets_redaction_even_with_old_keyword(caps):
    with pytest.warns(DeprecationWarning):
        df = pt.packets(caps["pop"], ["frame.number", "pop.request.parameter"], display_filter="pop.request",
                        show_credentials=True)
    assert POP_PW in df["pop.request.parameter"].astype(str).tolist()
    df = pt.packets(caps["pop"], ["frame.number", "pop.request.parameter"], display_filter="pop.request")
    assert POP_PW not in df["pop.request.parameter"].astype(str).tolist()
    assert "alice" in df["pop.request.parameter"].astype(str).tolist()     # USER's frame carries no secret


def all_text(pkts) -> str:
    out = []
    for p in pkts:
        for layer in p.layers:
            for name, c in layer._all_fields.items():
                for f in c.all_fields:
                    out += [str(name), str(f.show), str(f.showname), str(f.raw_value)]
    return "\n".join(out).lower().replace(":", "")   # pyshark shows bytes as 61:48:...


@pytest.mark.parametrize("proto,secret", [("smtp", LOGIN_PW_B64), ("pop", POP_PW), ("imap", IMAP_PW)])
def test_session_packets_blank_credentials(caps, tshark, proto, secret):
    text = all_text(pt.session_packets(caps[proto], 0, tshark=tshark))
    decoded = base64.b64decode(LOGIN_PW_B64).decode() if proto == "smtp" else secret
    for piece in [secret, decoded] + hexes(secret):
        assert piece.lower() not in text, f"{piece!r} in session_packets({proto})"
    assert "[redacted]" in text
    shown = all_text(pt.session_packets(caps[proto], 0, tshark=tshark, show_secrets=True))
    assert secret.encode().hex()[:12] in shown


def test_flag_rules():
    assert carries_credentials({"smtpdiag.credentials": "True"})
    assert carries_credentials({"smtp.auth.password": "x"})
    assert carries_credentials({"pop.request.command": "pass"})
    assert carries_credentials({"imap.request.command": "LOGIN"})
    assert not carries_credentials({"pop.request.command": "USER", "smtpdiag.credentials": "0"})
    assert spread_to_segments({20}, [(18, "20"), (19, ""), (20, "")]) == {18, 20}
    assert must_blank("tcp.payload", True) and not must_blank("tcp.payload", False)
    assert must_blank("smtp.auth.password", False) and not must_blank("tcp.srcport", True)
    assert not must_blank("smtpdiag.command", True)
