"""Figures over the tables: failure causes, each session's worst reply, sessions over time, reply latencies.

Each plot is `(table, ...) -> matplotlib.figure.Figure`, built on `Figure` directly (no pyplot, no
display needed, safe in threads and on headless machines), and reads the same on 1, 50 or 50,000
sessions: bars are counted or binned, never one mark per session. An empty table gives a figure
that says "no data". Colours come from palette.py (the report's and the Wireshark profile's).
"""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import matplotlib
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..atomic import check_destination, write_bytes
from ..errors import ReadLog
from ..moved import keyword_renamed
from ..runner.streams import keep_streams
from ..tables.latency import latencies_from_packets
from ..tables.replies import code_class, replies_from_frames, reply_frames, worst_replies
from ..tables.sessions import sessions_and_transactions
from ..tables.verdicts import failing
from ..tshark.program import Tshark
from .palette import OK_COLOUR, cause_colour

FAIL_COLOUR = "#303030"     # all failing sessions together: darker than any cause colour, not one of them
FORMATS = ("png", "svg", "pdf")
CLASSES = ("2xx", "3xx", "4xx", "5xx", "none")
# Bin widths of the timeline, seconds: the smallest giving at most MAX_BINS bins is used.
BIN_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
             172800, 604800, 2592000, 7776000, 31536000)
MAX_BINS = 60
MIN_WINDOW = pd.Timedelta(minutes=1)   # the timeline never spans less
MAX_POINTS = 300      # latency points drawn per phase (an even sample by rank above that)
MAX_CODES = 10        # reply codes drawn one bar each; the rest share one
_MPL = tuple(int(x) for x in re.findall(r"\d+", matplotlib.__version__)[:2])
_HORIZONTAL = {"orientation": "horizontal"} if _MPL >= (3, 10) else {"vert": False}


def _figure(width: float = 7.5, height: float = 3.6) -> Figure:
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def no_data(title: str, why: str = "no data") -> Figure:
    """A small figure that says there was nothing to draw."""
    fig = _figure(height=1.6)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title, loc="left", fontsize=11)
    ax.text(0.5, 0.45, why, ha="center", va="center", fontsize=12, color="#777777", transform=ax.transAxes)
    return fig


def _tidy(ax, axis: str = "y") -> None:
    ax.spines[["top", "right"]].set_visible(False)
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_locator(MaxNLocator(integer=True))


def causes_plot(sessions: pd.DataFrame, title: str = "Sessions by failure cause") -> Figure:
    """Horizontal bars: sessions per failure cause, most frequent on top, `ok` muted."""
    if sessions.empty or "failure_cause" not in sessions:
        return no_data(title)
    counts = sessions["failure_cause"].astype("string").fillna("(none)").value_counts()
    counts = counts.sort_values(kind="stable")
    fig = _figure(height=max(1.8, 0.8 + 0.3 * len(counts)))
    ax = fig.add_subplot()
    bars = ax.barh(list(counts.index), list(counts.values), color=[cause_colour(c) for c in counts.index])
    ax.bar_label(bars, labels=[f"{v:,}" for v in counts.values], padding=3, fontsize=9)
    ax.set_xlabel("sessions")
    ax.set_title(title, loc="left", fontsize=11)
    ax.margins(x=0.14)
    _tidy(ax, "x")
    return fig


def _stacked(ax, labels: Sequence[str], ok_n: Sequence[int], bad_n: Sequence[int]) -> None:
    ax.bar(labels, ok_n, color=OK_COLOUR, label="ok sessions", width=0.7)
    top = ax.bar(labels, bad_n, bottom=ok_n, color=FAIL_COLOUR, label="failing sessions", width=0.7)
    ax.bar_label(top, labels=[f"{a + b:,}" for a, b in zip(ok_n, bad_n)], padding=2, fontsize=9)
    ax.margins(y=0.18)
    ax.set_xlim(-0.6, max(len(labels), 4) - 0.4)     # one or two bars keep a bar's width
    _tidy(ax)


