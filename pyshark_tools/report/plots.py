"""Figures over the tables: failure causes, reply-code classes, a session timeline, reply latencies.

Each plot is `(df, ...) -> matplotlib.figure.Figure`, built on `Figure` directly (no pyplot, no
display needed, safe in threads and on headless machines). An empty table gives a figure
that says "no data".
"""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import matplotlib
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..errors import ReadLog
from ..moved import keyword_renamed
from ..tables.latency import latencies
from ..tables.sessions import sessions
from ..tables.summary import reply_class
from ..tables.verdicts import failing
from ..tshark.program import Tshark
from .causes import CAUSES

OK_COLOUR = "#c8c8c8"
FAIL_COLOUR = "#c0392b"
_PALETTE = ["#c0392b", "#e67e22", "#8e44ad", "#2980b9", "#16a085", "#d35400", "#7f8c8d", "#27ae60",
            "#f1c40f", "#2c3e50", "#e84393", "#6c5ce7", "#00cec9", "#b33939", "#218c74", "#cc8e35"]
_KNOWN = [c for c in CAUSES if c != "ok"]
_MPL = tuple(int(x) for x in re.findall(r"\d+", matplotlib.__version__)[:2])
_HORIZONTAL = {"orientation": "horizontal"} if _MPL >= (3, 10) else {"vert": False}


def cause_colour(code: str) -> str:
    """A stable colour per cause code; `ok` is a muted grey."""
    if code == "ok":
        return OK_COLOUR
    i = _KNOWN.index(code) if code in _KNOWN else len(_KNOWN) + sum(map(ord, code))
    return _PALETTE[i % len(_PALETTE)]


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


