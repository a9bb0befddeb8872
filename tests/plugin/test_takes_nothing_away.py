"""The plugin takes nothing away from Wireshark: with it loaded, every field of Wireshark's own
dissectors has the value it has without it, on every fixture and corpus capture, on 4.0, 4.4 and 4.6.

Where the plugin's greeting heuristic found mail on a port Wireshark does not know, the run without
the plugin decodes that port as the protocol the heuristic found (as Decode As would): that is what
the heuristic must give, Wireshark's own view of the conversation, client and server told apart.
"""
from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

import pytest

from conftest import FIXTURES, LUA, corpus_file

import pyshark_tools as pt
from tshark.test_matrix import VERSIONS, readable_by_everyone, release

# What the plugin adds (its own protocol and fields) and so is not compared.
OWN = ("smtpdiag", "smtp.data_terminated", "smtp.failure_cause", "_ws.lua.fake", "_ws.expert")
# Ports where Wireshark decodes these protocols in clear (465, 993 and 995 are TLS first: a plaintext
# greeting there is decoded as the heuristic found it, so the run without the plugin decodes it too).
KNOWN_PORTS = {"smtp": {25, 587}, "pop": {110}, "imap": {143}}
MAIL = ("smtp", "pop", "imap")


def captures() -> list[Path]:
    found = sorted(p for p in FIXTURES.iterdir() if p.suffix in (".pcap", ".pcapng"))
    corpus = corpus_file("smtp.pcap").parent
    return found + sorted(p for p in corpus.rglob("*") if p.suffix in (".pcap", ".pcapng", ".cap"))


def packets(ts: pt.Tshark, cap: Path, *args: str) -> list[dict[str, Any]]:
    res = subprocess.run(ts.command(["-n", "-2", "-r", str(cap), *args, "-Y", "frame", "-T", "json"]),
                         capture_output=True)
    out = res.stdout.strip() or b"[]"
    return [p["_source"]["layers"] for p in json.loads(out)]


def strip(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if not k.startswith(OWN)}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x


def heuristic_ports(layers: list[dict[str, Any]]) -> set[tuple[int, str]]:
    """(server port, protocol) of each conversation the plugin handed to a mail dissector off its ports."""
    found = set()
    for frame in layers:
        tcp, own = frame.get("tcp", {}), frame.get("smtpdiag", {})
        stack = [p for p in frame["frame"]["frame.protocols"].split(":") if not p.startswith("smtpdiag")]
        proto = stack[stack.index("tcp") + 1] if "tcp" in stack[:-1] else None
        if proto not in MAIL or own.get("smtpdiag.role") not in ("client", "server"):
            continue
        server = tcp.get("tcp.srcport" if own["smtpdiag.role"] == "server" else "tcp.dstport")
        if server and int(server) not in KNOWN_PORTS[proto]:
            found.add((int(server), proto))
    return found


def differences(ts: pt.Tshark, cap: Path) -> Optional[str]:
    """The first field of Wireshark's own that differs with the plugin loaded, or None."""
    mine = packets(ts, cap, "-X", f"lua_script:{LUA}")
    decode = [a for port, proto in sorted(heuristic_ports(mine)) for a in ("-d", f"tcp.port=={port},{proto}")]
    theirs = packets(ts, cap, *decode)
    if len(mine) != len(theirs):
        return f"{cap.name}: {len(mine)} frames with the plugin, {len(theirs)} without"
    for a, b in zip(mine, theirs):
        a, b = strip(a), strip(b)
        pa = [p for p in a["frame"].pop("frame.protocols").split(":") if not p.startswith("smtpdiag")]
        pb = b["frame"].pop("frame.protocols").split(":")
        if pa != pb:
            return f"{cap.name} frame {a['frame']['frame.number']}: protocols {pa} with the plugin, {pb} without"
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return (f"{cap.name} frame {a['frame']['frame.number']} {decode}: {k} is {str(a.get(k))[:300]} "
                        f"with the plugin, {str(b.get(k))[:300]} without")
    return None


def check_all(ts: pt.Tshark) -> list[str]:
    caps = captures()
    assert len(caps) > 100
    with ThreadPoolExecutor(2) as pool:
        found = [d for d in pool.map(lambda c: differences(ts, c), caps) if d]
    return found


def test_wiresharks_own_fields_are_unchanged_on_40(tshark):
    assert check_all(tshark) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_wiresharks_own_fields_are_unchanged_on(version):
    ts = release(version)
    if ts.run_as and not (readable_by_everyone(LUA) and readable_by_everyone(FIXTURES)):
        pytest.skip("the checkout is not readable by the unprivileged user tshark runs as")
    assert check_all(ts) == []
