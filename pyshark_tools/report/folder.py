"""The report folder: captures → a self-contained index.html and the tables as CSV and Parquet."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Sequence

import pandas as pd

from ..atomic import check_destination, write_text
from ..errors import ReadLog, SmtpdiagError
from ..moved import keyword_renamed
from ..runner.plan import expand_inputs
from ..runner.streams import keep_streams
from ..tables.latency import latencies_from_replies
from ..tables.replies import replies_from_frames, reply_frames
from ..tables.sessions import sessions_and_transactions
from ..tables.write import to_csv_text, write_parquet
from ..tshark.program import Tshark
from .html import render

TABLE_FILES = ("sessions.csv", "sessions.parquet", "transactions.csv", "transactions.parquet")


@keyword_renamed(run_report="read_log")
def write_report_from_tables(sessions_df: pd.DataFrame, transactions_df: pd.DataFrame, out_dir: str | Path,
                             read_log: Optional[ReadLog] = None,
                             latencies_df: Optional[pd.DataFrame] = None,
                             replies_df: Optional[pd.DataFrame] = None) -> Path:
    """Write `out_dir/index.html` plus sessions/transactions as CSV (formula-safe) and Parquet; return index.html.

    `replies_df` (tables.replies.replies_from_frames) lets the reply chart count every reply; without
    it, the sessions' and transactions' last replies are counted.
    """
    out = check_destination(out_dir, folder=True)
    out.mkdir(parents=True, exist_ok=True)
    for name, df in (("sessions", sessions_df), ("transactions", transactions_df)):
        write_text(out / f"{name}.csv", to_csv_text(df))
        write_parquet(df, out / f"{name}.parquet")
    return write_text(out / "index.html", render(sessions_df, transactions_df, latencies_df, read_log,
                                                 outputs=TABLE_FILES, replies=replies_df))


def _replies(captures: Sequence[str], ts: Tshark, read_log: ReadLog, decode_as: Sequence[str]) -> pd.DataFrame:
    """Every server reply, from the per-frame run (cached); its per-file problems are added only for files
    not yet logged by the sessions' run."""
    own = ReadLog()
    frames = reply_frames(captures, tshark=ts, read_log=own, decode_as=decode_as)
    for path, line in {**own.damaged, **own.failed}.items():
        if path not in read_log.damaged and path not in read_log.failed:
            read_log.damaged[path] = line
    return replies_from_frames(frames)


@keyword_renamed(report="read_log")
def write_report(captures: Iterable[str] | str, out_dir: str | Path, tshark: Optional[Tshark] = None,
                 read_log: Optional[ReadLog] = None, decode_as: Sequence[str] = ()) -> Path:
    """Read the captures and write the report folder; return the path of its index.html.

    Two tshark passes per file, both kept in the result cache: the sessions' (one row per
    conversation) and the replies' (every server reply: the reply chart and the latencies).
    Every file is written whole (a temporary file, then renamed); a symbolic link at `out_dir` or at
    one of its files is refused, not written through.
    Damaged or unreadable captures do not stop the report: they are listed in a banner at the
    top of the page and in `read_log` (pass a ReadLog to see them; the CLI exits 4 then).
    """
    check_destination(out_dir, folder=True)     # refused before the captures are read
    ts = tshark or Tshark.discover()
    log = read_log if read_log is not None else ReadLog()
    caps = [str(captures)] if isinstance(captures, (str, Path)) else [str(c) for c in captures]
    with keep_streams():        # a pipe input is read twice: spooled to a private file
        s, t = sessions_and_transactions(caps, tshark=ts, read_log=log, decode_as=decode_as)
        if _only_exports(caps):   # no frames to read: the reply chart counts the sessions' last replies
            return write_report_from_tables(s, t, out_dir, read_log=log)
        replies = _replies(caps, ts, log, decode_as)
    return write_report_from_tables(s, t, out_dir, read_log=log, latencies_df=latencies_from_replies(replies),
                                    replies_df=replies)


def _only_exports(captures: Sequence[str]) -> bool:
    """Are all the inputs exports (exports/), which hold conversations but no frames?"""
    try:
        inputs = expand_inputs(captures, read_log=ReadLog())
    except SmtpdiagError:
        return False
    return bool(inputs) and all(c.is_export for c in inputs)
