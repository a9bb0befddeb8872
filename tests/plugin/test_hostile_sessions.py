"""Hostile mail sessions through the real tshark and the real plugin: credential lines that end
in a space, come split over segments, out of order, retransmitted, or open a capture that starts
inside the AUTH exchange; unknown verbs; deep pipelining. Captures are built with scapy."""
from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from conftest import LUA

from pyshark_tools.tshark.conversations import FAST_PREFS

scapy = pytest.importorskip("scapy.all", reason="scapy is in the test extra: pip install -e .[test]")

CLIENT, SERVER = "192.0.2.10", "198.51.100.25"
USER, PASSWORD = "alice", "hunter2-very-secret"
USER_B64 = base64.b64encode(USER.encode()).decode()
PW_B64 = base64.b64encode(PASSWORD.encode()).decode()
PLAIN_B64 = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
SECRETS = [PW_B64, PLAIN_B64, PASSWORD]


class Conv:
    """A TCP conversation written packet by packet (seq/ack consistent, 1 ms apart)."""

    def __init__(self, sport: int = 25, cport: int = 40123, handshake: bool = True):
        self.sport, self.cport = sport, cport
        self.seq = {"c": 1000, "s": 5000}
        self.t = 1_700_000_000.0
        self.pkts: list = []
        if handshake:
            self.packet("c", "S")
            self.packet("s", "SA")
            self.packet("c", "A")

    def packet(self, role: str, flags: str, data: bytes = b"", seq: int | None = None) -> None:
        """One segment; seq: its sequence number when not the next one (out of order, resent)."""
        src, dst, sp, dp = (CLIENT, SERVER, self.cport, self.sport) if role == "c" else \
            (SERVER, CLIENT, self.sport, self.cport)
        other = "s" if role == "c" else "c"
        p = scapy.Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / scapy.IP(src=src, dst=dst) / \
            scapy.TCP(sport=sp, dport=dp, flags=flags, seq=self.seq[role] if seq is None else seq,
                      ack=self.seq[other] if "A" in flags else 0)
        if data:
            p = p / scapy.Raw(load=data)
        p.time = self.t
        self.t += 0.001
        self.pkts.append(p)
        if seq is None:
            self.seq[role] += len(data) + (1 if "S" in flags or "F" in flags else 0)

    def say(self, role: str, data: bytes, cuts: tuple[int, ...] = ()) -> list[int]:
        """data from role, cut at the given offsets into several segments, then the peer's ACK;
        returns the frame numbers of the segments."""
        frames, start = [], 0
        for end in [*cuts, len(data)]:
            self.packet(role, "PA", data[start:end])
            frames.append(len(self.pkts))
            start = end
        self.packet("s" if role == "c" else "c", "A")
        return frames

    def reversed_segments(self, role: str, data: bytes, size: int) -> list[int]:
        """data from role in segments of size bytes sent last first; returns their frame numbers."""
        base = self.seq[role]
        pieces = [(off, data[off:off + size]) for off in range(0, len(data), size)]
        frames = []
        for off, piece in reversed(pieces):
            self.packet(role, "PA", piece, seq=base + off)
            frames.append(len(self.pkts))
        self.seq[role] = base + len(data)
        self.packet("s" if role == "c" else "c", "A")
        return frames

    def close(self) -> None:
        self.packet("c", "FA")
        self.packet("s", "FA")
        self.packet("c", "A")

    def write(self, path: Path) -> Path:
        scapy.wrpcap(str(path), self.pkts)
        return path


def smtp_head(conv: Conv) -> None:
    conv.say("s", b"220 mx.example.test ESMTP\r\n")
    conv.say("c", b"EHLO client.example.test\r\n")
    conv.say("s", b"250-mx.example.test\r\n250 AUTH PLAIN LOGIN\r\n")


def smtp_tail(conv: Conv) -> None:
    for c, s in [(b"MAIL FROM:<alice@example.test>\r\n", b"250 OK\r\n"), (b"RCPT TO:<bob@example.test>\r\n", b"250 OK\r\n"),
                 (b"DATA\r\n", b"354 go ahead\r\n"), (b"Subject: hi\r\n\r\nhello\r\n.\r\n", b"250 queued\r\n"),
                 (b"QUIT\r\n", b"221 Bye\r\n")]:
        conv.say("c", c)
        conv.say("s", s)
    conv.close()


