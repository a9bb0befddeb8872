"""Many captures: ring-buffer order, parallel runs in input order, per-file failures, the result cache."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from pandas.testing import assert_frame_equal

from conftest import FIXTURES

import pyshark_tools as pt
from pyshark_tools.cli import cli
from pyshark_tools.runner import cache, jobs, run
from pyshark_tools.runner.jobs import group_jobs
from pyshark_tools.runner.options import configured
from pyshark_tools.runner.plan import Capture, order_captures
from pyshark_tools.tables.schema import SUMMARY_FIELDS
from pyshark_tools.tables.sessions import sessions_frame

CAPS = ["ok.pcap", "data_timeout.pcap", "tempfail.pcap", "reset.pcap", "dns_nxdomain.pcap", "bare_lf_terminator.pcap"]


def _copy(tmp_path: Path, names=CAPS) -> list[str]:
    out = []
    for n in names:
        shutil.copy(FIXTURES / n, tmp_path / n)
        out.append(str(tmp_path / n))
    return out


@pytest.fixture
def calls(monkeypatch):
    """Counts the per-file tshark runs (runner.jobs.read_conversations), in every thread."""
    seen: list[str] = []
    real = jobs.read_conversations

    def counting(ts, path, decode_args, fields):
        seen.append(Path(path).name)
        return real(ts, path, decode_args, fields)
    monkeypatch.setattr(jobs, "read_conversations", counting)
    return seen


def test_ring_buffer_members_are_ordered_by_index():
    names = ["a.pcap", "mail_00010_20250101000010.pcapng", "mail_100000_20250101000100.pcapng",
             "mail_00009_20250101000009.pcapng", "z.pcap", "mail_99999_20250101000059.pcapng"]
    caps = [Capture(Path("/cap") / n) for n in names]
    got = [c.path.name for c in order_captures(caps)]
    assert got == ["a.pcap", "mail_00009_20250101000009.pcapng", "mail_00010_20250101000010.pcapng",
                   "mail_99999_20250101000059.pcapng", "mail_100000_20250101000100.pcapng", "z.pcap"]


def test_small_files_share_a_job_group_and_big_ones_run_alone():
    mb = 1 << 20
    groups = group_jobs([10, 20, 5 * mb, 30, 40, 50, 60, 70, 80, 90, 100], workers=1, small=mb)
    assert [i for g in groups for i in g] == list(range(11))          # every file once, in order
    assert [2] in groups and max(len(g) for g in groups) > 1


def test_parallel_run_equals_sequential_in_input_order(tmp_path):
    caps = list(reversed(_copy(tmp_path)))
    with configured(jobs=1, cache=False):
        one = pt.sessions(caps)
    with configured(jobs=2, cache=False):
        two = pt.sessions(caps)
    assert_frame_equal(one, two)
    order = list(dict.fromkeys(two["pcap_file"].astype(str)))
    assert order == [Path(c).name for c in caps]
    assert all(f == [p] for f, p in zip(two["pcap_files"], two["pcap_file"].astype(str)))


def test_a_failing_file_costs_no_other_file_its_rows(tmp_path):
    caps = _copy(tmp_path)
    cut = tmp_path / "cut.pcap"
    cut.write_bytes((FIXTURES / "ok_multi.pcap").read_bytes()[:-40])     # cut short in its last record
    gone = tmp_path / "gone.pcap"
    shutil.copy(FIXTURES / "ok.pcap", gone)
    ts = pt.Tshark.discover()
    listed = [Capture(Path(c)) for c in caps[:3]] + [Capture(cut), Capture(gone)] + [Capture(Path(c)) for c in caps[3:]]
    gone.unlink()                          # vanished between listing and reading
    log = pt.ReadLog()
    with configured(jobs=2, cache=False):
        df = sessions_frame(run.run_captures(ts, listed, SUMMARY_FIELDS, log))
    with configured(cache=False):
        alone = pt.sessions(caps)
    assert str(gone) in log.failed and str(cut) in log.damaged
    kept = df[df["pcap_file"].astype(str) != "cut.pcap"].reset_index(drop=True)
    assert_frame_equal(kept.drop(columns="pcap_file"), alone.drop(columns="pcap_file"))
    assert (df["pcap_file"].astype(str) == "cut.pcap").sum() >= 1    # rows read before the damage


def test_unchanged_files_are_not_dissected_twice(tmp_path, calls):
    caps = _copy(tmp_path)
    with configured(cache_dir=tmp_path / "cache", jobs=2):
        first = pt.sessions(caps)
        assert sorted(calls) == sorted(CAPS)
        calls.clear()
        again = pt.sessions(caps)
        assert calls == []                                  # every file from the cache
        assert_frame_equal(first, again)
        shutil.copy(FIXTURES / "rejected.pcap", caps[2])    # one file changed
        changed = pt.sessions(caps)
        assert calls == [CAPS[2]]
    assert set(changed["failure_cause"].astype(str)) >= {"rejected"}
    parts = list((tmp_path / "cache").rglob("*.parquet"))
    assert len(parts) == len(CAPS) + 1 and all("tshark=" in str(p) and "plugin=" in str(p) for p in parts)
    calls.clear()
    with configured(cache=False):
        pt.sessions(caps[:2])
    assert len(calls) == 2                                  # --no-cache reads again


def test_cache_key_follows_plugin_and_file_identity(tmp_path, monkeypatch, calls):
    caps = _copy(tmp_path, ["ok.pcap"])
    with configured(cache_dir=tmp_path / "cache"):
        pt.sessions(caps)
        lua = tmp_path / "smtpdiag.lua"
        lua.write_bytes(pt.lua_plugin_path().read_bytes() + b"\n-- edited\n")
        monkeypatch.setenv("SMTPDIAG_LUA", str(lua))
        pt.sessions(caps)                                   # another plugin: dissected again
        assert calls == ["ok.pcap", "ok.pcap"]
        monkeypatch.setattr(cache, "SMALL_FILE", 0)         # big-file identity: realpath + size + mtime_ns
        pt.sessions(caps)
        pt.sessions(caps)
        st = os.stat(caps[0])
        os.utime(caps[0], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        pt.sessions(caps)
    assert calls == ["ok.pcap"] * 4


def test_a_worker_with_another_plugin_gives_a_failure_not_rows():
    rc = cache.ResultCache(None, "TShark 4.0.17", "0.1.0+aaaa")
    e = run._from_same_versions(cache.Entry([["x"]], 0, "", False, {"tshark": "TShark 4.0.17", "plugin": "0.1.0+bbbb"}), rc)
    assert e.returncode != 0 and not e.rows and "same on every worker" in e.error


def test_cli_jobs_and_cache_options(tmp_path, calls):
    caps = _copy(tmp_path, CAPS[:3])
    out = tmp_path / "s.parquet"
    args = ["sessions", *caps, "--jobs", "2", "--cache-dir", str(tmp_path / "c"), "--format", "parquet", "-o", str(out)]
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert len(calls) == 3 and len(pd.read_parquet(out)) == 3
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0 and len(calls) == 3
    res = CliRunner().invoke(cli, [*args, "--no-cache"], catch_exceptions=False)
    assert res.exit_code == 0 and len(calls) == 6
