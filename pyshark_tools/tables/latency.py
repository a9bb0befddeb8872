"""latencies(): how long servers took to answer, per frame, from the plugin's reply-latency fields."""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import pandas as pd

from ..errors import ReadLog
from ..moved import keyword_renamed
from ..tshark.program import Tshark
from .packets import packets

LATENCY_FIELDS = [
    "frame.number", "tcp.stream", "smtpdiag.reply_to", "smtpdiag.reply_code",
    "smtpdiag.reply_latency", "smtpdiag.greeting_latency", "smtpdiag.final_reply_latency",
]
LATENCY_FILTER = "smtpdiag.reply_latency or smtpdiag.greeting_latency"

# phase label -> (reply_to value, reply codes that count; empty = any)
PHASES: dict[str, tuple[str, tuple[int, ...]]] = {
    "greeting": ("<greeting>", ()),
    "EHLO → 250": ("EHLO", (250,)),
    "DATA → 354": ("DATA", (354,)),
    "end-of-data → final reply": ("<end-of-data>", ()),
}
PHASE_ORDER = list(PHASES)


def _empty() -> pd.DataFrame:
    return pd.DataFrame({
        "pcap_file": pd.Series([], dtype="category"), "stream": pd.Series([], dtype="UInt32"),
        "frame": pd.Series([], dtype="UInt32"),
        "phase": pd.Series([], dtype=pd.CategoricalDtype(PHASE_ORDER, ordered=True)),
        "reply_code": pd.Series([], dtype="UInt16"), "latency": pd.Series([], dtype="timedelta64[ns]"),
    })


def latencies_from_packets(p: pd.DataFrame) -> pd.DataFrame:
    """Long table (pcap_file, stream, frame, phase, reply_code, latency) from a `packets(..., LATENCY_FIELDS)` frame."""
    if p.empty:
        return _empty()
    reply_to = p["smtpdiag.reply_to"].astype("string")
    code = pd.to_numeric(p["smtpdiag.reply_code"], errors="coerce") if "smtpdiag.reply_code" in p else None
    parts = []
    for phase, (verb, codes) in PHASES.items():
        keep = (reply_to == verb).fillna(False).astype(bool)
        if codes and code is not None:
            keep &= (code.isin(codes) | code.isna()).astype(bool)
        secs = p["smtpdiag.reply_latency"]
        if phase == "greeting":
            keep |= p["smtpdiag.greeting_latency"].notna().astype(bool)
            secs = p["smtpdiag.greeting_latency"].fillna(secs)
        elif verb == "<end-of-data>":
            secs = p["smtpdiag.final_reply_latency"].fillna(secs)
        sel = p[keep]
        parts.append(pd.DataFrame({
            "pcap_file": sel["pcap_file"].astype("string"), "stream": sel["tcp.stream"],
            "frame": sel["frame.number"], "phase": phase,
            "reply_code": code[keep] if code is not None else pd.NA,
            "latency": pd.to_timedelta(secs[keep].astype("float64"), unit="s"),
        }))
    out = pd.concat(parts, ignore_index=True)
    out = out[out["latency"].notna()].reset_index(drop=True)
    typed = _empty()
    return pd.DataFrame({
        "pcap_file": out["pcap_file"].astype("category"), "stream": out["stream"].astype("UInt32"),
        "frame": out["frame"].astype("UInt32"), "phase": out["phase"].astype(typed["phase"].dtype),
        "reply_code": pd.to_numeric(out["reply_code"], errors="coerce").astype("UInt16"),
        "latency": out["latency"].astype("timedelta64[ns]"),
    })


@keyword_renamed(report="read_log")
def latencies(captures: Iterable[str] | str, tshark: Optional[Tshark] = None,
              read_log: Optional[ReadLog] = None, decode_as: Sequence[str] = ()) -> pd.DataFrame:
    """Server reply latencies, one row per answering frame: greeting, EHLO→250, DATA→354, end-of-data→final reply.

    `latency` is a timedelta; `frame`/`stream` point back into the capture.
    """
    p = packets(captures, LATENCY_FIELDS, display_filter=LATENCY_FILTER, tshark=tshark,
                read_log=read_log, decode_as=decode_as)
    return latencies_from_packets(p)
