"""Batch report: captures → a folder with a self-contained index.html and the tables as CSV and Parquet."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Sequence

import pandas as pd

from .output import to_csv_text, write_parquet
from .report_html import render
from .sessions import RunReport, sessions_and_transactions
from .tshark import Tshark

TABLE_FILES = ("sessions.csv", "sessions.parquet", "transactions.csv", "transactions.parquet")


def write_report_from_tables(sessions_df: pd.DataFrame, transactions_df: pd.DataFrame, out_dir: str | Path,
                             run_report: Optional[RunReport] = None,
                             latencies_df: Optional[pd.DataFrame] = None) -> Path:
    """Write `out_dir/index.html` plus sessions/transactions as CSV (formula-safe) and Parquet; return index.html."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, df in (("sessions", sessions_df), ("transactions", transactions_df)):
        (out / f"{name}.csv").write_text(to_csv_text(df), encoding="utf-8")
        write_parquet(df, out / f"{name}.parquet")
    index = out / "index.html"
    index.write_text(render(sessions_df, transactions_df, latencies_df, run_report, outputs=TABLE_FILES),
                     encoding="utf-8")
    return index


def _latencies(captures: Sequence[str], ts: Tshark, run: RunReport, decode_as: Sequence[str]) -> pd.DataFrame:
    """Latencies from a second tshark pass; its per-file problems are added only for files not yet reported."""
    from .latency import latencies

    own = RunReport()
    lat = latencies(captures, tshark=ts, report=own, decode_as=decode_as)
    for path, line in {**own.damaged, **own.failed}.items():
        if path not in run.damaged and path not in run.failed:
            run.damaged[path] = line
    return lat


def write_report(captures: Iterable[str] | str, out_dir: str | Path, tshark: Optional[Tshark] = None,
                 report: Optional[RunReport] = None, decode_as: Sequence[str] = ()) -> Path:
    """Read the captures and write the report folder; return the path of its index.html.

    Damaged or unreadable captures do not stop the report: they are listed in a banner at the
    top of the page and in `report` (pass a RunReport to see them; the CLI exits 4 then).
    """
    ts = tshark or Tshark.discover()
    run = report if report is not None else RunReport()
    caps = [str(captures)] if isinstance(captures, (str, Path)) else [str(c) for c in captures]
    s, t = sessions_and_transactions(caps, tshark=ts, report=run, decode_as=decode_as)
    lat = _latencies(caps, ts, run, decode_as)
    return write_report_from_tables(s, t, out_dir, run_report=run, latencies_df=lat)
