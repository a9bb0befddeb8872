"""The plugin's batch mode (the toolkit's own tshark run): what it writes, and when.

Captures are the project's fixtures, moved in time with editcap and merged with mergecap.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import FIXTURES, LUA

from pyshark_tools.tshark.conversations import FAST_PREFS

BATCH_PREFS = list(FAST_PREFS)


def batch_rows(tshark, capture: Path, out: Path, prefs=BATCH_PREFS) -> list[dict[str, str]]:
    """The summary file's rows, in the order the plugin wrote them."""
    res = subprocess.run([tshark.path, "-n", "-q", "-r", str(capture), "-X", f"lua_script:{LUA}",
                          "-o", f"smtpdiag.summary_file:{out}", *prefs, "-Y", "frame"],
                         capture_output=True, text=True)
    assert res.returncode == 0 and "Lua" not in res.stderr, res.stderr
    writer, header, *lines = out.read_text().splitlines()
    assert writer.startswith("#smtpdiag\t")
    names = header.split("\t")
    return [dict(zip(names, line.split("\t"))) for line in lines]


def shifted(src: Path, seconds: int, tmp: Path) -> Path:
    out = tmp / f"{src.stem}+{seconds}.pcap"
    subprocess.run(["editcap", "-t", str(seconds), str(src), str(out)], check=True)
    return out


def test_ended_lookups_and_unanswered_attempts_are_written_before_the_capture_ends(tshark, tmp_path):
    """A SYN-only attempt idle for 300 s and an answered MX lookup are written as they are
    decided, not kept to the end: they come out before a session that ended later."""
    parts = [FIXTURES / "no_response.pcap", FIXTURES / "dns_mx_ok.pcap", FIXTURES / "ok.pcap",
             FIXTURES / "tempfail.pcap"]
    t0 = int(subprocess.run(["capinfos", "-T", "-r", "-S", "-a", str(parts[0])], capture_output=True, text=True,
                            check=True).stdout.split("\t")[-1].split(".")[0])
    moved = []
    for src, at in zip(parts, (0, 10, 400, 1000)):
        first = int(subprocess.run(["capinfos", "-T", "-r", "-S", "-a", str(src)], capture_output=True, text=True,
                                   check=True).stdout.split("\t")[-1].split(".")[0])
        moved.append(shifted(src, t0 + at - first, tmp_path))
    merged = tmp_path / "merged.pcap"
    subprocess.run(["mergecap", "-F", "pcap", "-w", str(merged), *map(str, moved)], check=True)

    rows = batch_rows(tshark, merged, tmp_path / "merged.tsv")
    # Without the early writes: ok (ended, written after its linger), then at the capture's end
    # no_response, the five lookups and tempfail, by first frame.
    lookups = ["ok"] * 5    # MX, then A/AAAA of each exchanger (no AAAA record beside an A record is normal)
    assert [r["smtpdiag.failure_cause"] for r in rows] == [*lookups, "no_response", "ok", "tempfail"]
    assert [r["smtpdiag.proto"] for r in rows] == ["dns"] * 5 + ["smtp"] * 3
    # Written early, the attempt's row is the one the end of its own capture gives.
    alone = batch_rows(tshark, FIXTURES / "no_response.pcap", tmp_path / "alone.tsv")
    assert rows[5] == alone[0]


def test_batch_mode_hands_unclaimed_mail_ports_to_their_dissector(tshark, tmp_path):
    """ok.pcap's server listens on 2525, a port no Wireshark dissector claims: batch mode gives it
    to SMTP's own dissector (C speed, no TCP heuristics; it follows STARTTLS into TLS, which decrypts
    with keys) and diagnoses it; outside batch mode the greeting heuristic decodes it as SMTP."""
    cap = FIXTURES / "ok.pcap"
    base = [tshark.path, "-n", "-r", str(cap), "-X", f"lua_script:{LUA}", *BATCH_PREFS]
    batch = subprocess.run([*base, "-o", f"smtpdiag.summary_file:{tmp_path / 's.tsv'}", "-Y", "smtp"],
                           capture_output=True, text=True)
    plain = subprocess.run([*base, "-Y", "smtp"], capture_output=True, text=True)
    assert batch.returncode == 0 and plain.returncode == 0
    assert batch.stdout.count("SMTP") >= 5 and plain.stdout.count("SMTP") >= 5
    assert "c: ehlo" in batch.stdout.lower() and "c: ehlo" in plain.stdout.lower()  # the client side known
    rows = (tmp_path / "s.tsv").read_text().splitlines()[1:]
    assert len(rows) == 2 and "\tok\t" in rows[1] and "\t2525\t" in rows[1]


# Fixtures whose verdict rests on TCP itself: reordering, retransmission, gaps, IP fragments,
# resets, a connection picked up midstream, one direction only.
TCP_FIXTURES = ["ok_out_of_order", "ok_retransmit", "gap_in_data", "mtu_blackhole", "ok_ip_fragments",
                "incomplete_midstream", "data_reset", "reset", "connection_refused", "one_sided",
                "no_response", "ok_split_terminator_3", "data_timeout"]


def test_the_toolkits_speed_prefs_change_no_summary_line(tshark, tmp_path, corpus_dir):
    """The toolkit's run turns off Wireshark's SMTP/POP3 reassembly and its TCP analysis: the
    plugin reassembles and tracks sequence numbers itself, so every conversation's line is the
    one Wireshark's default preferences give (fixtures that rest on TCP, and the real-world corpus)."""
    captures = [FIXTURES / f"{n}.pcap" for n in TCP_FIXTURES] + sorted(
        p for p in corpus_dir.iterdir() if p.name.endswith((".pcap", ".pcapng", ".pcap.gz")))
    assert len(captures) > 30
    for cap in captures:
        fast = batch_rows(tshark, cap, tmp_path / "fast.tsv")
        default = batch_rows(tshark, cap, tmp_path / "default.tsv", [])
        assert fast == default, cap.name
        assert default or cap.name == "redis-50-pings.pcap", cap.name


def test_the_summary_file_names_the_plugin_that_wrote_it(tshark, tmp_path):
    from pyshark_tools.plugin import plugin_build, read_summary_writer
    out = tmp_path / "s.tsv"
    batch_rows(tshark, FIXTURES / "ok.pcap", out)
    writer = read_summary_writer(str(out))
    assert writer is not None and writer.build == plugin_build(Path(LUA)) and len(writer.build) >= 12
    assert writer.build != "source" and writer.version[0].isdigit()
