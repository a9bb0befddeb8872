"""session_packets(): pyshark drill-down into one session, with the plugin's fields, also under a running loop."""
from __future__ import annotations

import asyncio

from conftest import corpus_file

import pyshark_tools as pt


def test_session_packets_carry_the_diagnosis(tshark):
    pkts = pt.session_packets(str(corpus_file("smtp.pcap")), 0, tshark=tshark)
    assert len(pkts) == 57  # 53 TCP segments and 4 ICMP frag-needed quoting them
    diagnosed = [p for p in pkts if "smtpdiag" in p]
    assert len(diagnosed) == 53 and all(int(p.smtpdiag.stream) == 0 for p in diagnosed)
    assert {p.smtpdiag.failure_cause for p in diagnosed} == {"ok"}
    commands = [p.smtpdiag.command for p in diagnosed if "command" in p.smtpdiag.field_names]
    assert commands[:3] == ["EHLO", "AUTH", "(AUTH data)"]


def test_session_packets_inside_a_running_event_loop(tshark):
    async def notebook_cell():
        return pt.session_packets(str(corpus_file("smtp.pcap")), 2, tshark=tshark, limit=5)

    pkts = asyncio.run(notebook_cell())
    assert len(pkts) == 5 and all(int(p.tcp.stream) == 2 for p in pkts)
