"""Issue 20: the patterns real captures from other projects showed, as the contract states them.

Each pattern has fixtures (fixtures/make_fixtures.py, section "issue 20") and is checked in the
plugin's batch mode (the toolkit's own tshark command, FAST_PREFS and a summary file), in two-pass
tshark, and through the CLI.
"""
from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import FIXTURES, LUA, ROOT

from pyshark_tools import Tshark
from pyshark_tools.cli import cli
from pyshark_tools.tshark.conversations import conversation_rows

FIELDS = ["smtpdiag.proto", "smtpdiag.stream", "smtpdiag.failure_cause", "smtpdiag.anomalies", "smtpdiag.detail",
          "smtp.data_terminated", "smtpdiag.terminator", "smtpdiag.messages", "smtpdiag.helo", "smtpdiag.last_reply",
          "smtpdiag.tls", "smtpdiag.client_port", "smtpdiag.server_port", "smtpdiag.mbox.user",
          "smtpdiag.mbox.commands", "smtpdiag.txn.depth", "smtpdiag.txn.mailfrom", "smtpdiag.txn.rcptto",
          "smtpdiag.txn.last_reply", "smtpdiag.txn.data_terminated", "smtpdiag.txn.message_bytes",
          "smtpdiag.txn.failure_cause"]
SEP = "\x1f"
MODES = ["batch", "two_pass"]


def keylog(capture: str) -> list[str]:
    """tshark options that hand Wireshark the capture's shipped key log (NAME.keys)."""
    return ["-o", f"tls.keylog_file:{FIXTURES / (capture[:capture.index('.')] + '.keys')}"]


def _row(cells: list[str]) -> dict:
    r = dict(zip(FIELDS, cells))
    r["anomalies"] = [a for a in r["smtpdiag.anomalies"].split(SEP) if a]
    r["cause"] = r["smtpdiag.failure_cause"].split(SEP)[0]
    dt = r["smtp.data_terminated"].split(SEP)[0]
    r["data_terminated"] = {"1": True, "True": True, "0": False, "False": False}.get(dt)
    return r


def batch(tshark: Tshark, capture: str, extra=()) -> list[dict]:
    """The plugin's batch mode, as the toolkit runs it: one row per conversation."""
    return [_row(cells) for cells in conversation_rows(tshark, str(FIXTURES / capture), FIELDS, extra=list(extra))]


def two_pass(tshark: Tshark, capture: str, extra=()) -> list[dict]:
    """tshark -2: the session's summary frame carries the verdict."""
    args = ["-n", "-2", "-Y", "smtpdiag.session_end", "-r", str(FIXTURES / capture), "-X", f"lua_script:{LUA}",
            *extra, "-T", "fields", "-E", "occurrence=a", "-E", f"aggregator={SEP}"]
    for f in FIELDS:
        args += ["-e", f]
    res = tshark.run(args)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    return [_row(line.split("\t")) for line in res.stdout.decode().splitlines()]


def rows(tshark, mode: str, capture: str, extra=()) -> list[dict]:
    return (batch if mode == "batch" else two_pass)(tshark, capture, extra)


def only(rs: list[dict]) -> dict:
    assert len(rs) == 1, [(r["smtpdiag.stream"], r["cause"], r["smtpdiag.detail"]) for r in rs]
    return rs[0]


# -- 1. TLS sessions that end with a reset ---------------------------------------------------