def replies_plot(sessions: pd.DataFrame, replies: Optional[pd.DataFrame] = None,
                 transactions: Optional[pd.DataFrame] = None,
                 title: str = "Worst server reply per SMTP session") -> Figure:
    """Each SMTP session counted once, by its worst reply (the first 5xx, else the first 4xx, else the last
    reply): by class, and by code for the 4xx/5xx ones; split into ok and failing sessions.

    `replies` (tables.replies.replies_from_frames) holds every reply; without it, the sessions' and
    transactions' `last_reply` are what is counted.
    """
    if sessions.empty or "failure_cause" not in sessions:
        return no_data(title)
    smtp = sessions[sessions["proto"].astype("string") == "smtp"] if "proto" in sessions else sessions
    if smtp.empty:
        return no_data(title, "no SMTP sessions")
    worst = worst_replies(smtp, replies, transactions)["worst_reply"]
    cls = code_class(worst)
    bad = failing(smtp)
    fig = _figure(width=9.0, height=3.4)
    left, right = fig.subplots(1, 2, width_ratios=[1, 1.6])
    order = [c for c in CLASSES if (cls == c).any()]
    _stacked(left, order, [int(((cls == c) & ~bad).sum()) for c in order],
             [int(((cls == c) & bad).sum()) for c in order])
    left.set_ylabel("sessions")
    left.set_title("by class", loc="left", fontsize=10)
    refused = worst[worst >= 400]
    if len(refused):
        counts = refused.astype(int).value_counts()
        codes = sorted(counts.index[:MAX_CODES])
        labels = [str(c) for c in codes]
        ok_n = [int(((worst == c) & ~bad).sum()) for c in codes]
        bad_n = [int(((worst == c) & bad).sum()) for c in codes]
        rest = worst.isin(codes) | (worst < 400) | worst.isna()
        if (~rest).any():
            labels.append("other")
            ok_n.append(int((~rest & ~bad).sum()))
            bad_n.append(int((~rest & bad).sum()))
        _stacked(right, labels, ok_n, bad_n)
        right.set_title("4xx and 5xx, by code", loc="left", fontsize=10)
        if len(labels) > 7:
            right.tick_params(axis="x", labelrotation=45)
    else:
        right.set_axis_off()
        right.text(0.5, 0.5, "no 4xx or 5xx reply", ha="center", va="center", color="#777777",
                   transform=right.transAxes)
    source = "" if replies is not None else " (last replies only)"
    fig.suptitle(title + source, x=0.01, ha="left", fontsize=11)
    _legend_below(fig, left, ncol=2)
    return fig


def _legend_below(fig: Figure, ax, ncol: int) -> None:
    """`ax`'s legend under the figure (matplotlib 3.7+: 'outside lower center'; before: under `ax`, which the
    constrained layout also makes room for)."""
    handles, labels = ax.get_legend_handles_labels()
    try:
        fig.legend(handles, labels, frameon=False, fontsize=8, loc="outside lower center", ncol=ncol)
    except ValueError:
        ax.legend(handles, labels, frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22),
                  ncol=ncol)


