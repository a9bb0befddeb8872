"""pyshark_tools: SMTP/POP3/IMAP/DNS-MX failure diagnosis over packet captures.

The diagnosis is made by the `smtpdiag` Lua post-dissector inside tshark; this package
drives tshark, turns the plugin's fields into typed pandas tables and presents them.
The folders follow the pipeline: plugin/ (the Lua file) → tshark/ (running it) → runner/
(many captures: plan, jobs, cache, stitch) → tables/ → report/. Public API:

    sessions(captures)       one row per conversation (SMTP, POP3, IMAP, DNS lookup) with its diagnosis
    dns_lookups(captures)    one row per mail DNS lookup (MX, A/AAAA of exchangers)
    mailbox_sessions(captures) one row per POP3/IMAP session
    transactions(captures)   one row per SMTP mail transaction (Zeek smtp.log columns)
    sessions_and_transactions(captures)  both, from one tshark run per file
    packets(captures, fields) any tshark fields as a typed DataFrame
    summary(sessions_df)     counts by failure cause, reply class, server
    session_packets(capture, stream)  pyshark packets of one session (drill-down)
    latencies(captures)      server reply latencies per phase (greeting, EHLO, DATA, end of data)
    write_report(captures, out_dir)  self-contained HTML report plus CSV/Parquet tables
    Tshark, find_tshark, lua_plugin_path   the tshark to run and the plugin it loads
    ReadLog                  pass read_log=ReadLog() to collect damaged/failed files instead of raising
    SmtpdiagError, TsharkNotFound, TsharkError, PluginNotLoaded, InputError   the errors, one line each
"""
from __future__ import annotations

from . import moved
from .errors import InputError, PluginNotLoaded, ReadLog, SmtpdiagError, TsharkError, TsharkNotFound
from .plugin.file import lua_plugin_path
from .tables.drill import session_packets
from .tables.latency import latencies
from .tables.packets import packets
from .tables.sessions import dns_lookups, mailbox_sessions, sessions, sessions_and_transactions
from .tables.summary import summary
from .tables.transactions import transactions
from .tshark.find import find_tshark
from .tshark.program import Tshark
from .version import __version__

__all__ = [
    "sessions", "transactions", "sessions_and_transactions", "dns_lookups", "mailbox_sessions", "packets",
    "summary", "session_packets", "latencies", "write_report",
    "Tshark", "find_tshark", "lua_plugin_path", "ReadLog",
    "SmtpdiagError", "TsharkNotFound", "TsharkError", "PluginNotLoaded", "InputError",
    "__version__",
]

moved.register_old_modules()


def __getattr__(name: str):
    """`write_report` and the `report` package load matplotlib: imported on first use. Old names: deprecated."""
    if name in ("write_report", "report"):
        from .report import folder
        return folder.write_report if name == "write_report" else globals()["report"]
    return moved.old_attribute("", name)
