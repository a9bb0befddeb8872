"""The same per-file jobs on a Dask cluster give the same tables as the local run."""
from __future__ import annotations

import subprocess

import pytest
from pandas.testing import assert_frame_equal

from conftest import FIXTURES

import pyshark_tools as pt
from pyshark_tools.runner import jobs
from pyshark_tools.runner.options import configured

distributed = pytest.importorskip("distributed")

NAMES = ["ok.pcap", "tempfail.pcap", "rejected.pcap", "data_reset.pcap", "dns_mx_ok.pcap", "ok_multi.pcap"]


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as c:
        yield c


def test_cluster_tables_equal_local_tables(tmp_path, cluster):
    ring = tmp_path / "ring"
    ring.mkdir()
    subprocess.run(["editcap", "-c", "10", str(FIXTURES / "data_timeout.pcap"), str(ring / "dt.pcap")], check=True)
    caps = [str(FIXTURES / n) for n in NAMES] + [str(ring)]
    with configured(cache=False, jobs=2):
        local_s, local_t = pt.sessions_and_transactions(caps)
    log = pt.ReadLog()
    with configured(cache=False, scheduler=cluster.scheduler_address):
        dask_s, dask_t = pt.sessions_and_transactions(caps, read_log=log)
    assert log.ok and len(log.files) == len(NAMES) + 3
    assert_frame_equal(local_s, dask_s)
    assert_frame_equal(local_t, dask_t)
    stitched = dask_s[dask_s["pcap_files"].map(len) > 1]
    assert list(stitched["failure_cause"]) == ["data_timeout"]        # stitched on the cluster too


def test_cluster_results_go_to_the_cache(tmp_path, cluster, monkeypatch):
    caps = [str(FIXTURES / n) for n in NAMES[:3]]
    with configured(cache_dir=tmp_path / "cache", scheduler=cluster.scheduler_address):
        first = pt.sessions(caps)
    monkeypatch.setattr(jobs, "read_conversations", lambda *a, **k: pytest.fail("dissected again"))
    with configured(cache_dir=tmp_path / "cache"):
        again = pt.sessions(caps)
    assert_frame_equal(first, again)


def test_parts_of_one_capture_on_the_cluster(tmp_path, cluster):
    import sys

    from conftest import ROOT
    sys.path.insert(0, str(ROOT / "bench"))
    from make_capture import build

    big = tmp_path / "big.pcap"
    build(1500, big, seed=5, span=4.0, only=["ok", "data_timeout", "no_response", "pregreet", "dns_no_response"])
    with configured(cache=False, jobs=1):
        whole = pt.sessions(str(big))
    with configured(cache=False, jobs=3, split_size=1):
        local = pt.sessions(str(big))
    with configured(cache_dir=tmp_path / "cache", jobs=3, split_size=1, scheduler=cluster.scheduler_address):
        dask = pt.sessions(str(big))
    assert_frame_equal(local, dask)
    assert_frame_equal(dask.drop(columns="stream"), whole.drop(columns="stream"))
    assert not list((tmp_path / "cache" / "parts").iterdir())          # the parts are gone afterwards
