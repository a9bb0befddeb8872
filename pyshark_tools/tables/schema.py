"""The tables' columns and the plugin fields they come from.

SUMMARY_FIELDS, the fields every run reads from the plugin, is derived here, once.
"""
from __future__ import annotations

# (column, tshark field, kind): the order is the sessions table's column order; kinds are columns.py's converters.
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

# Per-transaction values, repeated once per transaction on the conversation's row.
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

# Every field a run reads from the plugin's summary file, in this order (the tables, doctor, the runner's keys).
SUMMARY_FIELDS: list[str] = [f for _, f, _ in SESSION_COLUMNS if f] + [f for _, f in TXN_FIELDS]

# (column, kind) of the transactions table, in its order; rcptto is a comma-separated list.
TRANSACTION_COLUMNS: list[tuple[str, str]] = [
    ("ts", "time"), ("pcap_file", "category"), ("source", "category"), ("stream", "uint32"), ("first_frame", "uint32"),
    ("last_frame", "uint32"), ("client_ip", "str"), ("client_port", "uint16"), ("server_ip", "str"),
    ("server_port", "uint16"), ("trans_depth", "uint32"), ("helo", "str"), ("mailfrom", "str"),
    ("rcptto", "list_comma"), ("last_reply", "str"), ("tls", "bool"), ("data_terminated", "bool"),
    ("message_bytes", "uint"), ("failure_cause", "category"),
]

PROTOS = ("smtp", "pop", "imap", "dns")
DNS_COLUMNS = ["ts", "pcap_file", "stream", "first_frame", "last_frame", "client_ip", "client_port", "server_ip",
               "server_port", "query", "qtype", "rcode", "answers", "latency", "queries", "failure_cause",
               "anomalies", "detail"]
MAILBOX_COLUMNS = ["ts", "pcap_file", "stream", "first_frame", "last_frame", "proto", "client_ip", "client_port",
                   "server_ip", "server_port", "duration", "user", "commands", "last_reply", "tls",
                   "failure_cause", "anomalies", "detail", "bytes_client", "bytes_server"]

CATEGORY_COLUMNS = tuple(c for c, _, kind in SESSION_COLUMNS if kind == "category") + ("source",)
LIST_COLUMNS = tuple(c for c, _, kind in SESSION_COLUMNS if kind == "list") + ("pcap_files", "rcptto")
