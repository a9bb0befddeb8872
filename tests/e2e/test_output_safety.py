"""What reaches people from a capture is neutralised: pyshark_tools/tables/write.py, and the CLI end to end
on captures crafted with scapy (hostile banner/HELO, AUTH credentials)."""
from __future__ import annotations

import base64
import csv
import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from pyshark_tools.cli import cli
from pyshark_tools.tables.write import neutralise_cell, strip_control, to_csv_text, to_json_text, to_terminal_text

scapy = pytest.importorskip("scapy.all", reason="scapy is in the test extra: pip install -e .[test]")

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
TERMINAL_BAD = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


# -- output.py units ---------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["=1+1", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", '=HYPERLINK("x")',
                                  "=cmd|' /C calc'!A0"])
def test_neutralise_cell_quotes_formulas(cell):
    assert neutralise_cell(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["", "ok", "a=b", "1+1", "'=already", " =x", "mx.example.test"])
def test_neutralise_cell_leaves_plain_text(cell):
    assert neutralise_cell(cell) == cell


def test_strip_control_makes_escapes_visible():
    assert strip_control("\x1b[2Jred") == "\\x1b[2Jred"
    assert strip_control("a\x00b\x07c\x7fd") == "a\\x00b\\x07c\\x7fd"
    assert strip_control("c1\x9b31m\x85") == "c1\\x9b31m\\x85"
    assert strip_control("cr\r") == "cr\\x0d"
    assert strip_control("plain text, é ü 中") == "plain text, é ü 中"
    assert strip_control("line\nnext") == "line\nnext"  # newlines are the CSV writer's business


def frame(**cols) -> pd.DataFrame:
    return pd.DataFrame({k: pd.Series(v, dtype="string" if isinstance(v[0], str) else None) for k, v in cols.items()})


def read_csv_cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_to_csv_text_formula_cells_and_round_trip():
    values = ["=1+1", "@x", "-x", "+x", "\tx", 'He said "hi"\nbye', "a,b", "plain", "\x1b[31mred"]
    df = frame(helo=values)
    df["anomalies"] = [["=a", "b"]] + [[] for _ in values[1:]]
    df["n"] = pd.array(range(-1, len(values) - 1), dtype="Int64")
    rows = read_csv_cells(to_csv_text(df))
    assert rows[0] == ["helo", "anomalies", "n"]
    helo = [r[0] for r in rows[1:]]
    assert helo[:5] == ["'=1+1", "'@x", "'-x", "'+x", "'\tx"]
    assert helo[5] == 'He said "hi"\nbye' and helo[6] == "a,b" and helo[7] == "plain"
    assert helo[8] == "\\x1b[31mred"
    assert rows[1][1] == "'=a,b"
    assert [r[2] for r in rows[1:]][:2] == ["-1", "0"]  # numbers stay numbers
    back = pd.read_csv(io.StringIO(to_csv_text(df)), keep_default_na=False)
    assert back.helo[5] == 'He said "hi"\nbye'
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_START) or re.fullmatch(r"-?\d+", cell), cell


def test_to_terminal_text_neutralises_escapes_and_c1():
    df = frame(text=["\x1b[2J\x1b[31mevil", "c1 \x9b31m", "bell\x07", "multi\nline", "tab\tbed", "ok"])
    out = to_terminal_text(df)
    assert "\x1b" not in out and "\x9b" not in out and "\x07" not in out
    assert not TERMINAL_BAD.search(out), repr(out)
    assert "\\x1b[2J" in out and "\\x9b31m" in out
    assert len(out.splitlines()) == 1 + len(df)  # an embedded newline cannot forge a row
    assert to_terminal_text(df.iloc[0:0]) == "(no rows)\n"


def test_to_json_text_is_valid_json_with_escapes_neutralised():
    df = frame(text=["\x1b[2J", 'quote " and \\ backslash', "=1+1", "c1 \x9b31m"])
    df["items"] = [["\x1b]0;t\x07", "ok"], [], ["x"], []]
    data = json.loads(to_json_text(df))
    assert [r["text"] for r in data] == ["\\x1b[2J", 'quote " and \\ backslash', "=1+1", "c1 \\x9b31m"]
    assert data[0]["items"] == ["\\x1b]0;t\\x07", "ok"]
    for r in data:                                     # decoded, nothing a terminal would act on
        for v in [r["text"], *r["items"]]:
            assert not TERMINAL_BAD.search(v), v
    assert "\x1b" not in to_json_text(df) and "\\u001b" not in to_json_text(df)


# -- crafted captures ----------------------------------------------------------------------

CLIENT, SERVER = "192.0.2.10", "198.51.100.25"


