"""pyshark_tools: SMTP/POP3/IMAP/DNS-MX failure diagnosis over packet captures.

The diagnosis is made by the `smtpdiag` Lua post-dissector inside tshark; this
package drives tshark, turns the plugin's fields into typed pandas tables and
presents them. Public API:

    sessions(captures)       one row per conversation (SMTP, POP3, IMAP, DNS lookup) with its diagnosis
    dns_lookups(captures)    one row per mail DNS lookup (MX, A/AAAA of exchangers)
    mailbox_sessions(captures) one row per POP3/IMAP session
    transactions(captures)   one row per SMTP mail transaction (Zeek smtp.log columns)
    packets(captures, fields) any tshark fields as a typed DataFrame
    summary(sessions_df)     counts by failure cause, reply class, server
    session_packets(capture, stream)  pyshark packets of one session (drill-down)
    latencies(captures)      server reply latencies per phase (greeting, EHLO, DATA, end of data)
    write_report(captures, out_dir)  self-contained HTML report plus CSV/Parquet tables
"""
from .errors import InputError, PluginNotLoaded, SmtpdiagError, TsharkError, TsharkNotFound
from .packets import packets
from .sessions import (RunReport, dns_lookups, mailbox_sessions, sessions, sessions_and_transactions,
                       transactions)
from .summary import summary
from .tshark import Tshark, find_tshark, lua_plugin_path

__version__ = "0.1.0"

__all__ = [
    "sessions", "transactions", "sessions_and_transactions", "dns_lookups", "mailbox_sessions", "packets", "summary", "session_packets",
    "Tshark", "find_tshark", "lua_plugin_path", "RunReport",
    "SmtpdiagError", "TsharkNotFound", "TsharkError", "PluginNotLoaded", "InputError",
    "__version__",
]


def session_packets(*args, **kwargs):
    """Pyshark packets of one session (see pyshark_tools.drill.session_packets)."""
    from .drill import session_packets as _sp
    return _sp(*args, **kwargs)


def latencies(*args, **kwargs):
    """Server reply latencies per phase (see pyshark_tools.latency.latencies)."""
    from .latency import latencies as _lat
    return _lat(*args, **kwargs)


def write_report(*args, **kwargs):
    """The batch HTML report folder (see pyshark_tools.report.write_report)."""
    from .report import write_report as _wr
    return _wr(*args, **kwargs)
