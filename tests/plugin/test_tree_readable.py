"""What an analyst reads in Wireshark's tree and packet list: the verdict on the collapsed tree,
durations as times, the smuggling flag where the sequence is, the cause in Info where the evidence is."""
from __future__ import annotations

import subprocess

from conftest import FIXTURES, LUA


def tshark_out(tshark, capture: str, *args: str) -> str:
    res = subprocess.run([tshark.path, "-n", "-2", "-r", str(FIXTURES / capture), "-X", f"lua_script:{LUA}", *args],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_collapsed_tree_names_the_verdict(tshark):
    out = tshark_out(tshark, "data_timeout.pcap", "-Y", "frame.number == 3", "-O", "smtpdiag")
    assert "SMTP diagnosis: data_timeout — 354 at frame 20" in out


def test_durations_are_times_and_start_is_utc(tshark):
    fields = subprocess.run([tshark.path, "-G", "fields", "-X", f"lua_script:{LUA}"], capture_output=True,
                            text=True).stdout
    types = {c[2]: c[3] for c in (line.split("\t") for line in fields.splitlines()) if len(c) > 3}
    for name in ("smtpdiag.reply_latency", "smtpdiag.greeting_latency", "smtpdiag.duration",
                 "smtpdiag.data_duration", "smtpdiag.final_reply_latency", "smtpdiag.dns.latency"):
        assert types[name] == "FT_RELATIVE_TIME", name
    tree = tshark_out(tshark, "data_timeout.pcap", "-Y", "smtpdiag.session_end", "-O", "smtpdiag")
    assert "Duration: 2.004 s" in tree and " UTC]" in tree
    assert "Reply latency: " in tshark_out(tshark, "data_timeout.pcap", "-Y", "frame.number == 23", "-O", "smtpdiag")
    # -T fields gives seconds, as before
    lat = tshark_out(tshark, "data_timeout.pcap", "-Y", "smtpdiag.duration", "-T", "fields", "-e", "smtpdiag.duration")
    assert abs(float(lat.split()[0]) - 2.004) < 0.001


def test_smuggling_flag_stays_on_the_frame_with_the_sequence(tshark):
    out = tshark_out(tshark, "smuggling_attempt.pcap", "-Y", "smtpdiag.smuggling_suspect or smtpdiag.session_end",
                     "-T", "fields", "-e", "frame.number", "-e", "smtpdiag.smuggling_suspect", "-e",
                     "smtpdiag.session_end")
    rows = [line.split("\t") for line in out.splitlines()]
    flagged = [r[0] for r in rows if r[1] in ("1", "True")]
    summary = [r[0] for r in rows if r[2] in ("1", "True")]
    assert flagged and summary and not set(flagged) & set(summary)


def info_suffixed(tshark, *prefs: str) -> list[int]:
    out = tshark_out(tshark, "data_timeout.pcap", *prefs, "-Y", "frame", "-T", "fields", "-e", "frame.number",
                     "-e", "_ws.col.Info")
    return [int(line.split("\t")[0]) for line in out.splitlines() if line.endswith("[data_timeout]")]


def test_cause_in_info_only_on_evidence_frames_by_default(tshark):
    assert info_suffixed(tshark) == [23]             # the 421 that ended the wait
    assert len(info_suffixed(tshark, "-o", "smtpdiag.info_cause:all")) == 26
    assert info_suffixed(tshark, "-o", "smtpdiag.info_cause:off") == []
