"""The figures read right on 1, 50 and 50,000 sessions: sizes bounded, every session counted once, labels
present, no mark per session; outliers do not stretch the timeline; PNG, SVG and PDF."""
from __future__ import annotations

import io

import matplotlib.dates as mdates
import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from conftest import FIXTURES, ROOT

import pyshark_tools as pt
from pyshark_tools.report import plots
from pyshark_tools.tables.latency import latencies_from_replies
from pyshark_tools.tables.replies import replies_from_frames, reply_frames, worst_replies

ARTIFACTS = ROOT / "test-artifacts"
SIZES = [1, 50, 50_000]


@pytest.fixture(scope="module")
def base(tshark):
    """The real tables of every fixture: sessions, transactions, replies."""
    caps = str(FIXTURES)
    s, t = pt.sessions_and_transactions(caps, tshark=tshark)
    return s, t, replies_from_frames(reply_frames(caps, tshark=tshark))


def scaled(base, n: int, span: pd.Timedelta = pd.Timedelta(hours=2)):
    """n sessions made of the fixtures' real sessions (copy k of a session is in file 'k-<name>'), their starts
    spread evenly over `span`; their replies and transactions follow them."""
    s, t, r = base
    pick = np.resize(np.arange(len(s)), n)
    copy = np.arange(n) // len(s)
    out = s.iloc[pick].reset_index(drop=True)
    names = [f"{k}-{f}" for k, f in zip(copy, out["pcap_file"].astype(str))]
    out["pcap_file"] = pd.Series(names, dtype="category")
    start = pd.Timestamp("2025-01-06 08:00", tz="UTC")
    out["ts"] = start + pd.to_timedelta(np.linspace(0, span.total_seconds(), n) if n > 1 else [0], unit="s")
    keys = out[["pcap_file", "stream"]].astype({"pcap_file": str}).drop_duplicates()
    mine = lambda df: df.astype({"pcap_file": str}).merge(keys, on=["pcap_file", "stream"]).astype(
        {"pcap_file": "category"})
    return out, mine(_copies(t, copy[-1] + 1)), mine(_copies(r, copy[-1] + 1))


def _copies(df: pd.DataFrame, k: int) -> pd.DataFrame:
    """k copies of a table of the fixtures, copy i's pcap_file named 'i-<name>' (rows of unused files are harmless)."""
    out = df.loc[df.index.repeat(k)].reset_index(drop=True)
    nth = np.tile(np.arange(k), len(df)).astype(str)
    out["pcap_file"] = pd.Series(np.char.add(np.char.add(nth, "-"), out["pcap_file"].astype(str).to_numpy()),
                                 dtype="category")
    return out


def png_size(fig) -> tuple[int, int]:
    img = mpimg.imread(io.BytesIO(plots.to_bytes(fig, "png")))
    return img.shape[1], img.shape[0]


def check_size(fig, name: str) -> None:
    w, h = fig.get_size_inches()
    assert 5 <= w <= 10 and 1.5 <= h <= 12, (name, w, h)
    png = png_size(fig)     # matplotlib before 3.7 truncates a fraction of a pixel, later ones round
    assert abs(png[0] - w * 100) < 1 and abs(png[1] - h * 100) < 1, (png, w, h)
    ARTIFACTS.mkdir(exist_ok=True)
    fig.savefig(ARTIFACTS / f"plot-{name}.png", dpi=100)


@pytest.mark.parametrize("n", SIZES)
def test_causes_plot(base, n):
    s, _, _ = scaled(base, n)
    fig = plots.causes_plot(s)
    check_size(fig, f"causes-{n}")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    counts = s["failure_cause"].astype(str).value_counts()
    assert sorted(labels) == sorted(counts.index)
    assert sum(p.get_width() for p in ax.patches) == n
    assert len(ax.patches) == len(counts)              # a bar per cause, never a mark per session
    shown = [t.get_text() for t in ax.texts]
    assert f"{counts.max():,}" in shown


