"""The HTML of the report: one self-contained page (inline CSS, inline PNG figures, a tiny sort script).

Every value that came from a capture goes through `esc()` (html.escape after making control
characters visible); markup is only ever built from escaped parts. A Content-Security-Policy
allows nothing from outside the page: no request can leave the machine when it is opened.
"""
from __future__ import annotations

import base64
import hashlib
import html
import re
from datetime import datetime, timezone
from typing import Any, Iterable, Optional, Sequence

import pandas as pd
from matplotlib.figure import Figure

from ..errors import ReadLog
from ..tables.summary import summary
from ..tables.verdicts import failing
from ..tables.write import strip_control
from ..version import __version__
from .causes import CAUSES, describe
from .plots import cause_colour, causes_plot, latency_plot, replies_plot, timeline_plot, to_bytes

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;margin:0;background:#fafafa}
main{max-width:1360px;margin:0 auto;padding:1.2em 1.6em 3em}
h1{font-size:1.6em;margin:.4em 0 .1em}h2{font-size:1.25em;margin:1.8em 0 .5em;border-bottom:1px solid #ddd}
.meta{color:#666;font-size:.9em}
.banner{background:#fdecea;border:2px solid #c0392b;color:#6d1a12;padding:.8em 1.6em;margin:0}
.banner strong{font-size:1.1em}.banner li{margin:.2em 0}
.headline{font-size:1.35em;margin:.6em 0}.headline .bad{color:#c0392b}.headline .good{color:#1e8449}
.cards{display:flex;flex-wrap:wrap;gap:.8em;margin:.6em 0 1em}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.5em 1em;min-width:9em}
.card .num{display:block;font-size:1.7em;font-weight:600}.card .lbl{color:#666;font-size:.85em}
table{border-collapse:collapse;background:#fff;margin:.4em 0 1em;font-size:.88em;width:100%}
th,td{border:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f0f0f0}table.sortable th{white-space:nowrap}td.n{text-align:right;white-space:nowrap}
table.sortable th{cursor:pointer}table.sortable th::after{content:" \\2195";color:#aaa}
code{font:.92em ui-monospace,monospace;background:#f3f3f3;padding:0 .2em;border-radius:3px}
td.nw{white-space:nowrap}td.ev{min-width:20em}td.where{min-width:11em}td.where code{white-space:nowrap}td.where code.file{white-space:normal;overflow-wrap:anywhere}
img.fig{max-width:100%;height:auto;background:#fff;border:1px solid #eee;display:block;margin:.4em 0}
.sw{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.35em;background:#c0392b}
.muted{color:#777}
""" + "".join(f".sw-{c}{{background:{cause_colour(c)}}}" for c in CAUSES) + "\n"

SORT_JS = (
    "document.querySelectorAll('table.sortable th').forEach(function(th){th.addEventListener('click',function(){"
    "var t=th.closest('table'),b=t.tBodies[0],i=th.cellIndex,d=th.dataset.dir==='asc'?-1:1;"
    "th.dataset.dir=d===1?'asc':'desc';Array.from(b.rows).sort(function(x,y){"
    "var p=x.cells[i],q=y.cells[i],u=p.dataset.sort!==undefined?p.dataset.sort:p.textContent,"
    "v=q.dataset.sort!==undefined?q.dataset.sort:q.textContent,m=parseFloat(u),n=parseFloat(v);"
    "if(!isNaN(m)&&!isNaN(n)&&p.dataset.sort!==undefined)return(m-n)*d;return u.localeCompare(v)*d;})"
    ".forEach(function(r){b.appendChild(r);});});});"
)


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CSP = (f"default-src 'none'; img-src data:; style-src {_sha256(CSS)}; script-src {_sha256(SORT_JS)}; "
       "base-uri 'none'; form-action 'none'")


class Raw(str):
    """Markup built here from escaped parts; `cell()` passes it through unescaped."""


def esc(value: object) -> str:
    """Any value as safe HTML text: lists joined, missing values empty, control characters shown as \\xNN."""
    if isinstance(value, (list, tuple)):
        value = ", ".join(map(str, value))
    elif value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return html.escape(strip_control(str(value)), quote=True)


def code(value: object) -> Raw:
    return Raw(f"<code>{esc(value)}</code>")


def _prose(text: str) -> Raw:
    """Our own advice text: escaped, with `backticks` shown as code."""
    return Raw(re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(text)))


def swatch(cause: str) -> Raw:
    """A colour square (the plots' colour for known codes) and the code."""
    cls = f" sw-{cause}" if cause in CAUSES else ""
    return Raw(f'<span class="sw{cls}"></span>{code(cause)}')


def cell(value: object, sort: object = None, numeric: bool = False, cls: str = "") -> str:
    body = value if isinstance(value, Raw) else esc(value)
    classes = " ".join(c for c in ("n" if numeric else "", cls) if c)
    attrs = f' class="{classes}"' if classes else ""
    if sort is not None:
        attrs += f' data-sort="{esc(sort)}"'
    return f"<td{attrs}>{body}</td>"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], table_id: str, sortable: bool = False) -> str:
    """`rows` hold already-built <td> strings (from cell())."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "\n".join(f"<tr>{''.join(r)}</tr>" for r in rows)
    cls = ' class="sortable"' if sortable else ""
    return f'<table id="{table_id}"{cls}><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>'


def figure(fig: Figure, alt: str, fig_id: str) -> str:
    png = to_bytes(fig, "png")
    w, h = (fig.get_size_inches() * fig.dpi).round().astype(int)
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="fig" id="{fig_id}" alt="{esc(alt)}" width="{w}" height="{h}" src="data:image/png;base64,{data}">'


def _ts(v: object) -> str:
    return "" if v is None or pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%d %H:%M:%S")


def _endpoint(ip: Any, port: Any) -> str:
    """'ip:port' as plain text (escaped later by cell())."""
    ip_text = "?" if ip is None or pd.isna(ip) else str(ip)
    return ip_text if port is None or pd.isna(port) else f"{ip_text}:{int(port)}"


def _n(v: Any) -> int:
    return 0 if v is None or pd.isna(v) else int(v)


# -- sections ----------------------------------------------------------------------

def damage_banner(read_log: Optional[ReadLog]) -> str:
    if read_log is None or read_log.ok:
        return ""
    items = [f"<li>{code(p)} was damaged (cut short or corrupt): the sessions read before the damage are "
             f"included, later ones are missing. <span class=\"muted\">{esc(line)}</span></li>"
             for p, line in read_log.damaged.items()]
    items += [f"<li>{code(p)} could not be read: nothing from it is in this report. "
              f"<span class=\"muted\">{esc(line)}</span></li>" for p, line in read_log.failed.items()]
    n = len(read_log.damaged) + len(read_log.failed)
    return (f'<div class="banner" id="damage" role="alert"><strong>Partial report: {n} capture'
            f'{"s" if n != 1 else ""} damaged or unreadable.</strong> The numbers below count only what could '
            f'be read.<ul>{"".join(items)}</ul></div>')


def headline(s: pd.DataFrame, t: pd.DataFrame, captures_read: int) -> str:
    total = len(s)
    n_failing = int(failing(s).sum()) if total else 0
    messages = int(s["messages"].fillna(0).sum()) if total else 0
    if total:
        cls = "bad" if n_failing else "good"
        line = (f'<p class="headline" id="headline"><strong class="{cls}">{n_failing} of {total} session'
                f'{"s" if total != 1 else ""} failed</strong>.</p>')
    else:
        line = '<p class="headline" id="headline"><strong>No mail sessions found in these captures.</strong></p>'
    cards = [("captures", captures_read, "captures read"), ("sessions", total, "sessions"),
             ("failing", n_failing, "failing sessions"), ("messages", messages, "messages accepted"),
             ("transactions", len(t), "mail transactions")]
    body = "".join(f'<div class="card"><span class="num" id="num-{k}">{v}</span><span class="lbl">{esc(lbl)}'
                   f'</span></div>' for k, v, lbl in cards)
    return line + f'<div class="cards">{body}</div>'


def causes_section(s: pd.DataFrame) -> str:
    counts = s["failure_cause"].astype("string").fillna("(none)").value_counts() if len(s) else pd.Series(dtype=int)
    order = sorted(counts.index, key=lambda c: (c == "ok", -counts[c], c))
    rows = []
    for c in order:
        m = describe(c)
        rows.append([cell(swatch(c), sort=c, cls="nw"), cell(int(counts[c]), sort=int(counts[c]), numeric=True),
                     cell(f"{100 * counts[c] / len(s):.0f} %", numeric=True),
                     cell(_prose(m.meaning)), cell(_prose(m.check))])
    return ("<h2>Failure causes</h2>" + figure(causes_plot(s), "sessions by failure cause", "fig-causes")
            + table(["cause", "sessions", "share", "what it means", "what to check"], rows, "causes-table"))


def replies_section(s: pd.DataFrame) -> str:
    summ = summary(s)
    rc = summ[summ["dimension"] == "reply_class"] if len(summ) else summ
    rows = [[cell(code(r.value)), cell(_n(r.sessions), numeric=True), cell(_n(r.failing), numeric=True)]
            for r in rc.itertuples()]
    return ("<h2>Reply codes</h2><p>The class of each session's last server reply.</p>"
            + figure(replies_plot(s), "last reply code class per session", "fig-replies")
            + table(["last reply class", "sessions", "failing"], rows, "replies-table"))


def timeline_section(s: pd.DataFrame) -> str:
    return ("<h2>Timeline</h2><p>Each dot is a session, placed at its start; grey ones were ok.</p>"
            + figure(timeline_plot(s), "session timeline by server", "fig-timeline"))


def latency_section(lat: Optional[pd.DataFrame]) -> str:
    head = "<h2>Server latency</h2><p>How long servers took to answer: greeting, EHLO → 250, DATA → 354, end of data → final reply.</p>"
    if lat is None:
        return head + "<p class=\"muted\">No latency data was given to this report.</p>"
    rows = []
    if len(lat):
        secs = lat.assign(s=lat["latency"].dt.total_seconds())
        for phase, g in secs.groupby("phase", observed=True):
            q = g["s"].quantile([0.5, 0.9])
            rows.append([cell(phase), cell(len(g), numeric=True), cell(f"{q[0.5] * 1000:.1f}", numeric=True),
                         cell(f"{q[0.9] * 1000:.1f}", numeric=True), cell(f"{g['s'].max() * 1000:.1f}", numeric=True)])
    return (head + figure(latency_plot(lat), "server reply latency by phase", "fig-latency")
            + table(["phase", "replies", "median ms", "p90 ms", "max ms"], rows, "latency-table"))


def _breakdown(s: pd.DataFrame, key: pd.Series, label: str, table_id: str) -> str:
    if not len(s):
        return table([label, "sessions"], [], table_id)
    df = s.assign(_key=key.fillna("?"), _fail=failing(s))
    rows = []
    for k, g in sorted(df.groupby("_key", observed=True), key=lambda kv: (-int(kv[1]["_fail"].sum()), -len(kv[1]), kv[0])):
        bad = g.loc[g["_fail"], "failure_cause"].astype("string").value_counts()
        causes = ", ".join(f"{c} ×{n}" for c, n in bad.items())
        helos = ", ".join(sorted(set(g["helo"].dropna().astype(str))))
        rows.append([cell(code(k), sort=k), cell(len(g), sort=len(g), numeric=True),
                     cell(int(g["_fail"].sum()), sort=int(g["_fail"].sum()), numeric=True),
                     cell(causes), cell(_n(g["messages"].fillna(0).sum()), numeric=True), cell(helos),
                     cell(_ts(g["ts"].min())), cell(_ts(g["ts"].max()))])
    return table([label, "sessions", "failing", "failure causes", "messages", "HELO names", "first seen (UTC)",
                  "last seen (UTC)"], rows, table_id, sortable=True)


def breakdown_section(s: pd.DataFrame) -> str:
    server = s["server_ip"].astype("string") + ":" + s["server_port"].astype("string") if len(s) else pd.Series(dtype="string")
    client = s["client_ip"].astype("string") if len(s) else pd.Series(dtype="string")
    return ("<h2>Per server</h2>" + _breakdown(s, server, "server", "servers-table")
            + "<h2>Per client</h2>" + _breakdown(s, client, "client", "clients-table"))


def failing_section(s: pd.DataFrame) -> str:
    bad = s[failing(s)].sort_values("ts", kind="stable") if len(s) else s
    rows = []
    for r in bad.itertuples():
        layer = "udp" if str(getattr(r, "proto", "smtp")) == "dns" else "tcp"
        stream, frame = code(f"{layer}.stream == {_n(r.stream)}"), code(f"frame.number == {_n(r.first_frame)}")
        where = Raw(f'<code class="file">{esc(r.pcap_file)}</code><br>{stream}<br>{frame}')
        also = [a for a in (r.anomalies if isinstance(r.anomalies, (list, tuple)) else []) if a != r.failure_cause]
        start = Raw("<br>".join(map(esc, _ts(r.ts).split(" "))))
        ends = Raw(f"{esc(_endpoint(r.client_ip, r.client_port))}<br>→ {esc(_endpoint(r.server_ip, r.server_port))}")
        rows.append([cell(start, sort=_ts(r.ts), cls="nw"), cell(swatch(str(r.failure_cause)), sort=r.failure_cause, cls="nw"),
                     cell(r.detail, cls="ev"), cell(ends, cls="nw"), cell(r.helo), cell(r.last_reply),
                     cell(also), cell(where, sort=f"{r.pcap_file} {_n(r.stream):09d}", cls="where")])
    intro = ("<h2>Failing sessions</h2><p>Click a column to sort. To open one in Wireshark: open the capture file, "
             "type the <code>tcp.stream</code> filter into the display filter bar, or jump to its first frame with "
             "Go → Go to Packet (Ctrl+G).</p>")
    if not rows:
        return intro + '<p class="muted" id="no-failing">No failing session.</p>'
    return intro + table(["start (UTC)", "cause", "evidence", "client → server", "HELO", "last reply", "also found",
                          "open in Wireshark"], rows, "failing-sessions", sortable=True)


def _of_proto(s: pd.DataFrame, protos: Sequence[str]) -> pd.DataFrame:
    if not len(s) or "proto" not in s:
        return s.iloc[0:0]
    return s[s["proto"].astype("string").isin(list(protos))]


def dns_section(s: pd.DataFrame) -> str:
    """Mail DNS lookups: MX queries and A/AAAA of the exchangers, answered or not."""
    d = _of_proto(s, ["dns"])
    head = "<h2>DNS lookups for mail</h2>"
    if not len(d):
        return head + '<p class="muted" id="no-dns">No MX lookups (or A/AAAA lookups of mail exchangers) in the captures.</p>'
    rows = []
    for r in d.sort_values("ts", kind="stable").itertuples():
        lat = getattr(r, "latency", None)
        ms = "" if lat is None or pd.isna(lat) else f"{pd.Timedelta(lat).total_seconds() * 1000:.1f}"
        answers = ", ".join(map(str, r.answers)) if isinstance(r.answers, (list, tuple)) else ""
        rows.append([cell(_ts(r.ts), cls="nw"), cell(code(r.query)), cell(r.qtype), cell(r.rcode), cell(answers),
                     cell(ms, sort=ms or -1, numeric=True), cell(_n(r.queries), numeric=True),
                     cell(swatch(str(r.failure_cause)), sort=r.failure_cause, cls="nw"),
                     cell(_endpoint(r.server_ip, r.server_port), cls="nw")])
    return head + table(["time (UTC)", "query", "type", "rcode", "answers", "latency ms", "sent", "verdict", "server"],
                        rows, "dns-lookups", sortable=True)


def mailbox_section(s: pd.DataFrame) -> str:
    """POP3 and IMAP sessions: who logged in (never the password), what they asked for."""
    m = _of_proto(s, ["pop", "imap"])
    head = "<h2>POP3 and IMAP sessions</h2>"
    if not len(m):
        return head + '<p class="muted" id="no-mailbox">No POP3 or IMAP sessions in the captures.</p>'
    rows = []
    for r in m.sort_values("ts", kind="stable").itertuples():
        ends = Raw(f"{esc(_endpoint(r.client_ip, r.client_port))}<br>→ {esc(_endpoint(r.server_ip, r.server_port))}")
        rows.append([cell(_ts(r.ts), cls="nw"), cell(str(r.proto).upper()), cell(ends, cls="nw"), cell(r.user),
                     cell(r.commands), cell("yes" if r.tls is True else ""),
                     cell(swatch(str(r.failure_cause)), sort=r.failure_cause, cls="nw"), cell(r.detail, cls="ev")])
    return head + table(["start (UTC)", "protocol", "client → server", "user", "commands", "TLS", "verdict", "detail"],
                        rows, "mailbox-sessions", sortable=True)


def files_section(files: Sequence[str], outputs: Sequence[str]) -> str:
    links = " ".join(f'<a href="{esc(o)}">{esc(o)}</a>' for o in outputs)
    caps = "".join(f"<li>{code(f)}</li>" for f in files)
    return (f"<h2>Data</h2><p>The tables behind this page: {links}.</p>"
            f"<details><summary>{len(files)} capture file{'s' if len(files) != 1 else ''}</summary><ul>{caps}</ul></details>")


def render(s: pd.DataFrame, t: pd.DataFrame, lat: Optional[pd.DataFrame] = None,
           read_log: Optional[ReadLog] = None, outputs: Sequence[str] = (),
           title: str = "SMTP diagnosis report") -> str:
    """The whole page as a string."""
    files = list(read_log.files) if read_log is not None and read_log.files \
        else sorted(map(str, s["pcap_file"].dropna().unique()))
    captures_read = len([f for f in files if read_log is None or f not in read_log.failed])
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [damage_banner(read_log), "<main>", f"<h1>{esc(title)}</h1>",
             f'<p class="meta">Generated {generated} by smtpdiag {esc(__version__)}.</p>',
             headline(s, t, captures_read), causes_section(s), failing_section(s), replies_section(s),
             timeline_section(s), latency_section(lat), breakdown_section(s), dns_section(s), mailbox_section(s),
             files_section(files, outputs), "</main>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="referrer" content="no-referrer"><meta name="viewport" content="width=device-width">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(p for p in parts if p) + f"\n<script>{SORT_JS}</script></body></html>\n")