def conversation(turns: list[tuple[str, bytes]], cport: int = 40123, sport: int = 25) -> list:
    """A complete TCP conversation: handshake, each (role, payload) turn acknowledged, FINs."""
    E, IP, TCP = scapy.Ether, scapy.IP, scapy.TCP
    seq = {"c": 1000, "s": 5000}
    t = [1_700_000_000.0]
    pkts: list = []

    def send(role: str, flags: str, data: bytes = b"") -> None:
        src, dst, sp, dp = (CLIENT, SERVER, cport, sport) if role == "c" else (SERVER, CLIENT, sport, cport)
        other = "s" if role == "c" else "c"
        p = E(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=src, dst=dst) / TCP(sport=sp, dport=dp, flags=flags, seq=seq[role],
                                             ack=seq[other] if "A" in flags else 0)
        if data:
            p = p / scapy.Raw(load=data)
        p.time = t[0]
        t[0] += 0.001
        pkts.append(p)
        seq[role] += len(data) + (1 if "S" in flags or "F" in flags else 0)

    send("c", "S")
    send("s", "SA")
    send("c", "A")
    for role, data in turns:
        send(role, "PA", data)
        send("s" if role == "c" else "c", "A")
    send("c", "FA")
    send("s", "FA")
    send("c", "A")
    return pkts


def write(tmp_path: Path, name: str, pkts: list) -> str:
    path = tmp_path / name
    scapy.wrpcap(str(path), pkts)
    return str(path)


def cli_run(*args: str):
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert res.exit_code == 0, (res.output, res.stderr)
    return res


HOSTILE_BANNER = b"220 \x1b[31mevil =1+1\r\n"
HOSTILE_HELO = b'EHLO =HYPERLINK("x")\r\n'


@pytest.fixture(scope="module")
def hostile_caps(tmp_path_factory, tshark) -> dict[str, str]:
    d = tmp_path_factory.mktemp("hostile")
    ok = conversation([("s", HOSTILE_BANNER), ("c", HOSTILE_HELO), ("s", b"250 \x1b[2Jhi\r\n"),
                       ("c", b"QUIT\r\n"), ("s", b"221 Bye\r\n")])
    # The same banner refused: its text then reaches detail and last_reply.
    refused = conversation([("s", b"554 \x1b[31mevil =1+1\r\n"), ("c", HOSTILE_HELO), ("s", b"503 \x1b]0;t\x07\r\n"),
                            ("c", b"QUIT\r\n"), ("s", b"221 Bye\r\n")], cport=40124)
    return {"ok": write(d, "hostile_ok.pcap", ok), "refused": write(d, "hostile_refused.pcap", refused)}


@pytest.mark.parametrize("which", ["ok", "refused"])
def test_hostile_banner_and_helo_neutralised(hostile_caps, which):
    cap = hostile_caps[which]
    csv_text = cli_run("sessions", cap, "--format", "csv").stdout
    rows = read_csv_cells(csv_text)
    header, row = rows[0], rows[1]
    assert len(rows) == 2
    assert row[header.index("helo")] == "'=HYPERLINK(\"x\")"
    for cell in row:
        assert not cell.startswith(FORMULA_START), cell
    assert "\x1b" not in csv_text and "\x07" not in csv_text
    data = json.loads(cli_run("sessions", cap, "--format", "json").stdout)
    assert data[0]["helo"] == '=HYPERLINK("x")'
    assert "\x1b" not in json.dumps(data, ensure_ascii=False)
    table = cli_run("sessions", cap).stdout
    assert not TERMINAL_BAD.search(table), repr(table)
    if which == "refused":
        assert data[0]["failure_cause"] == "greeting_rejected"
        assert "\\x1b[31mevil =1+1" in data[0]["detail"]
        assert "\\x1b[31mevil" in table


USER, PLAIN_PW, LOGIN_PW = "alice", "s3cr3t-plain-pw", "hunter2-login-pw"
PLAIN_B64 = base64.b64encode(f"\0{USER}\0{PLAIN_PW}".encode()).decode()
LOGIN_USER_B64 = base64.b64encode(USER.encode()).decode()
LOGIN_PW_B64 = base64.b64encode(LOGIN_PW.encode()).decode()
SECRETS = [PLAIN_B64, PLAIN_PW, LOGIN_PW_B64, LOGIN_PW, LOGIN_USER_B64]


