"""Sessions cut by file boundaries come out as one session, with the verdict of the unsplit capture."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd

from conftest import FIXTURES, corpus_file

import pyshark_tools as pt
from pyshark_tools.runner.options import configured
from pyshark_tools.runner.plan import ring_key

COMPARED = ["client_ip", "client_port", "server_ip", "server_port", "failure_cause", "data_terminated",
            "terminator", "messages", "helo", "last_reply", "detail"]
ARTEFACTS = {"open_at_capture_end", "midstream"}


def split(capture: Path, tmp_path: Path, packets: int = 10) -> list[Path]:
    """editcap -c N: a ring-buffer-named set name_00000_YYYYMMDDhhmmss.ext in its own folder."""
    out = tmp_path / capture.stem.split(".")[0]
    out.mkdir()
    subprocess.run(["editcap", "-c", str(packets), str(capture), str(out / f"ring{capture.suffix}")],
                   check=True, capture_output=True)
    files = sorted(out.iterdir())
    assert len(files) > 1 and all(ring_key(f) for f in files)
    return files


def compare(capture: Path, tmp_path: Path, packets: int = 10) -> tuple[pd.DataFrame, pd.DataFrame, list[Path]]:
    files = split(capture, tmp_path, packets)
    with configured(cache_dir=tmp_path / "cache", jobs=2):
        whole = pt.sessions(str(capture))
        parts = pt.sessions([str(f) for f in reversed(files)])     # order comes from the ring index
    assert len(parts) == len(whole), parts[["pcap_files", "anomalies"]]
    for (_, p), (_, w) in zip(parts.iterrows(), whole.iterrows()):
        for col in COMPARED:
            if col == "detail" and p["pcap_file"] != files[0].name:
                continue            # frames named in detail count from the first of pcap_files
            assert (pd.isna(p[col]) and pd.isna(w[col])) or p[col] == w[col], (col, p[col], w[col])
        assert set(p["anomalies"]) - ARTEFACTS == set(w["anomalies"]) - ARTEFACTS
        assert "midstream" not in p["anomalies"] or "midstream" in w["anomalies"]
        assert "open_at_capture_end" not in p["anomalies"] or "open_at_capture_end" in w["anomalies"]
        # provenance: frames count in the concatenation of pcap_files, which starts at pcap_file
        head = [f.name for f in files].index(p["pcap_file"])
        assert p["pcap_files"] == [f.name for f in files[head: head + len(p["pcap_files"])]]
        assert (p["first_frame"] + head * packets, p["last_frame"] + head * packets) == (w["first_frame"], w["last_frame"])
    return parts, whole, files


def test_data_timeout_split_in_three(tmp_path):
    parts, whole, files = compare(FIXTURES / "data_timeout.pcap", tmp_path)
    assert len(files) == 3 and list(parts["failure_cause"]) == ["data_timeout"]
    assert parts.loc[0, "pcap_files"] == [f.name for f in files]
    assert parts.loc[0, "anomalies"] == whole.loc[0, "anomalies"]
    with configured(cache_dir=tmp_path / "cache", stitch=False):
        cut = pt.sessions([str(f) for f in files])
    assert len(cut) == 3 and "midstream" in cut.loc[1, "anomalies"]     # what stitching repairs


def test_ok_multi_split_and_its_transactions(tmp_path):
    parts, whole, files = compare(FIXTURES / "ok_multi.pcap", tmp_path)
    assert list(parts["failure_cause"]) == ["ok"] and parts.loc[0, "messages"] > 1
    with configured(cache_dir=tmp_path / "cache"):
        tp = pt.transactions([str(f) for f in files])
        tw = pt.transactions(str(FIXTURES / "ok_multi.pcap"))
    cols = ["trans_depth", "mailfrom", "rcptto", "last_reply", "data_terminated", "message_bytes", "failure_cause",
            "first_frame", "last_frame"]
    assert tp[cols].astype(str).equals(tw[cols].astype(str))
    assert (tp["pcap_file"].astype(str) == files[0].name).all()


def test_zeek_smtp_pcap_as_a_ring_buffer(tmp_path):
    parts, whole, files = compare(corpus_file("smtp.pcap"), tmp_path)
    assert len(files) >= 10 and (parts["pcap_files"].map(len) > 1).all()
    assert not any("midstream" in a for a in parts["anomalies"])


def test_unrelated_files_are_not_stitched(tmp_path):
    with configured(cache_dir=tmp_path / "cache"):
        df = pt.sessions([str(FIXTURES / n) for n in ("data_not_terminated_capture_end.pcap", "incomplete_midstream.pcap")])
        alone = pd.concat([pt.sessions(str(FIXTURES / n)) for n in ("data_not_terminated_capture_end.pcap",
                                                                    "incomplete_midstream.pcap")], ignore_index=True)
    assert list(df["failure_cause"]) == list(alone["failure_cause"])
    assert (df["pcap_files"].map(len) == 1).all()