@pytest.mark.parametrize("n", SIZES)
def test_replies_plot(base, n):
    s, t, r = scaled(base, n)
    fig = plots.replies_plot(s, r, t)
    check_size(fig, f"replies-{n}")
    left = fig.axes[0]
    smtp = s[s["proto"].astype(str) == "smtp"]
    assert sum(p.get_height() for p in left.patches) == len(smtp)          # each SMTP session once
    worst = worst_replies(smtp, r)["worst_reply"]
    classes = [t.get_text() for t in left.get_xticklabels()]
    assert classes == [c for c in plots.CLASSES if c in set((worst // 100).astype("string") + "xx")
                       or (c == "none" and worst.isna().any())]
    if n == 1:
        assert classes == ["5xx"]                  # auth_failed.pcap: 535, then QUIT's 221
    codes = [t.get_text() for t in fig.axes[1].get_xticklabels()]
    assert "535" in codes and len(codes) <= plots.MAX_CODES + 1
    assert sum(p.get_height() for p in fig.axes[1].patches) == int((worst >= 400).sum())
    if n == 50_000:
        assert {"421", "450", "535", "550", "554"} <= set(codes)


@pytest.mark.parametrize("n", SIZES)
def test_timeline_plot(base, n):
    s, _, _ = scaled(base, n)
    fig = plots.timeline_plot(s)
    check_size(fig, f"timeline-{n}")
    top, bottom = fig.axes[:2]
    layers = [p.get_data() for p in top.patches]
    assert sum(int(np.sum(d.values - d.baseline)) for d in layers) == n          # each session once
    edges = layers[0].edges
    assert len(edges) - 1 <= plots.MAX_BINS
    failing = int((s["failure_cause"].astype(str) != "ok").sum())
    box = fig.legends[0] if fig.legends else bottom.get_legend()    # under the axes before matplotlib 3.7
    legend = [t.get_text() for t in box.get_texts()] if box else []
    assert sum(int(x.rsplit("(", 1)[1].rstrip(")").replace(",", "")) for x in legend) == failing
    assert "start time (UTC), bins of" in bottom.get_xlabel()


def test_timeline_outlier_does_not_stretch_the_axis(base):
    s, _, _ = scaled(base, 50, span=pd.Timedelta(minutes=10))
    s.loc[len(s) - 1, "ts"] = s["ts"].iloc[0] + pd.Timedelta(days=3)
    fig = plots.timeline_plot(s)
    lo, hi = fig.axes[1].get_xlim()
    assert (hi - lo) < 1 / 24                      # under an hour drawn, not three days
    assert "not drawn: 0 earlier and 1 later session(s)" in fig.axes[1].get_xlabel()
    check_size(fig, "timeline-outlier")


@pytest.mark.parametrize("n", SIZES)
def test_latency_plot(base, n):
    s, _, r = scaled(base, n)
    lat = latencies_from_replies(r)
    fig = plots.latency_plot(lat)
    check_size(fig, f"latency-{n}")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    counts = lat.groupby("phase", observed=True).size()
    assert labels == [f"{p}  (n={k:,})" for p, k in counts.items()]
    drawn = [len(c.get_offsets()) for c in ax.collections]
    assert all(d <= plots.MAX_POINTS for d in drawn) and sum(drawn) == sum(min(k, plots.MAX_POINTS) for k in counts)
    assert ax.get_xlabel() == "milliseconds"


@pytest.mark.parametrize("fmt, magic", [("png", b"\x89PNG"), ("svg", b"<?xml"), ("pdf", b"%PDF-")])
def test_every_format(base, fmt, magic):
    s, _, _ = scaled(base, 50)
    data = plots.to_bytes(plots.causes_plot(s), fmt)
    assert data.lstrip()[:len(magic)] == magic
    assert data == plots.to_bytes(plots.causes_plot(s), fmt)      # no date or version stamp: reproducible
    with pytest.raises(ValueError):
        plots.to_bytes(plots.causes_plot(s), "jpg")


def test_date_axis_reads_as_dates(base):
    s, _, _ = scaled(base, 50, span=pd.Timedelta(hours=2))
    ax = plots.timeline_plot(s).axes[1]
    lo, hi = (mdates.num2date(x) for x in ax.get_xlim())
    assert lo.date().isoformat() == "2025-01-06" and (hi - lo).total_seconds() <= 3 * 3600
