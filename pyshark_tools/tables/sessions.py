"""The sessions table: one row per conversation (SMTP, POP3, IMAP session; mail DNS lookup) with its diagnosis.

Captures → runner.read_captures (plan, run each file, cache, stitch) → the plugin's rows → typed columns.
"""
from __future__ import annotations

from operator import itemgetter
from typing import Iterable, Optional, Sequence

import pandas as pd

from ..errors import ReadLog
from ..gc_pause import gc_paused
from ..moved import keyword_renamed
from ..runner.run import RunRows, read_captures
from ..tshark.program import Tshark
from .columns import typed_frame
from .schema import DNS_COLUMNS, MAILBOX_COLUMNS, PROTOS, SESSION_COLUMNS, SUMMARY_FIELDS
from .transactions import transactions_frame
from .verdicts import with_causes


@gc_paused
def sessions_frame(run: RunRows) -> pd.DataFrame:
    """The typed sessions table of a run's rows (cells in SUMMARY_FIELDS order)."""
    by_field = {f: i for i, f in enumerate(SUMMARY_FIELDS)}
    cols = [(c, f, k) for c, f, k in SESSION_COLUMNS if f]
    cells = itemgetter(*(by_field[f] for _, f, _ in cols))
    projected = [cells(r) for r in run.rows]
    df = typed_frame(projected, cols)
    df["smuggling_suspect"] = df["smuggling_suspect"].fillna(False)  # absent: no suspect sequence seen
    df.insert(1, "pcap_file", pd.Series(run.names, dtype="object").astype("category") if run.names
              else pd.Series([], dtype="category"))
    df.insert(2, "pcap_files", pd.Series([files or [name] for files, name in zip(run.files, run.names)],
                                         dtype="object"))
    df.insert(3, "source", pd.Series(run.source_names(), dtype="object").astype("category") if run.names
              else pd.Series([], dtype="category"))
    return df


def keep(df: pd.DataFrame, proto: Optional[Sequence[str]] = None,
         cause: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """The rows of these protocols and failure causes (None: all)."""
    if proto:
        bad = set(proto) - set(PROTOS)
        if bad:
            raise ValueError(f"unknown protocol {', '.join(sorted(bad))}; one of {', '.join(PROTOS)}")
        df = df[df["proto"].astype(str).isin(list(proto))]
    return with_causes(df, cause) if cause else df.reset_index(drop=True)


@keyword_renamed(report="read_log")
def sessions(captures: Iterable[str] | str, tshark: Optional[Tshark] = None,
             read_log: Optional[ReadLog] = None, decode_as: Sequence[str] = (),
             cause: Optional[Sequence[str]] = None, proto: Optional[Sequence[str]] = None,
             tls_keylog: Optional[str] = None) -> pd.DataFrame:
    """One row per conversation (SMTP, POP3, IMAP session; DNS mail lookup), with its diagnosis.
    `tls_keylog`: a TLS key log (SSLKEYLOGFILE format): the dialogue inside TLS is diagnosed as in clear.

    >>> df = sessions("fixtures/captures/ok.pcap")            # doctest: +SKIP
    >>> df[["client_ip", "failure_cause", "detail"]]          # doctest: +SKIP
    """
    run = read_captures(captures, SUMMARY_FIELDS, tshark, read_log, decode_as, tls_keylog=tls_keylog)
    return keep(sessions_frame(run), proto, cause)


@keyword_renamed(report="read_log")
def dns_lookups(captures: Iterable[str] | str, tshark: Optional[Tshark] = None,
                read_log: Optional[ReadLog] = None) -> pd.DataFrame:
    """One row per mail DNS lookup (MX, and A/AAAA of the exchangers): rcode, answers, latency, verdict."""
    return sessions(captures, tshark=tshark, read_log=read_log, proto=["dns"])[DNS_COLUMNS]


@keyword_renamed(report="read_log")
def mailbox_sessions(captures: Iterable[str] | str, tshark: Optional[Tshark] = None,
                     read_log: Optional[ReadLog] = None, decode_as: Sequence[str] = ()) -> pd.DataFrame:
    """One row per POP3/IMAP session: user (never the password), command counts, verdict."""
    return sessions(captures, tshark=tshark, read_log=read_log, decode_as=decode_as,
                    proto=["pop", "imap"])[MAILBOX_COLUMNS]


@keyword_renamed(report="read_log")
def sessions_and_transactions(captures: Iterable[str] | str, tshark: Optional[Tshark] = None,
                              read_log: Optional[ReadLog] = None,
                              decode_as: Sequence[str] = (),
                              tls_keylog: Optional[str] = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables from one tshark run per capture (`tls_keylog`: decrypt with this TLS key log)."""
    run = read_captures(captures, SUMMARY_FIELDS, tshark, read_log, decode_as, tls_keylog=tls_keylog)
    return sessions_frame(run), transactions_frame(run)
