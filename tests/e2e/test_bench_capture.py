"""bench/make_capture.py: the rewritten copies keep their fixture's verdicts (valid TCP, interleaved)."""
from __future__ import annotations

import sys
from collections import Counter

from conftest import FIXTURES, ROOT

import pyshark_tools as pt
from pyshark_tools.runner.options import configured

sys.path.insert(0, str(ROOT / "bench"))
from make_capture import build, build_one_session  # noqa: E402


def test_copies_keep_their_verdicts(tmp_path):
    chosen: list[str] = []
    n, copies = build(3000, tmp_path / "mix.pcap", seed=3, span=5.0, chosen=chosen)
    assert n >= 3000 and copies == len(chosen)
    with configured(cache_dir=tmp_path / "cache"):
        mix = pt.sessions(str(tmp_path / "mix.pcap"))
        per = {name: Counter(pt.sessions(str(FIXTURES / f"{name}.pcap"))["failure_cause"].astype(str))
               for name in set(chosen)}
    expected = sum((per[name] for name in chosen), Counter())
    assert Counter(mix["failure_cause"].astype(str)) == expected
    assert mix["client_ip"].astype(str).str.startswith("10.").all()
    assert mix["client_ip"].nunique() >= copies * 0.9          # own client per copy
    assert not any("midstream" in a for a in mix["anomalies"])
    smtp_ports = set(mix.loc[mix["proto"] == "smtp", "server_port"])
    assert 25 in smtp_ports and 2525 not in smtp_ports       # a relay's port, not the fixtures'


def test_smtp_port_choice_keeps_the_verdicts(tmp_path):
    """Servers on the fixtures' own port 2525 (no Wireshark dissector) or on 25: the same verdicts."""
    with configured(cache_dir=tmp_path / "cache"):
        by_port = {}
        for port in (25, 2525):
            build(1500, tmp_path / f"p{port}.pcap", seed=5, span=5.0, smtp_port=port)
            s = pt.sessions(str(tmp_path / f"p{port}.pcap"))
            by_port[port] = s
        assert 2525 in set(by_port[2525]["server_port"]) and 2525 not in set(by_port[25]["server_port"])
        assert (Counter(by_port[25]["failure_cause"].astype(str))
                == Counter(by_port[2525]["failure_cause"].astype(str)))


def test_one_session_capture(tmp_path):
    n, _ = build_one_session(5000, tmp_path / "one.pcap")
    s = pt.sessions(str(tmp_path / "one.pcap"))
    assert n >= 5000 and len(s) == 1
    assert (s.loc[0, "failure_cause"], s.loc[0, "messages"], bool(s.loc[0, "data_terminated"])) == ("ok", 1, True)


def test_floor_args_swap_the_script_and_drop_plugin_prefs():
    from run import floor_args

    argv = ["tshark", "-n", "-q", "-r", "c.pcap", "-X", "lua_script:/p/smtpdiag.lua",
            "-o", "smtpdiag.summary_file:/t/s.tsv", "-o", "smtp.desegment_data:FALSE", "-Y", "frame"]
    assert floor_args(argv, ROOT / "bench" / "lua" / "empty.lua") == [
        "tshark", "-n", "-q", "-r", "c.pcap", "-X", f"lua_script:{ROOT / 'bench' / 'lua' / 'empty.lua'}",
        "-o", "smtp.desegment_data:FALSE", "-Y", "frame"]


def test_floor_scripts_run_on_a_capture(tshark):
    """The benchmark's Lua floors load and read every frame without an error (the filter names
    their protocol, so a script that did not load fails the run)."""
    import subprocess

    for name, proto in (("empty", "bench_empty"), ("fields", "bench_fields")):
        script = ROOT / "bench" / "lua" / f"{name}.lua"
        res = subprocess.run([tshark.path, "-n", "-q", "-r", str(FIXTURES / "ok.pcap"), "-X", f"lua_script:{script}",
                              "-o", "smtp.desegment_data:FALSE", "-Y", f"frame || {proto}"],
                             capture_output=True, text=True)
        assert res.returncode == 0 and res.stdout == "", res.stderr
        assert "Lua" not in res.stderr, res.stderr
