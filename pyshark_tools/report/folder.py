"""The report folder: captures → a self-contained index.html and the tables as CSV and Parquet."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Sequence

import pandas as pd

from ..errors import ReadLog
from ..moved import keyword_renamed
from ..tables.latency import latencies
from ..tables.sessions import sessions_and_transactions
from ..tables.write import to_csv_text, write_parquet
from ..tshark.program import Tshark
from .html import render

TABLE_FILES = ("sessions.csv", "sessions.parquet", "transactions.csv", "transactions.parquet")


@keyword_renamed(run_report="read_log")
def write_report_from_tables(sessions_df: pd.DataFrame, transactions_df: pd.DataFrame, out_dir: str | Path,
                             read_log: Optional[ReadLog] = None,
                             latencies_df: Optional[pd.DataFrame] = None) -> Path:
    """Write `out_dir/index.html` plus sessions/transactions as CSV (formula-safe) and Parquet; return index.html."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, df in (("sessions", sessions_df), ("transactions", transactions_df)):
        (out / f"{name}.csv").write_text(to_csv_text(df), encoding="utf-8")
        write_parquet(df, out / f"{name}.parquet")
    index = out / "index.html"
    index.write_text(render(sessions_df, transactions_df, latencies_df, read_log, outputs=TABLE_FILES),
                     encoding="utf-8")
    return index


def _latencies(captures: Sequence[str], ts: Tshark, read_log: ReadLog, decode_as: Sequence[str]) -> pd.DataFrame:
    """Latencies from a second tshark pass; its per-file problems are added only for files not yet logged."""
    own = ReadLog()
    lat = latencies(captures, tshark=ts, read_log=own, decode_as=decode_as)
    for path, line in {**own.damaged, **own.failed}.items():
        if path not in read_log.damaged and path not in read_log.failed:
            read_log.damaged[path] = line
    return lat


@keyword_renamed(report="read_log")
def write_report(captures: Iterable[str] | str, out_dir: str | Path, tshark: Optional[Tshark] = None,
                 read_log: Optional[ReadLog] = None, decode_as: Sequence[str] = ()) -> Path:
    """Read the captures and write the report folder; return the path of its index.html.

    Damaged or unreadable captures do not stop the report: they are listed in a banner at the
    top of the page and in `read_log` (pass a ReadLog to see them; the CLI exits 4 then).
    """
    ts = tshark or Tshark.discover()
    log = read_log if read_log is not None else ReadLog()
    caps = [str(captures)] if isinstance(captures, (str, Path)) else [str(c) for c in captures]
    s, t = sessions_and_transactions(caps, tshark=ts, read_log=log, decode_as=decode_as)
    lat = _latencies(caps, ts, log, decode_as)
    return write_report_from_tables(s, t, out_dir, read_log=log, latencies_df=lat)
