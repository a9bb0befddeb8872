"""Server replies: every reply the plugin saw (a cached per-frame run of its reply fields), and each session's worst.

The plugin's sessions table keeps only the *last* reply of a session (`last_reply`), which is
QUIT's 221 after most rejections. The per-frame fields `smtpdiag.reply_code`/`reply_to` hold
every reply; `worst_replies()` aggregates them per session (the first 5xx, else the first 4xx,
else the last reply). That is counting, not a verdict: `failure_cause` stays the plugin's.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd

from ..errors import ReadLog
from ..runner.run import read_captures
from ..tshark.program import Tshark
from ..tshark.stream import SEP
from .columns import typed_frame

REPLY_FIELDS = [
    "frame.number", "tcp.stream", "smtpdiag.reply_to", "smtpdiag.reply_code",
    "smtpdiag.reply_latency", "smtpdiag.greeting_latency", "smtpdiag.final_reply_latency",
]
REPLY_FILTER = "smtpdiag.reply_code or smtpdiag.reply_latency or smtpdiag.greeting_latency"
_KINDS = {"frame.number": "uint32", "tcp.stream": "uint32", "smtpdiag.reply_to": "list",
          "smtpdiag.reply_code": "list", "smtpdiag.reply_latency": "list",
          "smtpdiag.greeting_latency": "float", "smtpdiag.final_reply_latency": "float"}


def reply_frames(captures: Iterable[str] | str, tshark: Optional[Tshark] = None,
                 read_log: Optional[ReadLog] = None, decode_as: Sequence[str] = ()) -> pd.DataFrame:
    """The frames that carry a server reply: `pcap_file` and one column per REPLY_FIELDS field.

    One tshark pass per file (the plugin adds these fields on the first pass), kept in the result
    cache like the sessions' run: a second call on unchanged files runs no tshark. `reply_to`,
    `reply_code` and `reply_latency` are lists (pipelined replies share a frame). A reply the
    plugin can only read once later frames show what the client sent (bytes the server
    acknowledged that the capture lacks) is not in this one-pass table; `tshark -2` shows it.
    """
    run = read_captures(captures, REPLY_FIELDS, tshark, read_log, decode_as, display_filter=REPLY_FILTER)
    df = typed_frame(run.rows, [(f, f, _KINDS[f]) for f in REPLY_FIELDS])
    df.insert(0, "pcap_file", pd.Series(run.names, dtype="object").astype("category") if run.names
              else pd.Series([], dtype="category"))
    return df


def _values(cell: object) -> list[str]:
    """A cell of a per-frame table as a list of text values: lists as they are, a scalar as one, missing as none."""
    if isinstance(cell, (list, tuple, np.ndarray)):
        return [str(v) for v in cell if v is not None and str(v) != ""]
    if cell is None or (not isinstance(cell, str) and pd.isna(cell)):
        return []
    return [v for v in str(cell).split(SEP) if v != ""]


def _first_float(cell: object) -> float:
    vals = _values(cell)
    try:
        return float(vals[0]) if vals else float("nan")
    except ValueError:
        return float("nan")


def _empty_replies() -> pd.DataFrame:
    return pd.DataFrame({
        "pcap_file": pd.Series([], dtype="category"), "stream": pd.Series([], dtype="UInt32"),
        "frame": pd.Series([], dtype="UInt32"), "reply_to": pd.Series([], dtype="string"),
        "reply_code": pd.Series([], dtype="UInt16"), "latency": pd.Series([], dtype="timedelta64[ns]"),
        "greeting_latency": pd.Series([], dtype="timedelta64[ns]"),
        "final_latency": pd.Series([], dtype="timedelta64[ns]"),
    })


def replies_from_frames(p: pd.DataFrame) -> pd.DataFrame:
    """One row per reply: pcap_file, stream, frame, reply_to, reply_code, latency (command → reply), and the
    frame's greeting/final-reply latencies, from a `reply_frames()` (or `packets(..., REPLY_FIELDS)`) table.

    A frame with several replies gives several rows. Codes, commands and latencies are paired in
    order when the frame holds as many of each; otherwise the latencies that cannot be paired are left out.
    """
    if p.empty:
        return _empty_replies()
    rows = []
    for name, stream, frame, to, code, lat, greet, final in zip(
            p["pcap_file"].astype("string"), p["tcp.stream"], p["frame.number"], p["smtpdiag.reply_to"],
            p["smtpdiag.reply_code"], p["smtpdiag.reply_latency"], p["smtpdiag.greeting_latency"],
            p["smtpdiag.final_reply_latency"]):
        tos, codes, lats = _values(to), _values(code), _values(lat)
        n = max(len(tos), len(codes), 1 if (len(lats) or _values(greet)) else 0)
        for i in range(n):
            rows.append((name, stream, frame,
                         tos[i] if len(tos) == n else (tos[0] if n == 1 and tos else None),
                         codes[i] if len(codes) == n else None,
                         lats[i] if len(lats) == n else None,
                         _first_float(greet), _first_float(final)))
    if not rows:
        return _empty_replies()
    raw = pd.DataFrame(rows, columns=["pcap_file", "stream", "frame", "reply_to", "reply_code", "latency",
                                      "greeting_latency", "final_latency"])
    secs = pd.to_numeric(raw["latency"], errors="coerce")
    return pd.DataFrame({
        "pcap_file": raw["pcap_file"].astype("category"),
        "stream": pd.to_numeric(raw["stream"], errors="coerce").astype("UInt32"),
        "frame": pd.to_numeric(raw["frame"], errors="coerce").astype("UInt32"),
        "reply_to": raw["reply_to"].astype("string"),
        "reply_code": pd.to_numeric(raw["reply_code"], errors="coerce").astype("UInt16"),
        "latency": pd.to_timedelta(secs, unit="s"),
        "greeting_latency": pd.to_timedelta(raw["greeting_latency"], unit="s"),
        "final_latency": pd.to_timedelta(raw["final_latency"], unit="s"),
    })


def _codes_of(text: pd.Series) -> pd.Series:
    """'550 5.7.1 denied' → 550; anything else → <NA>."""
    return pd.to_numeric(text.astype("string").str.extract(r"^([2-5]\d\d)", expand=False), errors="coerce")


def worst_replies(sessions: pd.DataFrame, replies: Optional[pd.DataFrame] = None,
                  transactions: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Per SMTP session (the sessions' index): `worst_reply`, the first 5xx it got, else its first 4xx, else its
    last reply; `first_failing_reply`, its first 4xx/5xx; `replies_seen`, how many replies were counted.

    The replies counted are those of `replies` (replies_from_frames) inside the session's frames; without
    them, the session's `last_reply` and its transactions' `last_reply` (what the plugin's tables keep).
    Sessions of other protocols get <NA>.
    """
    out = pd.DataFrame({"worst_reply": pd.Series(pd.NA, index=sessions.index, dtype="UInt16"),
                        "first_failing_reply": pd.Series(pd.NA, index=sessions.index, dtype="UInt16"),
                        "replies_seen": pd.Series(0, index=sessions.index, dtype="UInt32")})
    if not len(sessions):
        return out
    smtp = sessions[sessions["proto"].astype("string") == "smtp"] if "proto" in sessions else sessions
    keys = pd.DataFrame({"row": smtp.index, "pcap_file": smtp["pcap_file"].astype("string").to_numpy(),
                         "stream": smtp["stream"].astype("Int64").to_numpy(),
                         "lo": smtp["first_frame"].astype("Int64").fillna(0).to_numpy(),
                         "hi": smtp["last_frame"].astype("Int64").fillna(np.iinfo(np.int64).max).to_numpy()})
    if replies is not None:
        seen = pd.DataFrame({"pcap_file": replies["pcap_file"].astype("string"),
                             "stream": replies["stream"].astype("Int64"), "frame": replies["frame"].astype("Int64"),
                             "code": replies["reply_code"].astype("Int64")})
        seen = seen.merge(keys, on=["pcap_file", "stream"])
        seen = seen[(seen["frame"] >= seen["lo"]) & (seen["frame"] <= seen["hi"])]
        seen = seen[["row", "frame", "code"]]
    else:
        parts = [pd.DataFrame({"row": smtp.index, "frame": smtp["last_frame"].astype("Int64").to_numpy(),
                               "code": _codes_of(smtp["last_reply"]).to_numpy()})]
        if transactions is not None and len(transactions):
            tx = pd.DataFrame({"pcap_file": transactions["pcap_file"].astype("string"),
                               "stream": transactions["stream"].astype("Int64"),
                               "frame": transactions["last_frame"].astype("Int64"),
                               "code": _codes_of(transactions["last_reply"])}).merge(keys, on=["pcap_file", "stream"])
            parts.append(tx[(tx["frame"].isna()) | ((tx["frame"] >= tx["lo"]) & (tx["frame"] <= tx["hi"]))]
                         [["row", "frame", "code"]])
        seen = pd.concat(parts, ignore_index=True)
    seen = seen[seen["code"].notna()].sort_values(["row", "frame"], kind="stable")
    if not len(seen):
        return out
    cls = seen["code"] // 100
    first5 = seen[cls == 5].groupby("row")["code"].first()
    first4 = seen[cls == 4].groupby("row")["code"].first()
    last = seen.groupby("row")["code"].last()
    worst = first5.combine_first(first4).combine_first(last)
    failing = seen[cls >= 4].groupby("row")["code"].first()
    out.loc[worst.index, "worst_reply"] = worst.astype("UInt16")
    out.loc[failing.index, "first_failing_reply"] = failing.astype("UInt16")
    out.loc[last.index, "replies_seen"] = seen.groupby("row").size().astype("UInt32")
    return out


def code_class(code: pd.Series) -> pd.Series:
    """550 → '5xx'; missing → 'none'."""
    c = pd.to_numeric(code, errors="coerce").astype("Int64")
    return ((c // 100).astype("string") + "xx").fillna("none").astype("string")
