"""latencies(): how long servers took to answer, per reply, from the plugin's reply-latency fields."""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import pandas as pd

from ..errors import ReadLog
from ..moved import keyword_renamed
from ..tshark.program import Tshark
from .replies import REPLY_FIELDS, REPLY_FILTER, replies_from_frames, reply_frames

LATENCY_FIELDS = REPLY_FIELDS
LATENCY_FILTER = REPLY_FILTER

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


def latencies_from_replies(r: pd.DataFrame) -> pd.DataFrame:
    """Long table (pcap_file, stream, frame, phase, reply_code, latency) from a `replies_from_frames()` table."""
    if r.empty:
        return _empty()
    greeting = r["greeting_latency"].notna()
    # One greeting row per frame: the frame's greeting latency, with the code of its greeting reply.
    first_of_frame = ~r.duplicated(["pcap_file", "stream", "frame"]) | (r["reply_to"] == "<greeting>").fillna(False)
    greet = r[greeting & first_of_frame].drop_duplicates(["pcap_file", "stream", "frame"], keep="last")
    parts = [greet.assign(phase="greeting", latency=greet["greeting_latency"])]
    for phase, (verb, codes) in list(PHASES.items())[1:]:
        keep = (r["reply_to"] == verb).fillna(False).astype(bool)
        if codes:
            keep &= (r["reply_code"].isin(codes) | r["reply_code"].isna()).fillna(False).astype(bool)
        sel = r[keep]
        lat = sel["final_latency"].fillna(sel["latency"]) if verb == "<end-of-data>" else sel["latency"]
        parts.append(sel.assign(phase=phase, latency=lat))
    out = pd.concat(parts, ignore_index=True)
    out = out[out["latency"].notna()].reset_index(drop=True)
    return pd.DataFrame({
        "pcap_file": out["pcap_file"].astype("string").astype("category"), "stream": out["stream"].astype("UInt32"),
        "frame": out["frame"].astype("UInt32"), "phase": out["phase"].astype(_empty()["phase"].dtype),
        "reply_code": out["reply_code"].astype("UInt16"), "latency": out["latency"].astype("timedelta64[ns]"),
    })


def latencies_from_packets(p: pd.DataFrame) -> pd.DataFrame:
    """Long table (pcap_file, stream, frame, phase, reply_code, latency) from a `reply_frames()` table or a
    `packets(..., LATENCY_FIELDS)` one (a field with several values in a frame may come as a list)."""
    if p.empty:
        return _empty()
    return latencies_from_replies(replies_from_frames(p))


@keyword_renamed(report="read_log")
def latencies(captures: Iterable[str] | str, tshark: Optional[Tshark] = None,
              read_log: Optional[ReadLog] = None, decode_as: Sequence[str] = ()) -> pd.DataFrame:
    """Server reply latencies, one row per reply: greeting, EHLO→250, DATA→354, end-of-data→final reply.

    `latency` is a timedelta; `frame`/`stream` point back into the capture. The tshark pass behind
    it is cached like the sessions' run (see `reply_frames`).
    """
    return latencies_from_packets(reply_frames(captures, tshark=tshark, read_log=read_log, decode_as=decode_as))
