"""summary(): counts over a sessions table, by failure cause, reply-code class and server."""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import pandas as pd

from ..errors import ReadLog
from ..tshark.program import Tshark
from .sessions import sessions as sessions_table
from .verdicts import failing


def reply_class(last_reply: pd.Series) -> pd.Series:
    """'250 OK' → '2xx'; missing → <NA>."""
    first = last_reply.astype("string").str.extract(r"^([2-5])\d\d", expand=False)
    return (first + "xx").astype("string")


def summary(sessions: pd.DataFrame) -> pd.DataFrame:
    """Long-format counts: columns `dimension` (failure_cause, reply_class, server), `value`, `sessions`, `failing`."""
    if sessions.empty:
        return pd.DataFrame({"dimension": pd.Series([], dtype="string"), "value": pd.Series([], dtype="string"),
                             "sessions": pd.Series([], dtype="UInt64"), "failing": pd.Series([], dtype="UInt64")})
    df = sessions.copy()
    df["failing"] = failing(df).astype("int64")
    df["reply_class"] = reply_class(df["last_reply"]).fillna("none")
    df["server"] = df["server_ip"].astype("string").fillna("?") + ":" + df["server_port"].astype("string").fillna("?")
    parts = []
    for dim in ("failure_cause", "reply_class", "server"):
        g = df.groupby(df[dim].astype("string"), observed=True, dropna=False).agg(
            sessions=("failing", "size"), failing=("failing", "sum")).reset_index()
        g = g.rename(columns={dim: "value"})
        g.insert(0, "dimension", dim)
        parts.append(g.sort_values(["sessions", "value"], ascending=[False, True]))
    out = pd.concat(parts, ignore_index=True)
    out["dimension"] = out["dimension"].astype("string")
    out["value"] = out["value"].astype("string")
    out["sessions"] = out["sessions"].astype("UInt64")
    out["failing"] = out["failing"].astype("UInt64")
    return out


def capture_summary(captures: Iterable[str] | str, tshark: Optional[Tshark] = None,
                    read_log: Optional[ReadLog] = None, decode_as: Sequence[str] = ()) -> pd.DataFrame:
    """summary() of the sessions of these captures (`smtpdiag summary`)."""
    return summary(sessions_table(captures, tshark=tshark, read_log=read_log, decode_as=decode_as))