RESET_CLOSE = ["tls_reset_close_starttls.pcap", "tls_reset_close_smtps.pcap", "tls_reset_close_pop3s.pcap",
               "tls_reset_close_imaps.pcap"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("capture", RESET_CLOSE)
def test_tls_reset_close_is_ok(tshark, mode, capture):
    r = only(rows(tshark, mode, capture))
    assert r["cause"] == "ok", r["smtpdiag.detail"]
    assert "tls_reset_close" in r["anomalies"] and "reset" not in r["anomalies"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("capture", ["tls_reset_server_abort.pcap", "tls_reset_client_abort.pcap"])
def test_reset_with_a_command_unanswered_stays_reset(tshark, mode, capture):
    """The counter-examples: the side that resets leaves the other waiting for a reply."""
    r = only(rows(tshark, mode, capture))
    assert r["cause"] == "reset", r["smtpdiag.detail"]
    assert "tls_reset_close" not in r["anomalies"]


# -- 2. masking seen from the client side ----------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_command_masked_seen_from_the_client(tshark, mode):
    r = only(rows(tshark, mode, "command_masked_client_side.pcap"))
    assert r["cause"] == "command_masked", r["smtpdiag.detail"]
    assert "XXXX" in r["smtpdiag.detail"]
    assert (r["data_terminated"], r["smtpdiag.messages"]) == (True, "1")


@pytest.mark.parametrize("mode", MODES)
def test_command_masked_seen_from_the_server_still_holds(tshark, mode):
    assert only(rows(tshark, mode, "command_masked.pcap"))["cause"] == "command_masked"


# -- 3. implicit TLS to a plaintext server ---------------------------------------------------

PLAINTEXT = ["implicit_tls_plaintext_smtps.pcap", "implicit_tls_plaintext_smtps_cut.pcap",
             "implicit_tls_plaintext_2525.pcap", "implicit_tls_plaintext_pop3s.pcap",
             "implicit_tls_plaintext_imaps.pcap"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("capture", PLAINTEXT)
def test_client_hello_answered_in_plaintext_is_tls_failed(tshark, mode, capture):
    r = only(rows(tshark, mode, capture))
    assert r["cause"] == "tls_failed", r["smtpdiag.detail"]


# -- 4. capture order is not causal order ----------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("capture", [
    "ok_handshake_reordered.pcap.gz",
    "ok_acks_overtake_data.pcap.gz",
])
def test_sequence_numbers_decide_not_frame_order(tshark, mode, capture):
    r = only(rows(tshark, mode, capture))
    assert (r["cause"], r["data_terminated"], r["smtpdiag.messages"]) == ("ok", True, "1"), r["anomalies"]
    assert "capture_gap" not in r["anomalies"]
    assert int(r["smtpdiag.txn.message_bytes"]) > 960_000


# -- 5. no handshake, late greeting ----------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_late_greeting_without_handshake_is_pregreet(tshark, mode):
    r = only(rows(tshark, mode, "pregreet_no_handshake.pcap"))
    assert r["cause"] == "pregreet", r["smtpdiag.detail"]
    assert "no greeting" not in r["smtpdiag.detail"]
    assert (r["data_terminated"], r["smtpdiag.messages"]) == (True, "1")


# -- 6. phantom sessions from source ports ---------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("capture", ["phantom_src25_refused.pcap", "phantom_src25_unanswered.pcap"])
def test_syn_from_a_mail_port_is_not_mail(tshark, mode, capture):
    r = only(rows(tshark, mode, capture))          # the real delivery only
    assert (r["smtpdiag.stream"], r["cause"], r["smtpdiag.messages"]) == ("1", "ok", "1")
    assert r["smtpdiag.server_port"] in ("25", "2525") and r["smtpdiag.client_port"] != "25"


# -- 7. Cisco-style masking of the EHLO reply ------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("capture", [
    "starttls_stripped.pcap", "starttls_stripped_split.pcap", "starttls_stripped_pipelined.pcap",
    "starttls_stripped_xxxb.pcap",
    "starttls_stripped_xonly.pcap",
])
def test_masked_ehlo_capabilities_are_starttls_stripped(tshark, mode, capture):
    r = only(rows(tshark, mode, capture))
    assert r["cause"] == "starttls_stripped", r["smtpdiag.detail"]


# -- 8. decrypted and decryptable mail -------------------------------------------------------