def causes_plot(sessions: pd.DataFrame, title: str = "Sessions by failure cause") -> Figure:
    """Horizontal bars: sessions per failure cause, most frequent on top, `ok` muted."""
    if sessions.empty or "failure_cause" not in sessions:
        return no_data(title)
    counts = sessions["failure_cause"].astype("string").fillna("(none)").value_counts()
    counts = counts.sort_values(kind="stable")
    fig = _figure(height=max(1.8, 0.8 + 0.32 * len(counts)))
    ax = fig.add_subplot()
    bars = ax.barh(list(counts.index), list(counts.values), color=[cause_colour(c) for c in counts.index])
    ax.bar_label(bars, padding=3, fontsize=9)
    ax.set_xlabel("sessions")
    ax.set_title(title, loc="left", fontsize=11)
    ax.margins(x=0.12)
    ax.spines[["top", "right"]].set_visible(False)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def replies_plot(df: pd.DataFrame, title: str = "Last reply code class per session") -> Figure:
    """Bars per reply class (2xx…5xx, none) of the `last_reply` column, split into ok and failing rows."""
    if df.empty or "last_reply" not in df:
        return no_data(title)
    cls = reply_class(df["last_reply"]).fillna("none")
    bad = failing(df) if "failure_cause" in df else pd.Series(False, index=df.index)
    order = [c for c in ("2xx", "3xx", "4xx", "5xx", "none") if (cls == c).any()]
    ok_n = [int(((cls == c) & ~bad).sum()) for c in order]
    bad_n = [int(((cls == c) & bad).sum()) for c in order]
    fig = _figure(height=3.0)
    ax = fig.add_subplot()
    ax.bar(order, ok_n, color=OK_COLOUR, label="ok")
    top = ax.bar(order, bad_n, bottom=ok_n, color=FAIL_COLOUR, label="failing")
    ax.bar_label(top, labels=[str(a + b) for a, b in zip(ok_n, bad_n)], padding=2, fontsize=9)
    ax.set_ylabel("sessions")
    ax.set_title(title, loc="left", fontsize=11)
    ax.legend(frameon=False, fontsize=9)
    ax.margins(y=0.15)
    ax.spines[["top", "right"]].set_visible(False)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def timeline_plot(sessions: pd.DataFrame, by: str = "server", title: Optional[str] = None) -> Figure:
    """Sessions over time: x = start time (UTC), y = server (ip:port) or client, colour = failure cause."""
    title = title or f"Session timeline by {by}"
    if sessions.empty or "ts" not in sessions or sessions["ts"].isna().all():
        return no_data(title)
    df = sessions[sessions["ts"].notna()]
    if by == "server":
        y = df["server_ip"].astype("string").fillna("?") + ":" + df["server_port"].astype("string").fillna("?")
    else:
        y = df["client_ip"].astype("string").fillna("?")
    ts = df["ts"].dt.tz_convert(None) if getattr(df["ts"].dt, "tz", None) is not None else df["ts"]
    causes = df["failure_cause"].astype("string").fillna("(none)")
    lanes = sorted(set(y))
    lane = y.map({v: i for i, v in enumerate(lanes)})
    codes = sorted(set(causes), key=lambda c: (c != "ok", c))
    ncol = min(4, len(codes))
    legend_rows = -(-len(codes) // ncol)
    fig = _figure(height=1.9 + 0.32 * len(lanes) + 0.22 * legend_rows)
    ax = fig.add_subplot()
    for code in codes:
        sel = (causes == code).to_numpy()
        ax.scatter(ts[sel], lane[sel], s=28 if code == "ok" else 44, color=cause_colour(code),
                   alpha=0.55 if code == "ok" else 0.95, label=code, zorder=1 if code == "ok" else 2,
                   edgecolors="none")
    ax.set_yticks(range(len(lanes)), lanes, fontsize=8)
    ax.set_ylim(-0.7, len(lanes) - 0.3)
    ax.set_xlabel("session start (UTC)")
    ax.set_title(title, loc="left", fontsize=11)
    fig.legend(frameon=False, fontsize=8, loc="outside lower center", ncol=ncol)
    ax.grid(axis="x", color="#eeeeee")
    return fig


def latency_plot(lat: pd.DataFrame, title: str = "Server reply latency") -> Figure:
    """Box plot plus points per phase (greeting, EHLO→250, DATA→354, end-of-data→final reply), seconds."""
    if lat.empty or "latency" not in lat:
        return no_data(title)
    secs = lat["latency"].dt.total_seconds()
    phases = [p for p in (lat["phase"].cat.categories if isinstance(lat["phase"].dtype, pd.CategoricalDtype)
                          else sorted(set(lat["phase"]))) if (lat["phase"] == p).any()]
    data = [secs[(lat["phase"] == p).to_numpy()].dropna().to_numpy() for p in phases]
    fig = _figure(height=max(2.2, 1.2 + 0.55 * len(phases)))
    ax = fig.add_subplot()
    labels = [f"{p}  (n={len(d)})" for p, d in zip(phases, data)]
    ax.boxplot(data, **_HORIZONTAL, widths=0.5, showfliers=False,
               medianprops={"color": "#2c3e50"}, boxprops={"color": "#7f8c8d"})
    for i, d in enumerate(data, start=1):
        jitter = [(((k * 7919) % 13) / 13 - 0.5) * 0.3 for k in range(len(d))]
        ax.scatter(d, [i + j for j in jitter], s=14, color="#2980b9", alpha=0.7, zorder=3)
    ax.set_yticks(range(1, len(phases) + 1), labels, fontsize=9)
    ax.invert_yaxis()
    positive = secs[secs > 0]
    if len(positive) and positive.max() / max(positive.min(), 1e-9) > 100:
        ax.set_xscale("log")
    ax.set_xlabel("seconds")
    ax.set_title(title, loc="left", fontsize=11)
    ax.grid(axis="x", color="#eeeeee")
    return fig


def to_bytes(fig: Figure, fmt: str = "png") -> bytes:
    """The figure rendered as PNG or SVG bytes (Agg; no display)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=100 if fmt == "png" else None, metadata={"Software": None} if fmt == "png" else None)
    return buf.getvalue()


KINDS: dict[str, Callable[..., Figure]] = {
    "causes": causes_plot, "replies": replies_plot, "timeline": timeline_plot, "latency": latency_plot,
}


@keyword_renamed(report="read_log")
def plot(kind: str, captures: Iterable[str] | str, tshark: Optional[Tshark] = None,
         read_log: Optional[ReadLog] = None, decode_as: Sequence[str] = ()) -> Figure:
    """Read the captures and draw one figure: `kind` in causes, replies, timeline, latency."""
    if kind not in KINDS:
        raise ValueError(f"unknown plot {kind!r}; one of {', '.join(KINDS)}")
    if kind == "latency":
        return latency_plot(latencies(captures, tshark=tshark, read_log=read_log, decode_as=decode_as))
    return KINDS[kind](sessions(captures, tshark=tshark, read_log=read_log, decode_as=decode_as))


@keyword_renamed(report="read_log")
def write_plot(kind: str, captures: Iterable[str] | str, path: str | Path, tshark: Optional[Tshark] = None,
               read_log: Optional[ReadLog] = None, decode_as: Sequence[str] = ()) -> Path:
    """Draw `kind` for the captures into `path`; the format (png or svg) comes from its suffix."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise ValueError(f"{path.name}: the output must end in .png or .svg")
    path.write_bytes(to_bytes(plot(kind, captures, tshark=tshark, read_log=read_log, decode_as=decode_as), fmt))
    return path
