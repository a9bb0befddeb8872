"""The report read in Chromium as someone who must find why mail failed: the fixtures' report and the report of a
capture of more than 5,000 sessions (a day at a relay, with STARTTLS, POP3S and IMAPS sessions merged in).

TLS says yes on the TLS sessions, a 5xx bar shows when a 5xx rejection happened (even behind QUIT's 221), the
search box filters the failing sessions under the page's CSP, long tables stop at a cap with "N more", each
failing session opens in Wireshark by its filters, and the page stays under 1.5 MB.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import browser
from conftest import CORPUS, FIXTURES, ROOT

import pyshark_tools as pt
from pyshark_tools.cli import cli
from pyshark_tools.report import plots, write_report
from pyshark_tools.report.html import FAILING_CAP, TABLE_CAP
from pyshark_tools.tables.replies import replies_from_frames, reply_frames, worst_replies

sys.path.insert(0, str(ROOT / "bench"))
from make_capture import BASE_EPOCH, build  # noqa: E402

ARTIFACTS = ROOT / "test-artifacts"
MAX_PAGE = 1_500_000
TLS_FIXTURES = ["starttls_ok.pcap", "tls_failed.pcap", "tls_reset_close_smtps.pcap", "pop3s_ok.pcap",
                "imaps_ok.pcap", "imap_starttls_ok.pcap"]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.skip(f"{name} not installed (it comes with tshark)")
    return path


@pytest.fixture(scope="session")
def big_capture(tmp_path_factory) -> Path:
    """More than 5,000 sessions over two hours (bench/make_capture.py), with TLS fixtures moved into that time."""
    d = tmp_path_factory.mktemp("big")
    build(160_000, d / "relay.pcap", seed=17, span=7200.0)
    parts = [str(d / "relay.pcap")]
    for k, name in enumerate(TLS_FIXTURES):
        first = float(subprocess.run([_tool("capinfos"), "-T", "-r", "-a", "-S", str(FIXTURES / name)], check=True,
                                     capture_output=True, text=True).stdout.split("\t")[-1].strip() or 0)
        shifted = d / f"tls-{k}.pcap"
        subprocess.run([_tool("editcap"), "-F", "pcap", "-t", f"{BASE_EPOCH + 600 * (k + 1) - first:.6f}",
                        str(FIXTURES / name), str(shifted)], check=True, capture_output=True)
        parts.append(str(shifted))
    out = d / "relay-with-tls.pcap"
    subprocess.run([_tool("mergecap"), "-F", "pcap", "-w", str(out), *parts], check=True, capture_output=True)
    return out


def _report(captures, out: Path, tshark):
    log = pt.ReadLog()
    index = write_report(captures, out, tshark=tshark, read_log=log)
    s, t = pt.sessions_and_transactions(captures, tshark=tshark)
    replies = replies_from_frames(reply_frames(captures, tshark=tshark))
    return {"index": index, "log": log, "s": s, "t": t, "replies": replies}


@pytest.fixture(scope="session")
def reports(tmp_path_factory, tshark, big_capture):
    out = tmp_path_factory.mktemp("reports")
    return {"fixtures": _report(str(FIXTURES), out / "fixtures", tshark),
            "5k": _report(str(big_capture), out / "5k", tshark)}


@pytest.fixture(scope="session")
def doms(reports, tmp_path_factory):
    work = tmp_path_factory.mktemp("chromium")
    ARTIFACTS.mkdir(exist_ok=True)
    got = {}
    for name, r in reports.items():
        shot = ARTIFACTS / f"report-{name}.png"
        shot.unlink(missing_ok=True)
        netlog = work / f"{name}-net.json"
        browser.run(r["index"], work, "--window-size=1280,9000", f"--screenshot={shot}", netlog=netlog)
        assert shot.stat().st_size > 50_000 and browser.page_requests(netlog) == []
        got[name] = browser.parse(browser.run(r["index"], work, "--dump-dom").stdout)
    return got


BOTH = ["fixtures", "5k"]


def test_the_big_capture_is_big(reports):
    s = reports["5k"]["s"]
    assert len(s) >= 5000 and reports["5k"]["log"].ok
    assert s["tls"].fillna(False).sum() == len(TLS_FIXTURES)


@pytest.mark.parametrize("name", BOTH)
def test_page_stays_small(reports, name):
    size = reports[name]["index"].stat().st_size
    assert size < MAX_PAGE, f"{name}: {size:,} bytes"


def _session_of(row_where: str, s: pd.DataFrame) -> pd.Series:
    """The session a failing-sessions row stands for, from its file and stream filter."""
    m = re.match(r"(.*?\.(?:pcapng|pcap)(?:\.gz)?)\s*(?:tcp|udp)\.stream == (\d+)", row_where)
    hit = s[(s["pcap_file"].astype(str) == m.group(1)) & (s["stream"] == int(m.group(2)))]
    assert len(hit) >= 1, row_where
    return hit.iloc[0]


@pytest.mark.parametrize("name", BOTH)
def test_tls_says_yes_on_tls_sessions(reports, doms, name):
    s, dom = reports[name]["s"], doms[name]
    head, *rows = dom.tables["failing-sessions"]
    col = head.index("TLS")
    seen_yes = 0
    for row in rows:
        tls = bool(_session_of(row[-1], s)["tls"])
        assert row[col] == ("yes" if tls else ""), row
        seen_yes += tls
    # fixtures: every failing TLS fixture; 5k: tls_failed at least (the only session of its cause, so shown)
    assert seen_yes >= (2 if name == "fixtures" else 1)
    head, *rows = dom.tables["mailbox-sessions"]
    col, ends = head.index("TLS"), head.index("client → server")
    by_client = {f"{ip}:{port}": bool(t) for ip, port, t in zip(s["client_ip"], s["client_port"], s["tls"])}
    yes = [r for r in rows if r[col] == "yes"]
    assert len(yes) >= 2                     # pop3s and imaps at least
    for r in rows:
        assert r[col] == ("yes" if by_client[r[ends].split("→")[0].strip()] else ""), r


@pytest.mark.parametrize("name", BOTH)
def test_a_5xx_bar_when_a_5xx_rejection_happened(reports, doms, name):
    s, t, replies, dom = reports[name]["s"], reports[name]["t"], reports[name]["replies"], doms[name]
    rejected = s[s["failure_cause"].astype(str).isin(["rejected", "greeting_rejected", "auth_failed"])]
    assert len(rejected)
    # QUIT's 221 was their last reply: a chart of last replies showed no 5xx for them
    assert rejected["last_reply"].astype(str).str.startswith("221").any()
    classes = {r[0]: int(r[1]) for r in dom.tables["replies-table"][1:]}
    assert classes.get("5xx", 0) >= len(rejected)
    codes = {r[0] for r in dom.tables["reply-codes-table"][1:]}
    assert {"550", "554", "535"} <= codes
    fig = plots.replies_plot(s, replies, t)          # the figure on the page, drawn from the same tables
    left = fig.axes[0]
    bars = dict(zip([x.get_text() for x in left.get_xticklabels()],
                    [sum(p.get_height() for p in left.patches if abs(p.get_x() + p.get_width() / 2 - k) < 0.01)
                     for k in range(len(left.get_xticklabels()))]))
    assert bars["5xx"] == classes["5xx"]


def _search_probe(queries: list[str]) -> str:
    """Types each query into the failing sessions' search box; records rows shown, the count line, their causes."""
    return ("window.addEventListener('load',function(){var box=document.getElementById('failing-sessions-search'),"
            "t=document.getElementById('failing-sessions'),out=[];"
            f"{json.dumps(queries)}.forEach(function(q){{box.value=q;box.dispatchEvent(new Event('input'));"
            "var shown=Array.from(t.tBodies[0].rows).filter(function(r){return !r.hidden;});"
            "out.push([q,shown.length,document.getElementById('failing-sessions-count').textContent,"
            "shown.map(function(r){return r.cells[1].textContent.trim();}).join(',')].join('\\t'));});"
            "var p=document.createElement('pre');p.id='search-probe';p.textContent=out.join('\\n');"
            "document.body.appendChild(p);});")


