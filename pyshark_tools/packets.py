"""packets(): any tshark fields, the plugin's included, as a typed DataFrame (for notebook work)."""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import pandas as pd

from .inputs import expand_inputs
from .rows import guess_kind, read_rows, typed_frame
from .sessions import RunReport
from .tshark import StreamResult, Tshark, stream_fields

DEFAULT_FIELDS = (
    "frame.number", "frame.time_epoch", "tcp.stream", "ip.src", "tcp.srcport", "ip.dst", "tcp.dstport",
    "tcp.len", "smtpdiag.role", "smtpdiag.command", "smtpdiag.reply_code", "smtpdiag.reply_to",
    "smtpdiag.failure_cause", "smtpdiag.detail",
)


def packets(captures: Iterable[str] | str, fields: Sequence[str] = DEFAULT_FIELDS,
            display_filter: str = "smtpdiag", tshark: Optional[Tshark] = None,
            report: Optional[RunReport] = None, two_pass: bool = True,
            decode_as: Sequence[str] = ()) -> pd.DataFrame:
    """One row per frame matching `display_filter`, one typed column per field.

    Field types come from `tshark -G fields`; an unknown field is a clear error,
    never an empty table. Column names are the field names; `pcap_file` is added.
    """
    ts = tshark or Tshark.discover()
    ts.check_plugin()
    ts.check_fields(list(fields))
    types = ts.field_types()
    cols = []
    for f in fields:
        kind = "time" if f == "frame.time_epoch" else guess_kind(types.get(f, "FT_STRING"))
        if kind == "str" and types.get(f) in ("FT_STRING", "FT_STRINGZ") and f.endswith("anomalies"):
            kind = "list"
        cols.append((f, f, kind))
    report = report if report is not None else RunReport()
    frames = []
    for cap in expand_inputs(captures, decode_as=decode_as, report=report):
        res = StreamResult()
        rows = read_rows(stream_fields(ts, str(cap.path), list(fields), display_filter,
                                       extra=cap.decode_args, two_pass=two_pass, result=res), fields)
        if res.returncode != 0:
            (report.damaged if rows else report.failed)[str(cap.path)] = res.error_line
        df = typed_frame(rows, cols)
        df.insert(0, "pcap_file", cap.name)
        frames.append(df)
    out = pd.concat(frames, ignore_index=True) if frames else typed_frame([], cols)
    out["pcap_file"] = out["pcap_file"].astype("category") if "pcap_file" in out else None
    return out
