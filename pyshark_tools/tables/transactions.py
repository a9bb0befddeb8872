"""The transactions table: one row per SMTP mail transaction, with Zeek smtp.log-compatible columns."""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import pandas as pd

from ..errors import ReadLog
from ..moved import keyword_renamed
from ..runner.run import RunRows, read_captures
from ..tshark.program import Tshark
from ..tshark.stream import SEP
from .columns import typed_frame
from .schema import SUMMARY_FIELDS, TRANSACTION_COLUMNS, TXN_FIELDS
from .verdicts import with_causes


def transactions_frame(run: RunRows) -> pd.DataFrame:
    """The typed transactions table of a run's rows: each conversation's row holds its transactions' values."""
    idx = {f: i for i, f in enumerate(SUMMARY_FIELDS)}
    out: list[dict] = []
    for r, name, source in zip(run.rows, run.names, run.source_names()):
        lists = {col: (r[idx[f]].split(SEP) if r[idx[f]] != "" else []) for col, f in TXN_FIELDS}
        for i in range(len(lists["trans_depth"])):
            def get(col: str) -> str:
                vals = lists[col]
                return vals[i] if i < len(vals) else ""
            out.append({
                "ts": get("txn_start") or r[idx["smtpdiag.start"]], "pcap_file": name, "source": source,
                "stream": r[idx["smtpdiag.stream"]],
                "client_ip": r[idx["smtpdiag.client"]], "client_port": r[idx["smtpdiag.client_port"]],
                "server_ip": r[idx["smtpdiag.server"]], "server_port": r[idx["smtpdiag.server_port"]],
                "trans_depth": get("trans_depth"), "helo": r[idx["smtpdiag.helo"]],
                "mailfrom": get("mailfrom"), "rcptto": get("rcptto"),
                "last_reply": get("txn_last_reply"), "tls": get("txn_tls"),
                "data_terminated": get("txn_data_terminated"), "message_bytes": get("message_bytes"),
                "failure_cause": get("txn_failure_cause"),
                "first_frame": get("txn_first_frame"), "last_frame": get("txn_last_frame"),
            })
    raw = [[row[c] for c, _ in TRANSACTION_COLUMNS] for row in out]
    df = typed_frame(raw, [(c, "", "str" if k == "list_comma" else k) for c, k in TRANSACTION_COLUMNS])
    df["rcptto"] = [([a for a in row["rcptto"].split(",") if a] if row["rcptto"] else []) for row in out]
    return df


@keyword_renamed(report="read_log")
def transactions(captures: Iterable[str] | str, tshark: Optional[Tshark] = None,
                 read_log: Optional[ReadLog] = None, decode_as: Sequence[str] = (),
                 cause: Optional[Sequence[str]] = None, tls_keylog: Optional[str] = None) -> pd.DataFrame:
    """One row per SMTP mail transaction, with Zeek smtp.log-compatible columns (`cause`: only these;
    `tls_keylog`: a TLS key log, so that transactions inside TLS are seen)."""
    df = transactions_frame(read_captures(captures, SUMMARY_FIELDS, tshark, read_log, decode_as,
                                          tls_keylog=tls_keylog))
    return with_causes(df, cause) if cause else df