def with_script(index: Path, dest: Path, js: str) -> Path:
    """A copy of the page with `js` added and allowed by the page's own CSP (by its hash)."""
    html = index.read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(js.encode()).digest()).decode()
    html = html.replace("script-src ", f"script-src 'sha256-{digest}' ", 1).replace(
        "</body>", f"<script>{js}</script></body>")
    dest.write_text(html, encoding="utf-8")
    return dest


@pytest.mark.parametrize("name, words", [("fixtures", "rejected"), ("5k", "greeting_rejected 554")])
def test_search_box_filters_rows(reports, doms, name, words, tmp_path):
    rows = doms[name].tables["failing-sessions"][1:]
    expected = [r for r in rows if all(w in " ".join(r).lower() for w in words.split())]
    assert 0 < len(expected) < len(rows)
    queries = [words, "no-such-thing-anywhere", ""]
    page = with_script(reports[name]["index"], tmp_path / "search.html", _search_probe(queries))
    netlog = tmp_path / "net.json"
    dom = browser.parse(browser.run(page, tmp_path, "--dump-dom", netlog=netlog).stdout)
    got = [line.split("\t") for line in dom.by_id["search-probe"].strip("\n").split("\n")]
    assert [g[0] for g in got] == queries
    assert int(got[0][1]) == len(expected) and got[0][2] == f"{len(expected)} of {len(rows)} rows shown"
    assert got[0][3].split(",") == [r[1] for r in expected]
    assert int(got[1][1]) == 0 and int(got[2][1]) == len(rows)
    assert browser.page_requests(netlog) == []
    if name == "5k":     # what a person sees after typing (the sections above folded away): kept for a look
        typed = ("window.addEventListener('load',function(){var box=document.getElementById('failing-sessions-search');"
                 f"box.value={json.dumps(words)};box.dispatchEvent(new Event('input'));"
                 "var m=document.querySelector('main'),f=document.getElementById('failing');"
                 "for(var e=m.firstElementChild;e&&e!==f;e=e.nextElementSibling){e.hidden=true;}});")
        shot_page = with_script(reports[name]["index"], tmp_path / "typed.html", typed)
        browser.run(shot_page, tmp_path, "--window-size=1280,1800", f"--screenshot={ARTIFACTS / 'report-5k-search.png'}")


