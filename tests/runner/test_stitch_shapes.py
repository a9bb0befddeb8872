"""A capture with every shape a file boundary can cut, read whole and cut into 2, 4 and 8 ring-buffer
files: every row of the cut set equals the whole file's (frame numbers counted as stitch.py defines)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT

import pyshark_tools as pt
from pyshark_tools.runner import jobs
from pyshark_tools.runner.options import configured

sys.path.insert(0, str(ROOT / "bench"))
from make_capture import build  # noqa: E402

# SYN retransmissions (3 s), a pregreet, a handshake without data (2 s silent), a DNS retransmission
# series, a DATA phase that times out, sessions with several messages, IP fragments, an RST
SHAPES = ["no_response", "pregreet", "no_banner", "dns_no_response", "data_timeout", "ok_multi", "dns_mx_ok",
          "ok", "ok_retransmit", "ok_ip_fragments", "reset", "dns_servfail"]
SAME = ["ts", "first_frame", "last_frame", "proto", "client_ip", "client_port", "server_ip", "server_port",
        "duration", "failure_cause", "anomalies", "detail", "data_terminated", "terminator", "helo", "messages",
        "last_reply", "bytes_client", "bytes_server", "query", "qtype", "rcode", "answers", "latency", "queries"]
FRAMES = re.compile(r"\b(frames? )(\d+)(?:-(\d+))?")


def _cell(x) -> str:
    if isinstance(x, (list, tuple)) or getattr(x, "ndim", 0) == 1:
        return str(list(x))
    return "" if pd.isna(x) else str(x)


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    """About 3,000 packets of these shapes over 6 s: every cut falls inside some of them."""
    out = tmp_path_factory.mktemp("shapes") / "shapes.pcap"
    build(3000, out, seed=7, span=6.0, only=SHAPES)
    return out


def cut(capture: Path, tmp: Path, n: int) -> tuple[list[Path], list[int]]:
    """editcap -c into n ring-buffer files; their names and frame counts."""
    total = int(subprocess.run(["capinfos", "-cM", str(capture)], capture_output=True, text=True,
                               check=True).stdout.split()[-1])
    tmp.mkdir()
    subprocess.run(["editcap", "-c", str(-(-total // n)), str(capture), str(tmp / "ring.pcap")], check=True,
                   capture_output=True)
    files = sorted(tmp.iterdir())
    counts = [int(subprocess.run(["capinfos", "-cM", str(f)], capture_output=True, text=True).stdout.split()[-1])
              for f in files]
    return files, counts


def in_whole_numbers(df: pd.DataFrame, files: list[Path], counts: list[int]) -> pd.DataFrame:
    """Frame numbers of each row counted in the whole capture (they count from its pcap_file)."""
    base = {f.name: sum(counts[:i]) for i, f in enumerate(files)}
    off = df["pcap_file"].astype(str).map(base).astype(int)
    out = df.copy()
    out["first_frame"] = df["first_frame"] + off
    out["last_frame"] = df["last_frame"] + off
    out["detail"] = [FRAMES.sub(lambda m: m.group(1) + str(int(m.group(2)) + o)
                                + (f"-{int(m.group(3)) + o}" if m.group(3) else ""), d) if isinstance(d, str) else d
                     for d, o in zip(df["detail"], off)]
    return out


@pytest.mark.parametrize("n", [2, 4, 8])
def test_every_row_of_the_cut_set_equals_the_whole_files(capture, tmp_path, n):
    files, counts = cut(capture, tmp_path / "ring", n)
    with configured(cache=False, jobs=2):
        whole = pt.sessions(str(capture))
        parts = pt.sessions([str(f) for f in reversed(files)])
        tw = pt.transactions(str(capture))
        tp = pt.transactions([str(f) for f in files])
    assert len(parts) == len(whole)
    got = in_whole_numbers(parts, files, counts)
    for col in SAME:
        a, b = [_cell(x) for x in got[col]], [_cell(x) for x in whole[col]]
        bad = [(i, x, y) for i, (x, y) in enumerate(zip(a, b)) if x != y]
        assert not bad, (col, bad[:5])
    assert parts["stream"].notna().all()
    names = [f.name for f in files]
    for pf, span in zip(parts["pcap_file"].astype(str), parts["pcap_files"]):
        assert span == names[names.index(pf): names.index(pf) + len(span)]
    # the shapes really were cut: rows that span files
    crossing = parts[parts["pcap_files"].map(len) > 1]
    assert len(crossing) >= n - 1
    if n == 8:
        assert {"no_response", "pregreet", "no_banner", "dns_no_response"} <= set(crossing["failure_cause"].astype(str))
        assert (crossing["pcap_files"].map(len) > 2).any()          # across a file it sent nothing in
    tcols = ["ts", "trans_depth", "mailfrom", "rcptto", "last_reply", "data_terminated", "message_bytes",
             "failure_cause"]
    assert tp[tcols].astype(str).equals(tw[tcols].astype(str))


def test_a_boundary_costs_a_copy_of_its_conversations_not_the_files(capture, tmp_path, monkeypatch):
    files, counts = cut(capture, tmp_path / "ring", 4)
    sizes: list[int] = []
    real = jobs.read_conversations

    def seen(ts, path, decode_args, fields):
        sizes.append(Path(path).stat().st_size)
        return real(ts, path, decode_args, fields)
    monkeypatch.setattr(jobs, "read_conversations", seen)
    with configured(cache=False, jobs=2):
        pt.sessions([str(f) for f in files])
    assert len(sizes) == len(files) + 1                     # each file once, one stitching run
    assert sizes[-1] < capture.stat().st_size / 2           # a copy of the cut conversations only


def test_big_ring_buffer_files_that_fill_the_cores_are_not_cut_into_parts(capture, tmp_path, monkeypatch):
    files, counts = cut(capture, tmp_path / "ring", 2)
    small = ROOT / "fixtures" / "captures" / "ok.pcap"
    with configured(cache=False, jobs=1):
        whole = pt.sessions(str(capture))
        small_alone = pt.sessions(str(small))
    runs: list[str] = []
    real = jobs.read_conversations
    monkeypatch.setattr(jobs, "read_conversations", lambda ts, p, d, f: runs.append(p) or real(ts, p, d, f))
    with configured(cache=False, jobs=2, split_size=1):     # every file is "large"
        parts = pt.sessions([str(f) for f in files])
    assert len(runs) == 2 + 1                               # each file whole, side by side; one stitching run
    assert parts["stream"].notna().all()
    got = in_whole_numbers(parts, files, counts)
    for col in ["first_frame", "last_frame", "client_ip", "client_port", "failure_cause", "detail"]:
        assert [_cell(x) for x in got[col]] == [_cell(x) for x in whole[col]], col
    runs.clear()
    with configured(cache=False, jobs=2, split_size=1):
        both = pt.sessions([str(capture), str(small)])      # one file is nearly all the work: it is cut
    assert len(runs) == 2 + 1 + 1                           # its two parts, their stitching run, the small file
    assert len(both) == len(whole) + len(small_alone)