@pytest.fixture(scope="module")
def auth_cap(tmp_path_factory, tshark) -> str:
    turns = [
        ("s", b"220 mx.example.test ESMTP\r\n"), ("c", b"EHLO client.example.test\r\n"),
        ("s", b"250-mx.example.test\r\n250 AUTH PLAIN LOGIN\r\n"),
        ("c", f"AUTH PLAIN {PLAIN_B64}\r\n".encode()), ("s", b"535 5.7.8 Authentication failed\r\n"),
        ("c", b"AUTH LOGIN\r\n"), ("s", b"334 VXNlcm5hbWU6\r\n"),
        ("c", f"{LOGIN_USER_B64}\r\n".encode()), ("s", b"334 UGFzc3dvcmQ6\r\n"),
        ("c", f"{LOGIN_PW_B64}\r\n".encode()), ("s", b"235 2.7.0 Authentication successful\r\n"),
        ("c", b"MAIL FROM:<alice@example.test>\r\n"), ("s", b"250 OK\r\n"),
        ("c", b"RCPT TO:<bob@example.test>\r\n"), ("s", b"250 OK\r\n"),
        ("c", b"DATA\r\n"), ("s", b"354 go ahead\r\n"),
        ("c", b"Subject: hi\r\n\r\nhello\r\n.\r\n"), ("s", b"250 queued\r\n"),
        ("c", b"QUIT\r\n"), ("s", b"221 Bye\r\n"),
    ]
    return write(tmp_path_factory.mktemp("auth"), "auth.pcap", conversation(turns))


def test_auth_exchange_is_diagnosed(auth_cap):
    data = json.loads(cli_run("sessions", auth_cap, "--format", "json").stdout)
    assert [(r["failure_cause"], r["messages"]) for r in data] == [("ok", 1)]


@pytest.mark.parametrize("args", [
    ("packets", "{cap}", "-e", "frame.number", "-e", "smtpdiag.command", "--format", "csv"),
    ("packets", "{cap}", "-e", "smtpdiag.command", "-e", "smtpdiag.detail", "-e", "smtpdiag.last_reply",
     "-Y", "smtpdiag", "--format", "json"),
    ("packets", "{cap}"),
    ("sessions", "{cap}", "--format", "csv"), ("sessions", "{cap}", "--format", "json"), ("sessions", "{cap}"),
    ("transactions", "{cap}", "--format", "csv"), ("transactions", "{cap}", "--format", "json"),
    ("transactions", "{cap}"),
], ids=lambda a: " ".join(x for x in a if x != "{cap}"))
def test_auth_credentials_never_leave_the_plugin(auth_cap, args):
    out = cli_run(*[a.format(cap=auth_cap) for a in args]).stdout
    if args[0] == "packets":
        assert "(AUTH data)" in out
    for secret in SECRETS:
        assert secret not in out, f"{secret!r} in output"
        assert secret.upper() not in out.upper() or len(secret) < 8, f"{secret!r} (any case) in output"


@pytest.mark.parametrize("mech", ["LOGIN", "PLAIN"])
def test_auth_credentials_sent_before_the_334_stay_hidden(tmp_path, tshark, mech):
    """A credentials line captured before the server's 334 (reordering, a lost reply) stays hidden
    (found while fuzzing: it used to show, upper-cased, in smtpdiag.command and reply_to)."""
    head = [("s", b"220 mx.example.test ESMTP\r\n"), ("c", b"EHLO client.example.test\r\n"),
            ("s", b"250 AUTH PLAIN LOGIN\r\n")]
    if mech == "LOGIN":  # the password's frame is captured before the second 334
        auth = [("c", b"AUTH LOGIN\r\n"), ("s", b"334 VXNlcm5hbWU6\r\n"), ("c", f"{LOGIN_USER_B64}\r\n".encode()),
                ("c", f"{LOGIN_PW_B64}\r\n".encode()), ("s", b"334 UGFzc3dvcmQ6\r\n"), ("s", b"235 2.7.0 OK\r\n")]
    else:  # the PLAIN response is captured before the (empty) 334
        auth = [("c", b"AUTH PLAIN\r\n"), ("c", f"{PLAIN_B64}\r\n".encode()), ("s", b"334 \r\n"),
                ("s", b"235 2.7.0 OK\r\n")]
    cap = write(tmp_path, f"auth_early_{mech}.pcap", conversation(head + auth + [("c", b"QUIT\r\n"), ("s", b"221 Bye\r\n")]))
    out = cli_run("packets", cap, "-e", "frame.number", "-e", "smtpdiag.command", "-e", "smtpdiag.reply_to",
                  "--format", "csv").stdout
    for secret in SECRETS:
        assert secret.upper() not in out.upper(), f"{secret!r} (upper-cased) in {out}"


def test_bidi_overrides_are_made_visible():
    # U+202E (right-to-left override) would make a terminal or spreadsheet show text reversed.
    assert strip_control("evil\u202etxt.exe") == "evil\\u202etxt.exe"
    assert "\u2066" not in to_terminal_text(frame(a=["x\u2066y"]))