def two_pass_rows(tshark, cap: Path, fields: list[str], two_pass: bool = True) -> dict[int, dict[str, str]]:
    """frame.number -> {field: value} for every frame the plugin annotated."""
    cmd = [tshark.path, "-n", "-r", str(cap), "-X", f"lua_script:{LUA}", *FAST_PREFS,
           "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,", "-e", "frame.number"]
    if two_pass:
        cmd[2:2] = ["-2", "-Y", "smtpdiag"]
    for f in fields:
        cmd += ["-e", f]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0 and "Lua" not in res.stderr, res.stderr
    rows = {}
    for line in res.stdout.splitlines():
        cells = line.split("\t")
        rows[int(cells[0])] = dict(zip(fields, cells[1:]))
    return rows


def summary(tshark, cap: Path, tmp_path: Path) -> list[dict[str, str]]:
    """The batch run's summary file (the toolkit's own run), one dict per conversation."""
    out = tmp_path / (cap.stem + ".tsv")
    res = subprocess.run([tshark.path, "-n", "-q", "-r", str(cap), "-X", f"lua_script:{LUA}",
                          "-o", f"smtpdiag.summary_file:{out}", *FAST_PREFS, "-Y", "frame"],
                         capture_output=True, text=True)
    assert res.returncode == 0 and "Lua" not in res.stderr, res.stderr
    _, header, *lines = out.read_text().splitlines()
    names = header.split("\t")
    return [dict(zip(names, line.split("\t"))) for line in lines]


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret.upper() not in text.upper(), f"{secret!r} (any case) in {text!r}"


FIELDS = ["smtpdiag.command", "smtpdiag.reply_to", "smtpdiag.credentials", "smtpdiag.detail", "smtpdiag.mbox.commands",
          "smtpdiag.failure_cause"]


def check_hidden(tshark, cap: Path, tmp_path: Path, cred_frames: list[int]) -> dict[int, dict[str, str]]:
    """No secret in any plugin field (two-pass), nor in the summary file; every frame in
    cred_frames is flagged as carrying credentials."""
    rows = two_pass_rows(tshark, cap, FIELDS)
    assert_no_secret(repr(rows))
    flagged = {n for n, r in rows.items() if r["smtpdiag.credentials"] in ("1", "True")}
    assert set(cred_frames) <= flagged, (sorted(cred_frames), sorted(flagged))
    assert_no_secret(repr(summary(tshark, cap, tmp_path)))
    return rows


# -- SMTP credentials --------------------------------------------------------------------

def test_credential_lines_ending_in_a_space_stay_credentials(tshark, tmp_path):
    conv = Conv()
    smtp_head(conv)
    conv.say("c", b"AUTH LOGIN\r\n")
    conv.say("s", b"334 VXNlcm5hbWU6\r\n")
    user = conv.say("c", f"{USER_B64} \r\n".encode())
    conv.say("s", b"334 UGFzc3dvcmQ6\r\n")
    pw = conv.say("c", f"{PW_B64} \r\n".encode())
    conv.say("s", b"235 2.7.0 Authentication successful\r\n")
    smtp_tail(conv)
    rows = check_hidden(tshark, conv.write(tmp_path / "auth_space.pcap"), tmp_path, user + pw)
    assert rows[pw[0]]["smtpdiag.command"] == "(AUTH data)"
    assert [r["smtpdiag.failure_cause"] for r in summary(tshark, tmp_path / "auth_space.pcap", tmp_path)] == ["ok"]


def test_a_credential_line_split_over_segments_flags_every_frame(tshark, tmp_path):
    conv = Conv()
    smtp_head(conv)
    conv.say("c", b"AUTH LOGIN\r\n")
    conv.say("s", b"334 VXNlcm5hbWU6\r\n")
    user = conv.say("c", f"{USER_B64}\r\n".encode(), cuts=(3,))
    conv.say("s", b"334 UGFzc3dvcmQ6\r\n")
    pw = conv.say("c", f"{PW_B64}\r\n".encode(), cuts=(4, 9, 20))
    conv.say("s", b"235 2.7.0 Authentication successful\r\n")
    conv.say("c", f"AUTH PLAIN {PLAIN_B64}\r\n".encode(), cuts=(6, 14, 30))
    conv.say("s", b"503 already authenticated\r\n")
    smtp_tail(conv)
    cap = conv.write(tmp_path / "auth_split.pcap")
    plain = [i + 1 for i, p in enumerate(conv.pkts)
             if scapy.Raw in p and p[scapy.TCP].sport == 40123 and bytes(p[scapy.Raw].load) in
             (f"AUTH PLAIN {PLAIN_B64}\r\n".encode()[14:30], f"AUTH PLAIN {PLAIN_B64}\r\n".encode()[30:])]
    assert len(plain) == 2
    check_hidden(tshark, cap, tmp_path, user + pw + plain)
    # One pass (no later pass to re-render earlier frames): the frames holding credential bytes
    # are flagged as they are read.
    one = two_pass_rows(tshark, cap, ["smtpdiag.credentials"], two_pass=False)
    assert all(one[n]["smtpdiag.credentials"] == "1" for n in user + pw + plain), one