def test_long_tables_stop_at_a_cap_with_the_rest_beside(reports, doms):
    s, dom = reports["5k"]["s"], doms["5k"]
    bad = s[s["failure_cause"].astype(str) != "ok"]
    rows = dom.tables["failing-sessions"][1:]
    assert len(bad) > FAILING_CAP and len(rows) == FAILING_CAP
    assert {r[1] for r in rows} == set(bad["failure_cause"].astype(str))   # every cause is on the page
    more = dom.by_id["failing-more"]
    assert f"Showing {FAILING_CAP:,} of {len(bad):,} failing sessions" in more
    assert f"{len(bad) - FAILING_CAP:,} more" in more and "sessions.csv" in more and "sessions.parquet" in more
    assert len(dom.tables["clients-table"]) - 1 == TABLE_CAP and "clients-table-more" in dom.by_id
    folder = reports["5k"]["index"].parent
    assert len(pd.read_parquet(folder / "sessions.parquet")) == len(s) == len(pd.read_csv(folder / "sessions.csv"))


def test_fixtures_report_is_not_capped(reports, doms):
    s, dom = reports["fixtures"]["s"], doms["fixtures"]
    assert len(dom.tables["failing-sessions"]) - 1 == int((s["failure_cause"].astype(str) != "ok").sum())
    assert "failing-more" not in dom.by_id


def test_what_changed_per_hour(reports, doms):
    s, dom = reports["5k"]["s"], doms["5k"]
    rows = dom.tables["changes-table"]
    assert rows[0][0] == "hour (UTC)" and len(rows) - 1 >= 2
    assert sum(int(r[1].replace(",", "")) for r in rows[1:]) == len(s)
    assert sum(int(r[2].replace(",", "")) for r in rows[1:]) == int((s["failure_cause"].astype(str) != "ok").sum())


def test_no_what_changed_within_an_hour(tshark, tmp_path):
    page = write_report(str(FIXTURES / "rejected.pcap"), tmp_path, tshark=tshark).read_text()
    assert 'id="what-changed"' not in page


EVIDENCE = ["rejected.pcap", "tempfail.pcap", "data_timeout.pcap", "tls_failed.pcap", "greeting_rejected.pcap"]


@pytest.mark.parametrize("capture", EVIDENCE)
def test_failing_row_opens_in_wireshark(reports, doms, tshark, capture):
    s = reports["fixtures"]["s"]
    row = next(r for r in doms["fixtures"].tables["failing-sessions"][1:] if r[-1].startswith(capture + "tcp.stream"))
    session = _session_of(row[-1], s)
    cause = str(session["failure_cause"])
    assert f"tcp.stream == {session['stream']}" in row[-1]
    assert f"frame.number == {session['first_frame']}" in row[-1]
    evidence = f"tcp.stream == {session['stream']} && smtpdiag.expert.{cause}"
    assert evidence in row[-1]
    res = tshark.run(["-n", "-2", "-r", str(FIXTURES / capture), *tshark.lua_args(), "-Y", evidence,
                      "-T", "fields", "-e", "frame.number"])
    frames = [int(x) for x in res.stdout.decode().split()]
    assert res.returncode == 0 and frames, res.stderr
    assert all(session["first_frame"] <= f <= session["last_frame"] for f in frames)


@pytest.mark.parametrize("where", ["fixtures", "corpus"])
def test_cli_report_over_a_whole_folder(where, tmp_path):
    folder = FIXTURES if where == "fixtures" else CORPUS
    if not folder.is_dir():
        pytest.skip(f"no {folder}")
    res = CliRunner().invoke(cli, ["report", str(folder), "-o", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "r" / "index.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert 'id="fig-latency"' in page and 'id="latency-table"' in page and len(page) < MAX_PAGE
