"""packets(): any tshark fields, the plugin's included, as a typed DataFrame (for notebook work)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator, Optional, Sequence

import pandas as pd

from ..errors import ReadLog
from ..moved import keyword_renamed
from ..runner.options import current_options
from ..runner.plan import Capture, expand_inputs
from ..tshark.program import Tshark
from ..tshark.stream import SEP, StreamResult, read_rows, stream_fields
from .columns import guess_kind, typed_frame
from .secrets import DETECT_FIELDS, FRAME_NUMBER, REASSEMBLED_IN, REDACTED, carries_credentials, must_blank, \
    spread_to_segments

DEFAULT_FIELDS = (
    "frame.number", "frame.time_epoch", "tcp.stream", "ip.src", "tcp.srcport", "ip.dst", "tcp.dstport",
    "tcp.len", "smtpdiag.role", "smtpdiag.command", "smtpdiag.reply_code", "smtpdiag.reply_to",
    "smtpdiag.failure_cause", "smtpdiag.detail",
)



def redact(df: pd.DataFrame, fields: Sequence[str], flagged: pd.Series) -> pd.DataFrame:
    """Blank every non-safe field of the `flagged` frames (tables/secrets.py), and every password-like
    field everywhere."""
    out = df.copy()
    mask = flagged.fillna(False).astype(bool).to_numpy()
    for f in fields:
        if f not in out or not (must_blank(f, False) or (mask.any() and must_blank(f, True))):
            continue
        col = out[f].astype(object)
        present = col.map(lambda v: bool(v) if isinstance(v, (list, tuple)) else pd.notna(v)).to_numpy(dtype=bool)
        hide = present if must_blank(f, False) else present & mask
        col[hide] = REDACTED
        out[f] = col
    return out


def _flags(rows: list[list[str]], fields: Sequence[str]) -> list[bool]:
    """Per row: does the frame carry credentials (itself, or as a segment Wireshark reassembled into one)?"""
    ix = {f: i for i, f in enumerate(fields)}
    number = ix.get(FRAME_NUMBER)
    own = [carries_credentials({f: r[i] for f, i in ix.items()}) for r in rows]
    if number is None or REASSEMBLED_IN not in ix:
        return own
    nums = [int(r[number]) if r[number].isdigit() else -1 for r in rows]
    spread = spread_to_segments({n for n, o in zip(nums, own) if o},
                                ((n, r[ix[REASSEMBLED_IN]]) for n, r in zip(nums, rows)))
    return [o or n in spread for n, o in zip(nums, own)]


@contextmanager
def _input(cap: Capture, two_pass: bool) -> Iterator[tuple[Optional[int], str]]:
    """(standard input for tshark, the name it reads): the file itself, or a pipe (spooled for two passes)."""
    if cap.source is None:
        yield None, str(cap.path)
        return
    if two_pass:
        cap.source.keep()        # tshark -2 cannot read a pipe
    with cap.source.stdin() as got:
        yield got


@keyword_renamed(report="read_log", show_credentials="show_secrets")
def packets(captures: Iterable[str] | str, fields: Sequence[str] = DEFAULT_FIELDS,
            display_filter: str = "smtpdiag", tshark: Optional[Tshark] = None,
            read_log: Optional[ReadLog] = None, two_pass: bool = True,
            decode_as: Sequence[str] = (), show_secrets: bool = False) -> pd.DataFrame:
    """One row per frame matching `display_filter`, one typed column per field.

    Field types come from `tshark -G fields`; an unknown field is a clear error,
    never an empty table. Column names are the field names; `pcap_file` is added.
    Frames that carry credentials (tables/secrets.py: the plugin's `smtpdiag.credentials`,
    Wireshark's own AUTH/LOGIN fields, and the segments reassembled into such frames) have every
    field but addressing, timing and TCP bookkeeping replaced by "[redacted]" (`tcp.payload`
    too), and password-like fields always are, unless `show_secrets` is true.
    """
    ts = tshark or Tshark.discover()
    ts.check_plugin()
    ts.check_fields(list(fields))
    if display_filter != "smtpdiag":
        ts.check_display_filter(display_filter)
    types = ts.field_types()
    asked = list(fields)
    fields = asked + [f for f in DETECT_FIELDS if f not in asked and f in types]
    cols = []
    for f in fields:
        kind = "time" if f == "frame.time_epoch" else guess_kind(types.get(f, "FT_STRING"))
        if kind == "str" and types.get(f) in ("FT_STRING", "FT_STRINGZ") and f.endswith("anomalies"):
            kind = "list"
        if not show_secrets and must_blank(f, True):
            kind = "str" if kind not in ("list",) else kind  # a redacted cell is text
        cols.append((f, f, kind))
    read_log = read_log if read_log is not None else ReadLog()
    frames = []
    caps = expand_inputs(captures, decode_as=decode_as, read_log=read_log)
    bar = current_options().progress
    if bar:
        bar.begin(caps)
    for cap in caps:
        if bar and cap.source is not None:
            cap.source.on_bytes = bar.read
        res = StreamResult()
        with _input(cap, two_pass) as (stdin, name):
            rows = read_rows(stream_fields(ts, name, list(fields), display_filter, extra=cap.decode_args,
                                           two_pass=two_pass, result=res, stdin=stdin), fields)
        if res.returncode != 0:
            (read_log.damaged if rows else read_log.failed)[str(cap.path)] = res.error_line
        # A field with several values in one frame (pipelined commands, replies) keeps them all.
        multi = {i for i, _ in enumerate(fields) if any(SEP in r[i] for r in rows)}
        df = typed_frame(rows, [(c, f, "list" if i in multi else k) for i, (c, f, k) in enumerate(cols)])
        if not show_secrets:
            df = redact(df, asked, pd.Series(_flags(rows, fields), dtype=bool))
        df = df.drop(columns=[f for f in fields if f not in asked])
        df.insert(0, "pcap_file", cap.name)
        frames.append(df)
        if bar:
            bar.done(cap)
    out = pd.concat(frames, ignore_index=True) if frames else typed_frame([], [c for c in cols if c[0] in asked])
    out["pcap_file"] = out["pcap_file"].astype("category") if "pcap_file" in out else None
    return out