def test_a_credential_line_out_of_order_and_resent_flags_every_frame(tshark, tmp_path):
    conv = Conv()
    smtp_head(conv)
    conv.say("c", b"AUTH LOGIN\r\n")
    conv.say("s", b"334 VXNlcm5hbWU6\r\n")
    conv.say("c", f"{USER_B64}\r\n".encode())
    conv.say("s", b"334 UGFzc3dvcmQ6\r\n")
    start = conv.seq["c"]
    line = f"{PW_B64}\r\n".encode()
    pw = conv.reversed_segments("c", line, 5)
    conv.packet("c", "PA", line[5:15], seq=start + 5)  # a retransmission of two of its segments
    resent = len(conv.pkts)
    conv.say("s", b"235 2.7.0 Authentication successful\r\n")
    smtp_tail(conv)
    check_hidden(tshark, conv.write(tmp_path / "auth_ooo.pcap"), tmp_path, pw + [resent])


@pytest.mark.parametrize("starts_at", ["after_334", "after_user", "at_334"])
def test_a_capture_that_starts_inside_auth_shows_no_credential(tshark, tmp_path, starts_at):
    conv = Conv(handshake=False)
    conv.seq = {"c": 2000, "s": 7000}
    cred = []
    if starts_at == "at_334":
        conv.say("s", b"334 UGFzc3dvcmQ6\r\n")
    elif starts_at == "after_user":
        cred += conv.say("c", f"{USER_B64}\r\n".encode())
        conv.say("s", b"334 UGFzc3dvcmQ6\r\n")
    cred += conv.say("c", f"{PW_B64}\r\n".encode(), cuts=(6,))
    conv.say("s", b"235 2.7.0 Authentication successful\r\n")
    smtp_tail(conv)
    cap = conv.write(tmp_path / f"auth_mid_{starts_at}.pcap")
    rows = check_hidden(tshark, cap, tmp_path, cred)
    assert rows[cred[-1]]["smtpdiag.command"] == "(AUTH data)"
    assert "MAIL" in {r["smtpdiag.command"] for r in rows.values()}  # the commands after it are read


def test_unknown_verbs_are_not_echoed(tshark, tmp_path):
    conv = Conv()
    smtp_head(conv)
    frames = conv.say("c", f"{PW_B64}X foo\r\n".encode())
    reply = conv.say("s", b"500 5.5.2 unrecognised command\r\n")
    smtp_tail(conv)
    rows = check_hidden(tshark, conv.write(tmp_path / "unknown.pcap"), tmp_path, [])
    assert rows[frames[0]]["smtpdiag.command"] == "(unknown)"
    assert rows[reply[0]]["smtpdiag.reply_to"] == "(unknown)"


# -- POP3 and IMAP credentials -------------------------------------------------------------

def pop_session(conv: Conv, auth: list[tuple[str, bytes]]) -> list[int]:
    cred = []
    for role, data in auth:
        frames = conv.say(role, data, cuts=(5,) if role == "c" else ())
        if role == "c":
            cred += frames
    for c, s in [(b"STAT\r\n", b"+OK 0 0\r\n"), (b"QUIT\r\n", b"+OK bye\r\n")]:
        conv.say("c", c)
        conv.say("s", s)
    conv.close()
    return cred