# capture -> (cause, data_terminated, messages) with its key log
DECRYPTED = {
    "tls_keylog_starttls_ok.pcap": ("ok", True, "1"),
    "tls_keylog_starttls_auth_failed.pcap": ("auth_failed", None, "0"),
    "tls_keylog_starttls_data_not_terminated.pcap": ("data_not_terminated", False, "0"),
    "tls_keylog_smtps_ok.pcap": ("ok", True, "1"),
    "tls_keylog_smtps_segments.pcap": ("ok", True, "1"),
    "tls_keylog_split_records.pcap": ("ok", True, "1"),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("capture", sorted(DECRYPTED))
def test_smtp_inside_tls_with_its_key_log(tshark, mode, capture):
    r = only(rows(tshark, mode, capture, keylog(capture)))
    assert (r["cause"], r["data_terminated"], r["smtpdiag.messages"]) == DECRYPTED[capture], r["smtpdiag.detail"]
    assert r["smtpdiag.tls"] in ("1", "True") and r["smtpdiag.helo"] == "client.example.test"


@pytest.mark.parametrize("mode", MODES)
def test_capture_with_embedded_secrets(tshark, mode):
    r = only(rows(tshark, mode, "tls_keylog_starttls_ok_dsb.pcapng"))
    assert (r["cause"], r["data_terminated"], r["smtpdiag.messages"]) == ("ok", True, "1"), r["smtpdiag.detail"]
    assert r["smtpdiag.terminator"].split(SEP)[0] == "crlf"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("capture,cause", [("tls_keylog_pop3s_ok.pcap", "ok"),
                                           ("tls_keylog_imaps_auth_failed.pcap", "imap_auth_failed")])
def test_mailbox_inside_tls_with_its_key_log(tshark, mode, capture, cause):
    r = only(rows(tshark, mode, capture, keylog(capture)))
    assert r["cause"] == cause, r["smtpdiag.detail"]
    assert r["smtpdiag.mbox.user"] == "alice" and "fake-password" not in str(r)


# Session and transaction columns that must match between the dialogue in TLS and in clear.
SAME_SESSION = ["cause", "data_terminated", "smtpdiag.terminator", "smtpdiag.messages", "smtpdiag.helo",
                "smtpdiag.last_reply"]
SAME_TXN = ["smtpdiag.txn.depth", "smtpdiag.txn.mailfrom", "smtpdiag.txn.rcptto", "smtpdiag.txn.last_reply",
            "smtpdiag.txn.data_terminated", "smtpdiag.txn.message_bytes", "smtpdiag.txn.failure_cause"]


@pytest.mark.parametrize("mode", MODES)
def test_decrypted_session_equals_its_clear_twin(tshark, mode):
    clear = only(rows(tshark, mode, "tls_keylog_clear_twin.pcap"))
    tls = only(rows(tshark, mode, "tls_keylog_starttls_ok.pcap", keylog("tls_keylog_starttls_ok.pcap")))
    assert {c: tls[c] for c in SAME_SESSION + SAME_TXN} == {c: clear[c] for c in SAME_SESSION + SAME_TXN}
    # the TLS session ends with the client's RST after close_notify: that anomaly is its only extra
    assert set(tls["anomalies"]) - {"tls_reset_close"} == set(clear["anomalies"])
    assert (tls["smtpdiag.tls"], clear["smtpdiag.tls"]) in (("1", "0"), ("True", "False"))


def test_without_its_key_log_the_dialogue_stays_invisible(tshark):
    """The labels of the keylog fixtures are their keyless reading: no DATA verdict, no AUTH result."""
    for capture in ("tls_keylog_starttls_auth_failed.pcap", "tls_keylog_starttls_data_not_terminated.pcap"):
        r = only(batch(tshark, capture))
        assert r["data_terminated"] is None and r["cause"] not in ("auth_failed", "data_not_terminated")


RELEASES = Path(os.environ.get("SMTPDIAG_RELEASES", ROOT / ".tshark-releases"))


@pytest.mark.parametrize("version", ["4.4", "4.6"])
def test_decryption_on_newer_tshark(version):
    exe = RELEASES / version / "bin" / "tshark"
    if not exe.exists():
        pytest.skip(f"tshark {version} not unpacked at {exe}")
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if is_root and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: cannot run tshark 4.4+ unprivileged")
    ts = Tshark(str(exe), run_as="nobody" if is_root else None)
    capture = "tls_keylog_starttls_auth_failed.pcap"
    for mode in MODES:
        assert only(rows(ts, mode, capture, keylog(capture)))["cause"] == "auth_failed"


# -- the CLI -----------------------------------------------------------------------------------

def cli_csv(*args: str) -> pd.DataFrame:
    res = CliRunner().invoke(cli, ["sessions", *args, "--format", "csv", "--no-cache"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return pd.read_csv(io.StringIO(res.stdout))


# capture -> the causes of its rows, as the CLI prints them (stream order)
CLI_EXPECTED = {
    "tls_reset_close_starttls.pcap": ["ok"],
    "tls_reset_close_imaps.pcap": ["ok"],
    "command_masked_client_side.pcap": ["command_masked"],
    "implicit_tls_plaintext_smtps_cut.pcap": ["tls_failed"],
    "implicit_tls_plaintext_pop3s.pcap": ["tls_failed"],
    "ok_acks_overtake_data.pcap.gz": ["ok"],
    "pregreet_no_handshake.pcap": ["pregreet"],
    "phantom_src25_unanswered.pcap": ["ok"],
    "starttls_stripped_xonly.pcap": ["starttls_stripped"],
}


def test_cli_sessions_on_the_patterns():
    df = cli_csv(*[str(FIXTURES / c) for c in CLI_EXPECTED])
    got = {c: list(df[df.pcap_file == c].sort_values("stream").failure_cause) for c in CLI_EXPECTED}
    assert got == CLI_EXPECTED
    assert not df.anomalies.astype(str).str.contains("capture_gap").any()


def test_cli_tls_keylog():
    capture = "tls_keylog_starttls_auth_failed.pcap"
    df = cli_csv(str(FIXTURES / capture), "--tls-keylog", str(FIXTURES / "tls_keylog_starttls_auth_failed.keys"))
    assert list(df.failure_cause) == ["auth_failed"]
    assert "fake-password" not in df.to_csv()


# -- what the fix builds on ---------------------------------------------------------------------

def test_wireshark_hands_the_decrypted_bytes_to_a_post_dissector(tshark, tmp_path):
    """fixtures/research/decrypted_stream.lua reads the plaintext through FieldInfo.source: the client's
    bytes after STARTTLS are exactly those of the same dialogue in clear."""
    script = ROOT / "fixtures" / "research" / "decrypted_stream.lua"
    capture = "tls_keylog_starttls_ok.pcap"
    res = tshark.run(["-n", "-q", "-r", str(FIXTURES / capture), *keylog(capture), "-X", f"lua_script:{script}",
                      "-X", f"lua_script1:{tmp_path / 'tls'}", "-X", "lua_script1:2525"])
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    clear = tshark.run(["-n", "-r", str(FIXTURES / "tls_keylog_clear_twin.pcap"), "-o", "tcp.desegment_tcp_streams:FALSE",
                        "-Y", "tcp.dstport == 2525 && tcp.len > 0", "-T", "fields", "-e", "tcp.payload"])
    clear_client = b"".join(bytes.fromhex(h.replace(":", "")) for h in clear.stdout.decode().split())
    assert (tmp_path / "tls.client").read_bytes() == clear_client
    assert (tmp_path / "tls.server").read_bytes().endswith(b"250 2.0.0 Ok: queued as 4F1A2B3C\r\n221 Bye\r\n")


def test_greeting_heuristic_keeps_wiresharks_tls(tshark):
    """Without the plugin, Wireshark's TLS heuristic finds the handshake after STARTTLS on 2525; with it,
    the greeting heuristic hands every later segment to SMTP, so no TLS (and nothing decrypted)."""
    def tls_frames(plugin: bool) -> list[str]:
        args = ["-n", "-r", str(FIXTURES / "tls_keylog_starttls_ok.pcap"), "-Y", "tls", "-T", "fields",
                "-e", "frame.number"]
        res = tshark.run(args + (["-X", f"lua_script:{LUA}"] if plugin else []))
        return res.stdout.decode().split()
    without = tls_frames(False)
    assert len(without) > 10
    assert tls_frames(True) == without


# -- the AAAA lookup of an exchanger without IPv6 ------------------------------------------------

def _dns_mx_ok_frames(tmp_path: Path, frames: list[int]) -> str:
    """dns_mx_ok.pcap's packets (1-based frame numbers) in the order given, times kept increasing."""
    scapy = pytest.importorskip("scapy.all", reason="scapy is in the test extra: pip install -e .[test]")
    pkts = scapy.rdpcap(str(FIXTURES / "dns_mx_ok.pcap"))
    out = [pkts[f - 1] for f in frames]
    for k, p in enumerate(out):
        p.time = pkts[k].time
    path = tmp_path / "dns.pcap"
    scapy.wrpcap(str(path), out)
    return str(path)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("frames", [[1, 2, 3, 4, 5, 6], [1, 2, 5, 6, 3, 4]], ids=["a_first", "aaaa_first"])
def test_aaaa_without_records_is_ok_when_the_a_lookup_was_answered(tshark, tmp_path, mode, frames):
    """MX, then A and AAAA of mx1 (either order): no AAAA record for an exchanger with an A record is normal."""
    rs = rows(tshark, mode, _dns_mx_ok_frames(tmp_path, frames))
    aaaa = only([r for r in rs if r["smtpdiag.detail"].startswith("AAAA ")])
    assert aaaa["cause"] == "ok" and "dns_no_aaaa" in aaaa["anomalies"], aaaa["smtpdiag.detail"]
    assert [r["cause"] for r in rs] == ["ok"] * 3


@pytest.mark.parametrize("mode", MODES)
def test_aaaa_without_records_and_no_a_answer_is_dns_no_answer(tshark, tmp_path, mode):
    rs = rows(tshark, mode, _dns_mx_ok_frames(tmp_path, [1, 2, 5, 6]))
    aaaa = only([r for r in rs if r["smtpdiag.detail"].startswith("AAAA ")])
    assert aaaa["cause"] == "dns_no_answer" and "dns_no_aaaa" not in aaaa["anomalies"]
