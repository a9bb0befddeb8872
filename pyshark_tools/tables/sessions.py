"""Sessions and transactions tables: one row per conversation / mail transaction, read from the plugin's summary frames."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import pandas as pd

from .inputs import Capture, expand_inputs
from .rows import SEP, typed_frame
from .tshark import StreamResult, Tshark, run_summary

# (column, tshark field, kind): the order is the table's column order.
SESSION_COLUMNS: list[tuple[str, str, str]] = [
    ("ts", "smtpdiag.start", "time"),
    ("pcap_file", "", "category"),
    ("stream", "smtpdiag.stream", "uint32"),
    ("first_frame", "smtpdiag.first_frame", "uint32"),
    ("last_frame", "smtpdiag.last_frame", "uint32"),
    ("proto", "smtpdiag.proto", "category"),
    ("client_ip", "smtpdiag.client", "str"),
    ("client_port", "smtpdiag.client_port", "uint16"),
    ("server_ip", "smtpdiag.server", "str"),
    ("server_port", "smtpdiag.server_port", "uint16"),
    ("duration", "smtpdiag.duration", "timedelta"),
    ("failure_cause", "smtpdiag.failure_cause", "category"),
    ("anomalies", "smtpdiag.anomalies", "list"),
    ("detail", "smtpdiag.detail", "str"),
    ("data_terminated", "smtp.data_terminated", "bool"),
    ("terminator", "smtpdiag.terminator", "category"),
    ("smuggling_suspect", "smtpdiag.smuggling_suspect", "bool"),
    ("helo", "smtpdiag.helo", "str"),
    ("messages", "smtpdiag.messages", "uint32"),
    ("last_reply", "smtpdiag.last_reply", "str"),
    ("tls", "smtpdiag.tls", "bool"),
    ("bytes_client", "smtpdiag.bytes_client", "uint"),
    ("bytes_server", "smtpdiag.bytes_server", "uint"),
    # POP3/IMAP
    ("user", "smtpdiag.mbox.user", "str"),
    ("commands", "smtpdiag.mbox.commands", "str"),
    # DNS
    ("query", "smtpdiag.dns.query", "str"),
    ("qtype", "smtpdiag.dns.qtype", "category"),
    ("rcode", "smtpdiag.dns.rcode", "category"),
    ("answers", "smtpdiag.dns.answers", "list"),
    ("latency", "smtpdiag.dns.latency", "timedelta"),
    ("queries", "smtpdiag.dns.queries", "uint32"),
]

PROTOS = ("smtp", "pop", "imap", "dns")
DNS_COLUMNS = ["ts", "pcap_file", "stream", "first_frame", "last_frame", "client_ip", "client_port", "server_ip",
               "server_port", "query", "qtype", "rcode", "answers", "latency", "queries", "failure_cause",
               "anomalies", "detail"]
MAILBOX_COLUMNS = ["ts", "pcap_file", "stream", "first_frame", "last_frame", "proto", "client_ip", "client_port",
                   "server_ip", "server_port", "duration", "user", "commands", "last_reply", "tls",
                   "failure_cause", "anomalies", "detail", "bytes_client", "bytes_server"]

# Per-transaction values, repeated once per transaction on the summary frame.
TXN_FIELDS: list[tuple[str, str]] = [
    ("trans_depth", "smtpdiag.txn.depth"),
    ("mailfrom", "smtpdiag.txn.mailfrom"),
    ("rcptto", "smtpdiag.txn.rcptto"),
    ("txn_last_reply", "smtpdiag.txn.last_reply"),
    ("txn_data_terminated", "smtpdiag.txn.data_terminated"),
    ("message_bytes", "smtpdiag.txn.message_bytes"),
    ("txn_failure_cause", "smtpdiag.txn.failure_cause"),
    ("txn_first_frame", "smtpdiag.txn.first_frame"),
    ("txn_last_frame", "smtpdiag.txn.last_frame"),
    ("txn_start", "smtpdiag.txn.start"),
    ("txn_tls", "smtpdiag.txn.tls"),
]

CATEGORY_COLUMNS = ("pcap_file", "proto", "failure_cause", "terminator")


@dataclass
class RunReport:
    """What happened while reading captures: per-file problems, kept beside the rows that could be read."""

    files: list[str] = field(default_factory=list)
    damaged: dict[str, str] = field(default_factory=dict)   # file -> tshark's one line
    failed: dict[str, str] = field(default_factory=dict)    # file -> why no row could be read

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.failed


def _tshark_fields() -> list[str]:
    return [f for _, f, _ in SESSION_COLUMNS if f] + [f for _, f in TXN_FIELDS]


def _raw_rows(ts: Tshark, cap: Capture, report: RunReport, extra: Sequence[str] = ()) -> list[list[str]]:
    fields = _tshark_fields()
    res = StreamResult()
    rows = run_summary(ts, str(cap.path), fields, extra=[*cap.decode_args, *extra], result=res)
    # In the order the conversations began (the plugin writes them as they end).
    first, proto = fields.index("smtpdiag.first_frame"), fields.index("smtpdiag.proto")
    rows.sort(key=lambda r: (int(r[first]) if r[first].isdigit() else 0, r[proto]))
    if res.returncode != 0:
        line = res.error_line or f"tshark exited with status {res.returncode}"
        if res.damaged or rows:
            report.damaged[str(cap.path)] = line
        else:
            report.failed[str(cap.path)] = line
    return rows


def session_rows(ts: Tshark, captures: Sequence[Capture], report: Optional[RunReport] = None,
                 progress=None, options=None) -> tuple[list[list[str]], list[str]]:
    """Raw summary rows of every capture, with the capture's display name per row.

    Captures are read in parallel and cached, ring-buffer sets in index order, and sessions cut
    by file boundaries stitched (pyshark_tools.batch; `options` or `batch.configured()`). Each
    row carries one cell after the tshark fields: the files it spans (`pcap_files`), SEP-joined.
    """
    from .batch import run_captures

    report = report if report is not None else RunReport()
    out = run_captures(ts, captures, report, progress, options)
    return [r + [SEP.join(f)] for r, f in zip(out.rows, out.files)], out.names


def _sessions_frame(rows: list[list[str]], names: list[str]) -> pd.DataFrame:
    fields = _tshark_fields()
    by_field = {f: i for i, f in enumerate(fields)}
    cols = [(c, f, k) for c, f, k in SESSION_COLUMNS if f]
    projected = [[r[by_field[f]] for _, f, _ in cols] for r in rows]
    df = typed_frame(projected, cols)
    df["smuggling_suspect"] = df["smuggling_suspect"].fillna(False)  # absent: no suspect sequence seen
    df.insert(1, "pcap_file", pd.Series(names, dtype="object").astype("category") if names
              else pd.Series([], dtype="category"))
    n = len(fields)  # session_rows' extra cell: the files a stitched session spans
    df.insert(2, "pcap_files", pd.Series([r[n].split(SEP) if len(r) > n and r[n] else [name]
                                          for r, name in zip(rows, names)], dtype="object"))
    return df


def _keep(df: pd.DataFrame, proto: Optional[Sequence[str]], cause: Optional[Sequence[str]]) -> pd.DataFrame:
    if proto:
        bad = set(proto) - set(PROTOS)
        if bad:
            raise ValueError(f"unknown protocol {', '.join(sorted(bad))}; one of {', '.join(PROTOS)}")
        df = df[df["proto"].astype(str).isin(list(proto))]
    if cause:
        df = df[df["failure_cause"].astype(str).isin(list(cause))]
    return df.reset_index(drop=True)


def sessions(captures: Iterable[str] | str, tshark: Optional[Tshark] = None,
             report: Optional[RunReport] = None, decode_as: Sequence[str] = (),
             cause: Optional[Sequence[str]] = None, proto: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """One row per conversation (SMTP, POP3, IMAP session; DNS mail lookup), with its diagnosis.

    >>> df = sessions("fixtures/captures/ok.pcap")            # doctest: +SKIP
    >>> df[["client_ip", "failure_cause", "detail"]]          # doctest: +SKIP
    """
    ts = tshark or Tshark.discover()
    ts.check_plugin()
    caps = expand_inputs(captures, decode_as=decode_as, report=report)
    rows, names = session_rows(ts, caps, report)
    return _keep(_sessions_frame(rows, names), proto, cause)


def dns_lookups(captures: Iterable[str] | str, tshark: Optional[Tshark] = None,
                report: Optional[RunReport] = None) -> pd.DataFrame:
    """One row per mail DNS lookup (MX, and A/AAAA of the exchangers): rcode, answers, latency, verdict."""
    return sessions(captures, tshark=tshark, report=report, proto=["dns"])[DNS_COLUMNS]


def mailbox_sessions(captures: Iterable[str] | str, tshark: Optional[Tshark] = None,
                     report: Optional[RunReport] = None, decode_as: Sequence[str] = ()) -> pd.DataFrame:
    """One row per POP3/IMAP session: user (never the password), command counts, verdict."""
    return sessions(captures, tshark=tshark, report=report, decode_as=decode_as, proto=["pop", "imap"])[MAILBOX_COLUMNS]


def _txn_frame(rows: list[list[str]], names: list[str]) -> pd.DataFrame:
    fields = _tshark_fields()
    idx = {f: i for i, f in enumerate(fields)}
    out: list[dict] = []
    for r, name in zip(rows, names):
        lists = {col: (r[idx[f]].split(SEP) if r[idx[f]] != "" else []) for col, f in TXN_FIELDS}
        n = len(lists["trans_depth"])
        for i in range(n):
            def get(col: str) -> str:
                vals = lists[col]
                return vals[i] if i < len(vals) else ""
            out.append({
                "ts": get("txn_start") or r[idx["smtpdiag.start"]], "pcap_file": name,
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
    cols = [
        ("ts", "", "time"), ("pcap_file", "", "category"), ("stream", "", "uint32"),
        ("first_frame", "", "uint32"), ("last_frame", "", "uint32"),
        ("client_ip", "", "str"), ("client_port", "", "uint16"), ("server_ip", "", "str"),
        ("server_port", "", "uint16"), ("trans_depth", "", "uint32"), ("helo", "", "str"),
        ("mailfrom", "", "str"), ("rcptto", "", "list_comma"), ("last_reply", "", "str"),
        ("tls", "", "bool"), ("data_terminated", "", "bool"), ("message_bytes", "", "uint"),
        ("failure_cause", "", "category"),
    ]
    raw = [[row[c] for c, _, _ in cols] for row in out]
    conv = [(c, f, "str" if k == "list_comma" else k) for c, f, k in cols]
    df = typed_frame(raw, conv)
    df["rcptto"] = [([a for a in row["rcptto"].split(",") if a] if row["rcptto"] else []) for row in out]
    return df


def transactions(captures: Iterable[str] | str, tshark: Optional[Tshark] = None,
                 report: Optional[RunReport] = None, decode_as: Sequence[str] = ()) -> pd.DataFrame:
    """One row per SMTP mail transaction, with Zeek smtp.log-compatible columns."""
    ts = tshark or Tshark.discover()
    ts.check_plugin()
    caps = expand_inputs(captures, decode_as=decode_as, report=report)
    rows, names = session_rows(ts, caps, report)
    return _txn_frame(rows, names)


def sessions_and_transactions(captures: Iterable[str] | str, tshark: Optional[Tshark] = None,
                              report: Optional[RunReport] = None,
                              decode_as: Sequence[str] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables from one tshark run per capture."""
    ts = tshark or Tshark.discover()
    ts.check_plugin()
    caps = expand_inputs(captures, decode_as=decode_as, report=report)
    rows, names = session_rows(ts, caps, report)
    return _sessions_frame(rows, names), _txn_frame(rows, names)
