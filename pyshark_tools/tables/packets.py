"""packets(): any tshark fields, the plugin's included, as a typed DataFrame (for notebook work)."""
from __future__ import annotations

import re
from typing import Iterable, Optional, Sequence

import pandas as pd

from ..errors import ReadLog
from ..moved import keyword_renamed
from ..runner.plan import expand_inputs
from ..tshark.program import Tshark
from ..tshark.stream import SEP, StreamResult, read_rows, stream_fields
from .columns import guess_kind, typed_frame

DEFAULT_FIELDS = (
    "frame.number", "frame.time_epoch", "tcp.stream", "ip.src", "tcp.srcport", "ip.dst", "tcp.dstport",
    "tcp.len", "smtpdiag.role", "smtpdiag.command", "smtpdiag.reply_code", "smtpdiag.reply_to",
    "smtpdiag.failure_cause", "smtpdiag.detail",
)


CRED_FLAG = "smtpdiag.credentials"
REDACTED = "[redacted]"
# Fields that never hold a secret: addressing, timing, TCP bookkeeping, and the plugin's own
# (it shows "(AUTH data)" for credentials and the user name, never a password).
_SAFE = re.compile(r"^(frame\.|eth\.|sll\.|ip\.|ipv6\.|udp\.|tcp\.(stream|srcport|dstport|port|len|seq|seq_raw|ack|ack_raw|"
                   r"flags|flags\..*|analysis\..*|time_.*|window_size.*|hdr_len|checksum.*)$|smtpdiag\.)")
_SECRET_NAME = re.compile(r"pass(word|wd)?\b|\.password|auth\.(password|username)|credential", re.I)


def redact(df: pd.DataFrame, fields: Sequence[str], flagged: pd.Series) -> pd.DataFrame:
    """Blank every non-safe field of frames the plugin flagged as carrying credentials, and
    every password-like field everywhere."""
    out = df.copy()
    for f in fields:
        if f == CRED_FLAG or f not in out:
            continue
        if _SECRET_NAME.search(f):
            out[f] = out[f].astype(object).where(out[f].isna(), REDACTED)
        elif not _SAFE.match(f) and flagged.any():
            col = out[f].astype(object)
            col[flagged.fillna(False).to_numpy() & col.notna().to_numpy()] = REDACTED
            out[f] = col
    return out


@keyword_renamed(report="read_log")
def packets(captures: Iterable[str] | str, fields: Sequence[str] = DEFAULT_FIELDS,
            display_filter: str = "smtpdiag", tshark: Optional[Tshark] = None,
            read_log: Optional[ReadLog] = None, two_pass: bool = True,
            decode_as: Sequence[str] = (), show_credentials: bool = False) -> pd.DataFrame:
    """One row per frame matching `display_filter`, one typed column per field.

    Field types come from `tshark -G fields`; an unknown field is a clear error,
    never an empty table. Column names are the field names; `pcap_file` is added.
    Frames that carry credentials (the plugin's `smtpdiag.credentials`) have their other
    fields replaced by "[redacted]", and password-like fields always are, unless
    `show_credentials` is true.
    """
    ts = tshark or Tshark.discover()
    ts.check_plugin()
    ts.check_fields(list(fields))
    types = ts.field_types()
    asked = list(fields)
    fields = asked + ([CRED_FLAG] if CRED_FLAG not in asked else [])
    cols = []
    for f in fields:
        kind = "time" if f == "frame.time_epoch" else guess_kind(types.get(f, "FT_STRING"))
        if kind == "str" and types.get(f) in ("FT_STRING", "FT_STRINGZ") and f.endswith("anomalies"):
            kind = "list"
        if not show_credentials and (f not in (CRED_FLAG,)) and (_SECRET_NAME.search(f) or not _SAFE.match(f)):
            kind = "str" if kind not in ("list",) else kind  # a redacted cell is text
        cols.append((f, f, kind))
    read_log = read_log if read_log is not None else ReadLog()
    frames = []
    for cap in expand_inputs(captures, decode_as=decode_as, read_log=read_log):
        res = StreamResult()
        rows = read_rows(stream_fields(ts, str(cap.path), list(fields), display_filter,
                                       extra=cap.decode_args, two_pass=two_pass, result=res), fields)
        if res.returncode != 0:
            (read_log.damaged if rows else read_log.failed)[str(cap.path)] = res.error_line
        # A field with several values in one frame (pipelined commands, replies) keeps them all.
        multi = {i for i, _ in enumerate(fields) if any(SEP in r[i] for r in rows)}
        df = typed_frame(rows, [(c, f, "list" if i in multi else k) for i, (c, f, k) in enumerate(cols)])
        if not show_credentials:
            df = redact(df, fields, df[CRED_FLAG].astype("boolean"))
        if CRED_FLAG not in asked:
            df = df.drop(columns=[CRED_FLAG])
        df.insert(0, "pcap_file", cap.name)
        frames.append(df)
    out = pd.concat(frames, ignore_index=True) if frames else typed_frame([], [c for c in cols if c[0] in asked])
    out["pcap_file"] = out["pcap_file"].astype("category") if "pcap_file" in out else None
    return out