def _window(ts: pd.Series) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The time range to draw: all sessions but outliers, a session farther from its neighbour than all the
    rest are spread (a clock reset to 1970, a stray file from another day); at most 1 % on each side."""
    t = np.sort(ts.to_numpy())
    lo, hi = 0, len(t) - 1
    limit = max(1, len(t) // 100)
    for _ in range(limit):
        if hi - lo >= 2 and t[lo + 1] - t[lo] > t[hi] - t[lo + 1]:
            lo += 1
        if hi - lo >= 2 and t[hi] - t[hi - 1] > t[hi - 1] - t[lo]:
            hi -= 1
    first, last = pd.Timestamp(t[lo]), pd.Timestamp(t[hi])
    if last - first < MIN_WINDOW:                   # a lone session: a minute around it, not a full-width bar
        pad = (MIN_WINDOW - (last - first)) / 2
        first, last = first - pad, last + pad
    return first, last


def _bins(lo: pd.Timestamp, hi: pd.Timestamp) -> tuple[int, pd.Timestamp, int]:
    """(bin width in seconds, first bin's start, number of bins): the narrowest BIN_STEPS width that covers
    lo..hi in at most MAX_BINS bins aligned on multiples of the width."""
    steps = [*BIN_STEPS, *(BIN_STEPS[-1] * k for k in range(2, 1000))]
    for step in steps:
        origin = pd.Timestamp(int(lo.value // (step * 10**9)) * step * 10**9)
        n = int((hi - origin).total_seconds() // step) + 1
        if n <= MAX_BINS:
            return step, origin, n
    return steps[-1], lo, MAX_BINS


def _step_text(step: int) -> str:
    for unit, n in (("days", 86400), ("h", 3600), ("min", 60)):
        if step >= n and step % n == 0:
            return f"{step // n} {unit}" if (unit, step) != ("days", n) else "1 day"
    return f"{step} s"


def timeline_plot(sessions: pd.DataFrame, title: str = "Sessions over time") -> Figure:
    """Sessions started per time bin (UTC): all sessions (ok and failing) on top, the failing ones by cause below.

    Bins are 1 s … 1 year (at most MAX_BINS across the window); a few sessions far from the rest
    (see _window) do not stretch the axis: they are counted in a note instead.
    """
    if sessions.empty or "ts" not in sessions or sessions["ts"].isna().all():
        return no_data(title)
    df = sessions[sessions["ts"].notna()]
    ts = df["ts"].dt.tz_convert(None) if getattr(df["ts"].dt, "tz", None) is not None else df["ts"]
    lo, hi = _window(ts)
    inside = ((ts >= lo) & (ts <= hi)).to_numpy()
    step, origin, n_bins = _bins(lo, hi)
    bins = ((ts[inside] - origin).dt.total_seconds() // step).astype(int).to_numpy()
    edges = [origin + pd.Timedelta(seconds=step * k) for k in range(n_bins)]
    x = mdates.date2num([*edges, edges[-1] + pd.Timedelta(seconds=step)])
    causes = df["failure_cause"].astype("string").fillna("(none)").to_numpy()[inside]
    bad = causes != "ok"
    bad_codes = pd.Series(causes[bad]).value_counts()
    legend_rows = -(-len(bad_codes) // 4) if len(bad_codes) else 0
    fig = _figure(width=9.0, height=4.4 + 0.2 * legend_rows)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[1, 1.3])
    ok_counts = np.bincount(bins[~bad], minlength=n_bins)
    bad_counts = np.bincount(bins[bad], minlength=n_bins)
    # Stacked steps, one artist per layer: as quick to draw for 10 bins as for 60, for 2 causes as for 28.
    top.stairs(bad_counts, x, fill=True, color=FAIL_COLOUR, label=f"failing ({int(bad_counts.sum()):,})")
    top.stairs(bad_counts + ok_counts, x, baseline=bad_counts, fill=True, color=OK_COLOUR,
               label=f"ok ({int(ok_counts.sum()):,})")
    top.set_ylabel("sessions")
    top.legend(frameon=False, fontsize=8, loc="upper left", ncol=2)
    _tidy(top)
    base = np.zeros(n_bins)
    for code in bad_codes.index:
        counts = np.bincount(bins[bad][causes[bad] == code], minlength=n_bins)
        bottom.stairs(base + counts, x, baseline=base.copy(), fill=True, color=cause_colour(code),
                      label=f"{code} ({int(counts.sum()):,})")
        base = base + counts
    bottom.set_ylabel("failing sessions")
    if not len(bad_codes):
        bottom.text(0.5, 0.5, "no failing session", ha="center", va="center", color="#777777",
                    transform=bottom.transAxes)
    else:
        _legend_below(fig, bottom, ncol=min(4, len(bad_codes)))
    _tidy(bottom)
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    bottom.set_xlim(x[0], x[-1])
    top.set_ylim(0, max(1, int((ok_counts + bad_counts).max())) * 1.15)
    bottom.set_ylim(0, max(1, int(base.max())) * 1.1)
    left_out, right_out = int((ts < lo).sum()), int((ts > hi).sum())
    note = f"start time (UTC), bins of {_step_text(step)}"
    if left_out or right_out:
        note += f"; not drawn: {left_out:,} earlier and {right_out:,} later session(s) far from the rest"
    bottom.set_xlabel(note, fontsize=9)
    top.set_title(title, loc="left", fontsize=11)
    return fig


def _even_sample(values: np.ndarray, n: int) -> np.ndarray:
    """At most n values, evenly spaced by rank (the distribution's shape kept, deterministically)."""
    if len(values) <= n:
        return values
    ordered = np.sort(values)
    return ordered[np.linspace(0, len(ordered) - 1, n).round().astype(int)]


def latency_plot(lat: pd.DataFrame, title: str = "Server reply latency") -> Figure:
    """Box plot per phase (greeting, EHLO→250, DATA→354, end-of-data→final reply), milliseconds, with the
    replies as points (an even sample of MAX_POINTS per phase when there are more)."""
    if lat.empty or "latency" not in lat:
        return no_data(title)
    ms = lat["latency"].dt.total_seconds() * 1000
    phases = [p for p in (lat["phase"].cat.categories if isinstance(lat["phase"].dtype, pd.CategoricalDtype)
                          else sorted(set(lat["phase"]))) if (lat["phase"] == p).any()]
    data = [ms[(lat["phase"] == p).to_numpy()].dropna().to_numpy() for p in phases]
    fig = _figure(height=max(2.2, 1.2 + 0.55 * len(phases)))
    ax = fig.add_subplot()
    labels = [f"{p}  (n={len(d):,})" for p, d in zip(phases, data)]
    ax.boxplot(data, **_HORIZONTAL, widths=0.5, showfliers=False,
               medianprops={"color": "#2c3e50"}, boxprops={"color": "#7f8c8d"})
    for i, d in enumerate(data, start=1):
        pts = _even_sample(d, MAX_POINTS)
        jitter = (((np.arange(len(pts)) * 7919) % 13) / 13 - 0.5) * 0.3
        ax.scatter(pts, i + jitter, s=12, color="#3c5ac3", alpha=0.6 if len(pts) > 50 else 0.8, zorder=3,
                   edgecolors="none")
    ax.set_yticks(range(1, len(phases) + 1), labels, fontsize=9)
    ax.invert_yaxis()
    positive = ms[ms > 0]
    if len(positive) and positive.max() / max(positive.min(), 1e-6) > 100:
        ax.set_xscale("log")
    ax.set_xlabel("milliseconds")
    ax.set_title(title, loc="left", fontsize=11)
    ax.grid(axis="x", color="#eeeeee")
    return fig


def to_bytes(fig: Figure, fmt: str = "png") -> bytes:
    """The figure rendered as PNG, SVG or PDF bytes (no display); the same figure gives the same bytes."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown figure format {fmt!r}; one of {', '.join(FORMATS)}")
    buf = io.BytesIO()
    metadata = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}[fmt]
    with matplotlib.rc_context({"svg.hashsalt": "smtpdiag"}):      # SVG ids from a fixed salt, not random
        fig.savefig(buf, format=fmt, dpi=100 if fmt == "png" else None, metadata=metadata)
    return buf.getvalue()


KINDS: dict[str, Callable[..., Figure]] = {
    "causes": causes_plot, "replies": replies_plot, "timeline": timeline_plot, "latency": latency_plot,
}


@keyword_renamed(report="read_log")
def plot(kind: str, captures: Iterable[str] | str, tshark: Optional[Tshark] = None,
         read_log: Optional[ReadLog] = None, decode_as: Sequence[str] = ()) -> Figure:
    """Read the captures and draw one figure: `kind` in causes, replies, timeline, latency.

    Every kind reads cached tables: the sessions' run, and for replies and latency the per-frame
    reply run (tables.replies.reply_frames); unchanged files are not dissected again.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown plot {kind!r}; one of {', '.join(KINDS)}")
    if kind == "latency":
        return latency_plot(latencies_from_packets(reply_frames(captures, tshark=tshark, read_log=read_log,
                                                                decode_as=decode_as)))
    with keep_streams():        # the other kinds read a pipe input twice: spooled to a private file
        s, t = sessions_and_transactions(captures, tshark=tshark, read_log=read_log, decode_as=decode_as)
        if kind == "replies":
            frames = reply_frames(captures, tshark=tshark, read_log=ReadLog(), decode_as=decode_as)
            return replies_plot(s, replies_from_frames(frames), t)
        return KINDS[kind](s)


@keyword_renamed(report="read_log")
def write_plot(kind: str, captures: Iterable[str] | str, path: str | Path, tshark: Optional[Tshark] = None,
               read_log: Optional[ReadLog] = None, decode_as: Sequence[str] = ()) -> Path:
    """Draw `kind` for the captures into `path`; the format (png, svg or pdf) comes from its suffix."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"{path.name}: the output must end in .png, .svg or .pdf")
    check_destination(path)     # refused before the captures are read, not after
    return write_bytes(path, to_bytes(plot(kind, captures, tshark=tshark, read_log=read_log, decode_as=decode_as),
                                      fmt))
