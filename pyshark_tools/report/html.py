"""The HTML of the report: one self-contained page (inline CSS, inline PNG figures, a small script for sorting
and searching), its sections in reading order.

Values from the captures reach the page only through markup.py (`esc`, `cell`): see there for
the escaping and the Content-Security-Policy. Long tables are cut at a cap with a line saying
how many rows are left out; the full tables are the CSV/Parquet files beside the page.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional, Sequence

import pandas as pd

from ..errors import ReadLog
from ..tables.replies import code_class, worst_replies
from ..tables.verdicts import failing
from ..version import __version__
from .causes import CAUSES, describe
from .markup import CSP, CSS, SCRIPT, Raw, cell, code, esc, figure, prose, search_box, swatch, table
from .plots import CLASSES, causes_plot, latency_plot, replies_plot, timeline_plot

FAILING_CAP = 500     # failing sessions shown; the earliest of each cause in turn, so every cause is there
TABLE_CAP = 200       # rows of the per-client, DNS and mailbox tables
CHANGES_AFTER = pd.Timedelta(hours=1)


def _ts(v: object) -> str:
    return "" if v is None or pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%d %H:%M:%S")


def _endpoint(ip: Any, port: Any) -> str:
    """'ip:port' as plain text (escaped later by cell())."""
    ip_text = "?" if ip is None or pd.isna(ip) else str(ip)
    return ip_text if port is None or pd.isna(port) else f"{ip_text}:{int(port)}"


def _n(v: Any) -> int:
    return 0 if v is None or pd.isna(v) else int(v)


def _yes(v: Any) -> str:
    """'yes' for a true boolean of any kind (Python, numpy, pandas), '' for false or missing."""
    return "" if v is None or pd.isna(v) else ("yes" if bool(v) else "")


def _more(shown: int, total: int, what: str, ident: str, outputs: Sequence[str], hint: str = "") -> str:
    """The line under a capped table: how many rows are left out, and where all of them are."""
    if shown >= total:
        return ""
    files = [o for o in outputs if o.startswith("sessions.")]
    where = " and ".join(f'<a href="{esc(o)}">{esc(o)}</a>' for o in files) or "the sessions table"
    return (f'<p class="more" id="{ident}">Showing {shown:,} of {total:,} {esc(what)}{esc(hint)}. '
            f"{total - shown:,} more: all of them are in {where}.</p>")


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


SECTIONS = [("causes", "Failure causes"), ("what-changed", "What changed"), ("failing", "Failing sessions"),
            ("replies", "Reply codes"), ("timeline", "Timeline"), ("latency", "Server latency"),
            ("per-server", "Per server"), ("per-client", "Per client"), ("dns", "DNS lookups"),
            ("mailbox", "POP3 and IMAP"), ("data", "Data")]


def nav(s: pd.DataFrame) -> str:
    """Links to the sections (in-page anchors: nothing is fetched)."""
    spans = len(s) and "ts" in s and s["ts"].notna().sum() > 1 and s["ts"].max() - s["ts"].min() > CHANGES_AFTER
    links = [f'<a href="#{k}">{esc(label)}</a>' for k, label in SECTIONS if k != "what-changed" or spans]
    return f'<nav class="toc" id="toc">{" · ".join(links)}</nav>'


def causes_section(s: pd.DataFrame) -> str:
    counts = s["failure_cause"].astype("string").fillna("(none)").value_counts() if len(s) else pd.Series(dtype=int)
    order = sorted(counts.index, key=lambda c: (c == "ok", -counts[c], c))
    rows = []
    for c in order:
        m = describe(c)
        rows.append([cell(swatch(c), sort=c, cls="nw"), cell(int(counts[c]), sort=int(counts[c]), numeric=True),
                     cell(f"{100 * counts[c] / len(s):.0f} %", numeric=True),
                     cell(prose(m.meaning)), cell(prose(m.check))])
    return ('<h2 id="causes">Failure causes</h2>' + figure(causes_plot(s), "sessions by failure cause", "fig-causes")
            + table(["cause", "sessions", "share", "what it means", "what to check"], rows, "causes-table"))


def _earliest_of_each_cause(bad: pd.DataFrame, cap: int) -> pd.DataFrame:
    """At most `cap` rows: the earliest session of each cause, then the second of each, …; in time order."""
    if len(bad) <= cap:
        return bad
    turn = bad.groupby(bad["failure_cause"].astype("string").fillna("(none)"), sort=False).cumcount()
    keep = turn.sort_values(kind="stable").index[:cap]
    return bad.loc[bad.index.isin(keep)]


def _where(r: Any) -> Raw:
    """The capture file and the Wireshark filters of a session: all of it, and the frame proving its cause."""
    layer = "udp" if str(getattr(r, "proto", "smtp")) == "dns" else "tcp"
    stream = f"{layer}.stream == {_n(r.stream)}"
    cause = str(r.failure_cause)
    parts = [f'<code class="file">{esc(r.pcap_file)}</code>', code(stream, "filter"),
             code(f"frame.number == {_n(r.first_frame)}", "filter")]
    if cause in CAUSES and cause != "ok":
        parts.append("evidence: " + code(f"{stream} && smtpdiag.expert.{cause}", "filter"))
    return Raw("<br>".join(parts))


def failing_section(s: pd.DataFrame, worst: pd.DataFrame, outputs: Sequence[str] = ()) -> str:
    bad = s[failing(s)].sort_values("ts", kind="stable") if len(s) else s
    shown = _earliest_of_each_cause(bad, FAILING_CAP)
    rows = []
    for r in shown.itertuples():
        first_bad = worst.at[r.Index, "first_failing_reply"] if r.Index in worst.index else pd.NA
        also = [a for a in (r.anomalies if isinstance(r.anomalies, (list, tuple)) else []) if a != r.failure_cause]
        start = Raw("<br>".join(map(esc, _ts(r.ts).split(" "))))
        helo = "" if pd.isna(r.helo) else f'<br><span class="muted">HELO</span> {esc(r.helo)}'
        ends = Raw(f"{esc(_endpoint(r.client_ip, r.client_port))}<br>→ {esc(_endpoint(r.server_ip, r.server_port))}"
                   + helo)
        rows.append([cell(start, sort=_ts(r.ts), cls="nw"),
                     cell(swatch(str(r.failure_cause)), sort=r.failure_cause, cls="nw"),
                     cell(r.detail, cls="ev"), cell(ends, cls="ends"),
                     cell("" if pd.isna(first_bad) else int(first_bad), sort=_n(first_bad), numeric=True),
                     cell(r.last_reply), cell(_yes(r.tls)), cell(also),
                     cell(_where(r), sort=f"{r.pcap_file} {_n(r.stream):09d}", cls="where")])
    intro = ('<h2 id="failing">Failing sessions</h2>'
             "<p>Click a column to sort; type in the box to keep the rows holding every "
             "word. To open one in Wireshark: open the capture file and paste a filter into the display filter bar "
             "(one click selects it): the session, its first frame, or the frame that proves its cause.</p>")
    if not rows:
        return intro + '<p class="muted" id="no-failing">No failing session.</p>'
    return (intro + search_box("failing-sessions", "failing sessions")
            + table(["start (UTC)", "cause", "evidence", "client → server", "first 4xx/5xx", "last reply", "TLS",
                     "also found", "open in Wireshark"], rows, "failing-sessions", sortable=True)
            + _more(len(shown), len(bad), "failing sessions", "failing-more", outputs,
                    " (the earliest of each cause in turn, so that every cause is here)"))


def _counted(cause: str, n: int, new: bool) -> str:
    text = f"{swatch(cause)} ×{n:,}"
    return f'<span class="new">{text}</span>' if new else text


def changes_section(s: pd.DataFrame) -> str:
    """When the captures span more than an hour: sessions and failure causes per hour (per day, week or month
    when there are more than TABLE_CAP hours with sessions); periods without sessions are left out."""
    ts = s["ts"].dropna() if len(s) and "ts" in s else pd.Series(dtype="datetime64[ns, UTC]")
    if len(ts) < 2 or ts.max() - ts.min() <= CHANGES_AFTER:
        return ""
    df = s[s["ts"].notna()]
    naive = df["ts"].dt.tz_convert(None)
    for freq, unit, fmt in (("h", "hour", "%Y-%m-%d %H:%M"), ("D", "day", "%Y-%m-%d"), ("W", "week", "%Y-%m-%d"),
                            ("M", "month", "%Y-%m"), ("Y", "year", "%Y")):
        bins = naive.dt.to_period(freq).dt.start_time
        if bins.nunique() <= TABLE_CAP:
            break
    causes = df["failure_cause"].astype("string").fillna("(none)")
    bad = failing(df).to_numpy()
    rows, seen, prev_share = [], set(), None
    for start in sorted(bins.unique()):
        here = (bins == start).to_numpy()
        n, n_bad = int(here.sum()), int((here & bad).sum())
        counts = causes[here & bad].value_counts()
        new = [c for c in counts.index if c not in seen] if rows else []
        seen.update(counts.index)
        share = 100 * n_bad / n
        delta = "" if prev_share is None else f"{share - prev_share:+.0f} pts"
        up = prev_share is not None and share - prev_share >= 10
        listed = Raw(", ".join(_counted(c, k, c in new) for c, k in counts.items()))
        rows.append([cell(pd.Timestamp(start).strftime(fmt), cls="nw"), cell(n, numeric=True),
                     cell(n_bad, numeric=True), cell(f"{share:.0f} %", numeric=True),
                     cell(Raw(f'<span class="up">{esc(delta)}</span>') if up else delta, numeric=True),
                     cell(listed), cell(Raw(", ".join(swatch(c) for c in new)))])
        prev_share = share
    hours = (ts.max() - ts.min()).total_seconds() / 3600
    return (f'<h2 id="what-changed">What changed</h2><p>The captures span {hours:,.1f} hours. Sessions and failure '
            f"causes per {unit} (UTC; {unit}s without sessions left out): a rise of the failing share by 10 points "
            "or more since the row above is marked, a cause seen for the first time is in bold.</p>"
            + table([f"{unit} (UTC)", "sessions", "failing", "failing share", "change", "failure causes",
                     "new causes"], rows, "changes-table"))


def replies_section(s: pd.DataFrame, worst: pd.DataFrame, from_frames: bool, t: Optional[pd.DataFrame],
                    replies: Optional[pd.DataFrame]) -> str:
    smtp = s[s["proto"].astype("string") == "smtp"] if len(s) and "proto" in s else s.iloc[0:0]
    w = worst.loc[smtp.index, "worst_reply"] if len(smtp) else pd.Series([], dtype="UInt16")
    cls = code_class(w)
    bad = failing(smtp) if len(smtp) else pd.Series([], dtype=bool)
    class_rows = [[cell(code(c)), cell(int((cls == c).sum()), numeric=True),
                   cell(int(((cls == c) & bad).sum()), numeric=True)] for c in CLASSES if (cls == c).any()]
    refused = w[w >= 400].astype(int)
    code_rows = [[cell(code(c)), cell(int(n), numeric=True), cell(int(((w == c) & bad).sum()), numeric=True)]
                 for c, n in refused.value_counts().sort_index().items()]
    how = ("every reply the plugin saw" if from_frames
           else "the last reply of each session and of each of its mail transactions (no per-frame pass was given)")
    return ('<h2 id="replies">Reply codes</h2>'
            "<p>Each SMTP session is counted once, by the worst reply it got: its first 5xx, "
            "else its first 4xx, else its last reply; so QUIT's 221 does not hide an earlier 550. Counted from "
            f"{esc(how)}.</p>"
            + figure(replies_plot(smtp, replies if from_frames else None, t), "worst reply per SMTP session",
                     "fig-replies")
            + table(["worst reply class", "sessions", "failing"], class_rows, "replies-table", narrow=True)
            + (table(["worst reply code", "sessions", "failing"], code_rows, "reply-codes-table", narrow=True)
               if code_rows else '<p class="muted" id="no-refusals">No session got a 4xx or 5xx reply.</p>'))


def timeline_section(s: pd.DataFrame) -> str:
    return ('<h2 id="timeline">Timeline</h2>'
            "<p>Sessions started per time bin: all of them on top (light grey ok, dark grey failing), the "
            "failing ones by cause below. A few sessions far from the rest do not stretch the axis: the note "
            "under it counts them.</p>"
            + figure(timeline_plot(s), "sessions over time, failing ones by cause", "fig-timeline"))


def latency_section(lat: Optional[pd.DataFrame]) -> str:
    head = ('<h2 id="latency">Server latency</h2>'
            "<p>How long servers took to answer: greeting, EHLO → 250, DATA → 354, end "
            "of data → final reply.</p>")
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
            + table(["phase", "replies", "median ms", "p90 ms", "max ms"], rows, "latency-table", narrow=True))


def _breakdown(s: pd.DataFrame, key: pd.Series, label: str, table_id: str, outputs: Sequence[str]) -> str:
    headers = [label, "sessions", "failing", "failure causes", "messages", "TLS", "HELO names", "first seen (UTC)",
               "last seen (UTC)"]
    if not len(s):
        return table(headers, [], table_id)
    df = s.assign(_key=key.fillna("?").astype(str), _fail=failing(s), _tls=s["tls"].fillna(False).astype(bool))
    sizes = df.groupby("_key").agg(n=("_fail", "size"), bad=("_fail", "sum"))
    sizes = sizes.assign(k=sizes.index).sort_values(["bad", "n", "k"], ascending=[False, False, True])
    top = list(sizes.index[:TABLE_CAP])
    rows = []
    for k, g in df[df["_key"].isin(top)].groupby("_key"):
        bad = g.loc[g["_fail"], "failure_cause"].astype("string").value_counts()
        causes = ", ".join(f"{c} ×{n}" for c, n in bad.items())
        helos = sorted(set(g["helo"].dropna().astype(str)))
        helo_text = ", ".join(helos[:10]) + (f", … ({len(helos) - 10} more)" if len(helos) > 10 else "")
        rows.append((top.index(k), [cell(code(k), sort=k), cell(len(g), sort=len(g), numeric=True),
                     cell(int(g["_fail"].sum()), sort=int(g["_fail"].sum()), numeric=True),
                     cell(causes), cell(_n(g["messages"].fillna(0).sum()), numeric=True),
                     cell(int(g["_tls"].sum()), numeric=True), cell(helo_text),
                     cell(_ts(g["ts"].min())), cell(_ts(g["ts"].max()))]))
    rows.sort(key=lambda r: r[0])
    return (table(headers, [r for _, r in rows], table_id, sortable=True)
            + _more(len(rows), len(sizes), f"{label}s", f"{table_id}-more", outputs, " (most failing first)"))


def breakdown_section(s: pd.DataFrame, outputs: Sequence[str] = ()) -> str:
    server = s["server_ip"].astype("string") + ":" + s["server_port"].astype("string") if len(s) else pd.Series(dtype="string")
    client = s["client_ip"].astype("string") if len(s) else pd.Series(dtype="string")
    return ('<h2 id="per-server">Per server</h2>' + _breakdown(s, server, "server", "servers-table", outputs)
            + '<h2 id="per-client">Per client</h2>' + _breakdown(s, client, "client", "clients-table", outputs))


def _of_proto(s: pd.DataFrame, protos: Sequence[str]) -> pd.DataFrame:
    if not len(s) or "proto" not in s:
        return s.iloc[0:0]
    return s[s["proto"].astype("string").isin(list(protos))]


def _failing_first(df: pd.DataFrame, cap: int) -> pd.DataFrame:
    """At most `cap` rows, failing ones first, in time order."""
    if len(df) <= cap:
        return df.sort_values("ts", kind="stable")
    return df.assign(_ok=~failing(df)).sort_values(["_ok", "ts"], kind="stable").head(cap).sort_values(
        "ts", kind="stable")


def dns_section(s: pd.DataFrame, outputs: Sequence[str] = ()) -> str:
    """Mail DNS lookups: MX queries and A/AAAA of the exchangers, answered or not."""
    d = _of_proto(s, ["dns"])
    head = '<h2 id="dns">DNS lookups for mail</h2>'
    if not len(d):
        return head + '<p class="muted" id="no-dns">No MX lookups (or A/AAAA lookups of mail exchangers) in the captures.</p>'
    rows = []
    for r in _failing_first(d, TABLE_CAP).itertuples():
        lat = getattr(r, "latency", None)
        ms = "" if lat is None or pd.isna(lat) else f"{pd.Timedelta(lat).total_seconds() * 1000:.1f}"
        answers = ", ".join(map(str, r.answers)) if isinstance(r.answers, (list, tuple)) else ""
        rows.append([cell(_ts(r.ts), cls="nw"), cell(code(r.query)), cell(r.qtype), cell(r.rcode), cell(answers),
                     cell(ms, sort=ms or -1, numeric=True), cell(_n(r.queries), numeric=True),
                     cell(swatch(str(r.failure_cause)), sort=r.failure_cause, cls="nw"),
                     cell(_endpoint(r.server_ip, r.server_port), cls="nw")])
    return (head + table(["time (UTC)", "query", "type", "rcode", "answers", "latency ms", "sent", "verdict",
                          "server"], rows, "dns-lookups", sortable=True)
            + _more(len(rows), len(d), "DNS lookups", "dns-lookups-more", outputs, " (failing ones first)"))


def mailbox_section(s: pd.DataFrame, outputs: Sequence[str] = ()) -> str:
    """POP3 and IMAP sessions: who logged in (never the password), what they asked for."""
    m = _of_proto(s, ["pop", "imap"])
    head = '<h2 id="mailbox">POP3 and IMAP sessions</h2>'
    if not len(m):
        return head + '<p class="muted" id="no-mailbox">No POP3 or IMAP sessions in the captures.</p>'
    rows = []
    for r in _failing_first(m, TABLE_CAP).itertuples():
        ends = Raw(f"{esc(_endpoint(r.client_ip, r.client_port))}<br>→ {esc(_endpoint(r.server_ip, r.server_port))}")
        rows.append([cell(_ts(r.ts), cls="nw"), cell(str(r.proto).upper()), cell(ends, cls="nw"), cell(r.user),
                     cell(r.commands), cell(_yes(r.tls)),
                     cell(swatch(str(r.failure_cause)), sort=r.failure_cause, cls="nw"), cell(r.detail, cls="ev")])
    return (head + table(["start (UTC)", "protocol", "client → server", "user", "commands", "TLS", "verdict",
                          "detail"], rows, "mailbox-sessions", sortable=True)
            + _more(len(rows), len(m), "POP3/IMAP sessions", "mailbox-sessions-more", outputs, " (failing ones first)"))


def files_section(files: Sequence[str], outputs: Sequence[str]) -> str:
    links = " ".join(f'<a href="{esc(o)}">{esc(o)}</a>' for o in outputs)
    caps = "".join(f"<li>{code(f)}</li>" for f in files)
    return (f'<h2 id="data">Data</h2><p id="data-files">The full tables behind this page (every session, every transaction): '
            f"{links}.</p>"
            f"<details><summary>{len(files)} capture file{'s' if len(files) != 1 else ''}</summary><ul>{caps}</ul></details>")


def render(s: pd.DataFrame, t: pd.DataFrame, lat: Optional[pd.DataFrame] = None,
           read_log: Optional[ReadLog] = None, outputs: Sequence[str] = (),
           title: str = "SMTP diagnosis report", replies: Optional[pd.DataFrame] = None) -> str:
    """The whole page as a string. `replies` (tables.replies.replies_from_frames) gives the reply chart every
    reply; without it, the sessions' and transactions' last replies are counted."""
    files = list(read_log.files) if read_log is not None and read_log.files \
        else sorted(map(str, s["pcap_file"].dropna().unique()))
    captures_read = len([f for f in files if read_log is None or f not in read_log.failed])
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    worst = worst_replies(s, replies, t)
    parts = [damage_banner(read_log), "<main>", f"<h1>{esc(title)}</h1>",
             f'<p class="meta">Generated {generated} by smtpdiag {esc(__version__)}.</p>',
             headline(s, t, captures_read), nav(s), causes_section(s), changes_section(s),
             failing_section(s, worst, outputs), replies_section(s, worst, replies is not None, t, replies),
             timeline_section(s), latency_section(lat), breakdown_section(s, outputs), dns_section(s, outputs),
             mailbox_section(s, outputs), files_section(files, outputs), "</main>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="referrer" content="no-referrer"><meta name="viewport" content="width=device-width">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(p for p in parts if p) + f"\n<script>{SCRIPT}</script></body></html>\n")
