"""The report's DNS and POP3/IMAP sections, from the project's own DNS/POP3/IMAP captures."""
from __future__ import annotations

import re

from conftest import FIXTURES

import pyshark_tools as pt


def test_dns_and_mailbox_sections(tmp_path, tshark):
    caps = [str(FIXTURES / f) for f in ("dns_mx_ok.pcap", "dns_no_response.pcap", "pop_auth_failed.pcap", "imap_ok.pcap")]
    index = pt.write_report(caps, tmp_path, tshark=tshark)
    page = index.read_text()
    dns = re.search(r'<table id="dns-lookups".*?</table>', page, re.S).group(0)
    assert dns.count("<tr>") == 1 + 6  # header + 5 lookups of dns_mx_ok + 1 unanswered
    assert "blackhole.example.test" in dns and "dns_no_response" in dns and "mx1.example.test" in dns
    mbox = re.search(r'<table id="mailbox-sessions".*?</table>', page, re.S).group(0)
    assert "POP" in mbox and "IMAP" in mbox and "pop_auth_failed" in mbox and "alice" in mbox
    assert "fake-password" not in page
    assert "udp.stream == 0" in page  # DNS rows open with a udp.stream filter


def test_sections_say_when_there_is_nothing(tmp_path, tshark):
    page = pt.write_report([str(FIXTURES / "ok.pcap")], tmp_path, tshark=tshark).read_text()
    assert 'id="no-dns"' in page and 'id="no-mailbox"' in page