def test_pop3_auth_lines_ending_in_a_space_never_reach_the_commands(tshark, tmp_path):
    conv = Conv(sport=110)
    conv.say("s", b"+OK POP3 ready\r\n")
    conv.say("c", b"AUTH LOGIN\r\n")
    cred = pop_session(conv, [("s", b"+ VXNlcm5hbWU6\r\n"), ("c", f"{USER_B64} \r\n".encode()),
                              ("s", b"+ UGFzc3dvcmQ6\r\n"), ("c", f"{PW_B64} \r\n".encode()),
                              ("s", b"+OK logged in\r\n")])
    cap = conv.write(tmp_path / "pop_auth_space.pcap")
    check_hidden(tshark, cap, tmp_path, cred)
    (row,) = summary(tshark, cap, tmp_path)
    assert row["smtpdiag.mbox.commands"] == "AUTH=1,STAT=1,QUIT=1"
    assert row["smtpdiag.mbox.user"] == USER and row["smtpdiag.failure_cause"] == "ok"


def test_pop3_capture_starting_inside_auth_and_split_pass(tshark, tmp_path):
    conv = Conv(sport=110, handshake=False)
    cred = conv.say("c", f"{PW_B64}\r\n".encode(), cuts=(7,))
    conv.say("s", b"+OK logged in\r\n")
    cred += pop_session(conv, [("c", f"PASS {PASSWORD}\r\n".encode()), ("s", b"-ERR already\r\n")])
    cap = conv.write(tmp_path / "pop_mid.pcap")
    check_hidden(tshark, cap, tmp_path, cred)
    (row,) = summary(tshark, cap, tmp_path)
    assert row["smtpdiag.mbox.commands"] == "PASS=1,STAT=1,QUIT=1"


def test_imap_capture_starting_inside_authenticate(tshark, tmp_path):
    conv = Conv(sport=143, handshake=False)
    cred = conv.say("c", f"{PW_B64}\r\n".encode(), cuts=(7,))
    conv.say("s", b"a1 OK authenticated\r\n")
    cred += conv.say("c", f"a2 LOGIN {USER} {PASSWORD}\r\n".encode(), cuts=(12,))
    conv.say("s", b"a2 BAD already\r\n")
    conv.say("c", f"a3 {PW_B64} x\r\n".encode())
    conv.say("s", b"a3 BAD unknown\r\n")
    conv.say("c", b"a4 LOGOUT\r\n")
    conv.say("s", b"* BYE\r\na4 OK bye\r\n")
    conv.close()
    cap = conv.write(tmp_path / "imap_mid.pcap")
    check_hidden(tshark, cap, tmp_path, cred)
    (row,) = summary(tshark, cap, tmp_path)
    assert row["smtpdiag.mbox.commands"] == "LOGIN=1,OTHER=1,LOGOUT=1"


# -- Deep pipelining -----------------------------------------------------------------------

@pytest.mark.parametrize("rcpts", [1500, 6000])
def test_deep_pipelining_keeps_the_message(tshark, tmp_path, rcpts):
    """RCPTs pipelined past the 1000-entry queue, then DATA: DATA is still answered 354, the
    message counted, and a refused RCPT far down the pipeline still found."""
    conv = Conv()
    conv.say("s", b"220 mx.example.test ESMTP\r\n")
    conv.say("c", b"EHLO client.example.test\r\n")
    conv.say("s", b"250-mx.example.test\r\n250 PIPELINING\r\n")
    cmds = b"MAIL FROM:<a@example.test>\r\n" + b"".join(b"RCPT TO:<r%d@example.test>\r\n" % i for i in range(rcpts)) \
        + b"DATA\r\n"
    conv.say("c", cmds, cuts=tuple(range(1400, len(cmds), 1400)))
    replies = b"250 OK\r\n" + b"".join(b"550 no\r\n" if i == rcpts - 2 else b"250 OK\r\n" for i in range(rcpts)) \
        + b"354 go ahead\r\n"
    conv.say("s", replies, cuts=tuple(range(1400, len(replies), 1400)))
    conv.say("c", b"Subject: hi\r\n\r\nhello\r\n.\r\n")
    conv.say("s", b"250 queued\r\n")
    conv.say("c", b"QUIT\r\n")
    conv.say("s", b"221 Bye\r\n")
    conv.close()
    cap = conv.write(tmp_path / f"pipelined_{rcpts}.pcap")
    (row,) = summary(tshark, cap, tmp_path)
    assert row["smtpdiag.messages"] == "1"
    assert row["smtp.data_terminated"] == "1"
    assert row["smtpdiag.failure_cause"] == "rejected"
    assert "unsolicited_reply" not in row["smtpdiag.anomalies"]
