"""One large capture read as parts at once (-j N): cut inside DATA, between 354 and the data, between SYN
and SYN-ACK and inside a DNS retransmission series, the tables equal a single run's."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from pandas.testing import assert_frame_equal

from conftest import ROOT

import pyshark_tools as pt
from pyshark_tools.cli import cli
from pyshark_tools.runner import jobs, split
from pyshark_tools.runner.options import configured
from pyshark_tools.runner.pcapio import Reader

sys.path.insert(0, str(ROOT / "bench"))
from make_capture import build  # noqa: E402

SHAPES = ["data_timeout", "ok", "ok_multi", "dns_no_response", "no_response", "pregreet", "dns_mx_ok"]


def _frames(capture: Path, display_filter: str) -> list[int]:
    out = subprocess.run(["tshark", "-n", "-r", str(capture), "-Y", display_filter, "-T", "fields", "-e",
                          "frame.number"], capture_output=True, text=True, check=True).stdout
    return [int(x) for x in out.split()]


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> tuple[Path, list[int]]:
    """A capture and the frames the parts must begin at: each one a tricky place."""
    out = tmp_path_factory.mktemp("split") / "big.pcap"
    build(1500, out, seed=3, span=4.0, only=SHAPES)
    after_354 = _frames(out, "smtp.response.code == 354")[0] + 1
    stream = _frames(out, "smtp.response.code == 354")[3]
    inside_data = _frames(out, f"frame.number > {stream} && tcp.len > 0 && smtp.data.fragment || "
                               f"frame.number > {stream + 1} && imf")[:1] or [stream + 3]
    synack = [f for f in _frames(out, "tcp.flags == 0x012") if f > after_354 + 50][0]
    queries = subprocess.run(["tshark", "-n", "-r", str(out), "-Y", "dns.qry.name == blackhole.example.test",
                              "-T", "fields", "-e", "frame.number", "-e", "ip.src"], capture_output=True, text=True,
                             check=True).stdout.split("\n")
    seen: dict[str, int] = {}
    again = []                                      # a retransmitted query: its client asked before
    for line in filter(None, queries):
        frame, src = line.split("\t")
        if src in seen:
            again.append(int(frame))
        seen[src] = int(frame)
    dns_again = [f for f in again if f > synack + 50][0]
    return out, sorted({after_354, inside_data[0], synack, dns_again})


def _offsets(capture: Path, frames: list[int]) -> list[int]:
    with Reader(str(capture)) as rd:
        return [r.block[0] for r in rd.records() if r.frame in frames]


def test_parts_cut_at_tricky_places_give_the_single_runs_tables(capture, monkeypatch):
    path, starts = capture
    with configured(cache=False, jobs=1):
        whole_s, whole_t = pt.sessions_and_transactions(str(path))
    cuts = _offsets(path, starts)
    assert len(cuts) == 4
    monkeypatch.setattr(split, "cut_offsets", lambda p, n: cuts)
    runs: list[str] = []
    real = jobs.read_conversations
    monkeypatch.setattr(jobs, "read_conversations", lambda ts, p, d, f: runs.append(p) or real(ts, p, d, f))
    with configured(cache=False, jobs=2, split_size=1):
        s, t = pt.sessions_and_transactions(str(path))
    assert len(runs) == 5 + 1                       # five parts, one stitching run
    assert (s["pcap_files"].map(len) == 1).all() and (s["pcap_file"].astype(str) == path.name).all()
    assert_frame_equal(s.drop(columns="stream"), whole_s.drop(columns="stream"))
    assert_frame_equal(t.drop(columns="stream"), whole_t.drop(columns="stream"))
    first = s["first_frame"] < starts[0]            # streams of the first part are the whole file's
    assert s["stream"][first].tolist() == whole_s["stream"][first].tolist() and s["stream"][~first].isna().all()


def test_byte_level_cut_finds_record_boundaries(capture, tmp_path):
    path, _ = capture
    parts = split.write_parts(str(path), 3, str(tmp_path))
    assert len(parts) == 3
    with Reader(str(path)) as rd:
        bounds = {r.block[0] for r in rd.records()}
    assert all(a in bounds for _, a, _ in parts)
    counts = [split.counted(split.frame_count("capinfos", p)) for p, _, _ in parts]
    assert sum(counts) == len(bounds) and min(counts) > 300


def test_gzip_capture_is_decompressed_once_and_split(capture, tmp_path):
    import gzip
    import shutil
    path, _ = capture
    gz = tmp_path / "big.pcap.gz"
    with open(path, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    with configured(cache=False, jobs=1):
        whole = pt.sessions(str(path))
    with configured(cache_dir=tmp_path / "cache", jobs=3, split_size=1):
        parts = pt.sessions(str(gz))
    where = ["stream", "pcap_file", "pcap_files", "source"]          # the .gz is another file in another folder
    assert_frame_equal(parts.drop(columns=where, errors="ignore"), whole.drop(columns=where, errors="ignore"))
    res = CliRunner().invoke(cli, ["sessions", str(gz), "-j", "3", "--cache-dir", str(tmp_path / "cache"),
                                   "--format", "csv"], catch_exceptions=False)
    assert res.exit_code == 0 and res.output.count("\n") == len(whole) + 1


def test_a_damaged_or_unsplittable_capture_is_still_read(tmp_path):
    from conftest import FIXTURES
    cut = tmp_path / "cut.pcap"
    cut.write_bytes((FIXTURES / "ok_multi.pcap").read_bytes()[:-40])      # cut short in its last record
    odd = tmp_path / "odd.pcap"
    odd.write_bytes((FIXTURES / "ok.pcap").read_bytes()[:24] + b"\xff" * 64)   # a header, then no record
    for path in (cut, odd):
        one, many = pt.ReadLog(), pt.ReadLog()
        with configured(cache=False, jobs=1):
            whole = pt.sessions(str(path), read_log=one)
        with configured(cache=False, jobs=2, split_size=1):
            parts = pt.sessions(str(path), read_log=many)
        assert_frame_equal(parts.drop(columns="stream"), whole.drop(columns="stream"))
        assert sorted(many.damaged) == sorted(one.damaged) and sorted(many.failed) == sorted(one.failed)
