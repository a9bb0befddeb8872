"""The report as a person sees it: built from real captures, opened in headless Chromium."""
from __future__ import annotations

import base64
import hashlib
import re
import shutil
import struct
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import browser
from conftest import FIXTURES, ROOT, corpus_file

import pyshark_tools as pt
from pyshark_tools.cli import cli
from pyshark_tools.report import TABLE_FILES, plots, write_report, write_report_from_tables
from pyshark_tools.tables.latency import latencies, latencies_from_packets

ARTIFACTS = ROOT / "test-artifacts"
REPORT_FIXTURES = ["data_timeout.pcap", "bare_lf_terminator.pcap", "rejected.pcap", "ok.pcap", "tempfail.pcap",
                   "no_response.pcap", "mtu_blackhole.pcap", "ok_multi.pcap"]
# Records what every <img> looks like once the page has loaded (natural size is 0 for a broken image).
PROBE_JS = ("window.addEventListener('load',function(){var r=[].map.call(document.images,function(i){"
            "return [i.id,i.complete,i.naturalWidth,i.naturalHeight,i.src.slice(0,22)].join(' ')});"
            "var p=document.createElement('pre');p.id='probe';"
            "p.textContent=r.join('\\n')+'\\nscripts='+document.scripts.length;document.body.appendChild(p);});")
RESOURCE_ATTR = re.compile(r"""\b(?:src|href|action|srcset|poster|data)\s*=\s*["']?\s*([^"'\s>]+)""", re.I)
CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)", re.I)


def captures() -> list[str]:
    return [str(FIXTURES / n) for n in REPORT_FIXTURES] + [str(corpus_file("smtp.pcap"))]


@pytest.fixture(scope="module")
def built(tmp_path_factory, tshark):
    """One report over several fixtures and the Zeek corpus smtp.pcap, with the tables it came from."""
    out = tmp_path_factory.mktemp("report")
    run = pt.ReadLog()
    index = write_report(captures(), out, tshark=tshark, read_log=run)
    sessions = pt.sessions(captures(), tshark=tshark)
    return index, run, sessions


def probe_copy(index: Path, dest: Path) -> Path:
    """A copy of the page with PROBE_JS added and allowed by the page's own CSP (by hash)."""
    html = index.read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(PROBE_JS.encode()).digest()).decode()
    assert "script-src " in html
    html = html.replace("script-src ", f"script-src 'sha256-{digest}' ", 1)
    html = html.replace("</body>", f"<script>{PROBE_JS}</script></body>")
    dest.write_text(html, encoding="utf-8")
    return dest


def external_references(html: str) -> list[str]:
    refs = RESOURCE_ATTR.findall(html) + CSS_URL.findall(html)
    return [r for r in refs if re.match(r"^(?:[a-z][a-z0-9+.-]*:|//)", r, re.I) and not r.startswith("data:")]


# -- what the files hold ------------------------------------------------------------

def test_report_folder_has_page_and_tables(built):
    index, run, sessions = built
    assert index.name == "index.html" and index.is_file()
    for name in TABLE_FILES:
        assert (index.parent / name).stat().st_size > 0, name
    back = pd.read_parquet(index.parent / "sessions.parquet")
    assert len(back) == len(sessions)
    assert sorted(back["failure_cause"].astype(str)) == sorted(sessions["failure_cause"].astype(str))
    csv_rows = pd.read_csv(index.parent / "sessions.csv")
    assert len(csv_rows) == len(sessions)
    assert len(pd.read_parquet(index.parent / "transactions.parquet")) == len(pt.transactions(captures()))
    assert run.ok, (run.damaged, run.failed)


def test_page_is_self_contained(built):
    html = built[0].read_text(encoding="utf-8")
    assert external_references(html) == [], external_references(html)
    assert "@import" not in html and "@font-face" not in html
    imgs = re.findall(r"<img\b[^>]*>", html)
    assert len(imgs) == 4
    assert all('src="data:image/png;base64,' in i for i in imgs)
    # the CSP forbids anything from outside the page, even if something slipped in
    assert "default-src 'none'" in html and "img-src data:" in html


# -- in the browser ------------------------------------------------------------------

def test_renders_in_chromium_with_every_figure_and_no_request(built, tmp_path):
    index = built[0]
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    netlog = tmp_path / "net.json"
    browser.run(index, tmp_path, "--window-size=1280,5200", f"--screenshot={shot}", netlog=netlog)
    assert shot.stat().st_size > 50_000          # a real page, not a blank one
    assert browser.page_requests(netlog) == []   # the page asked for nothing outside itself

    probe_netlog = tmp_path / "probe-net.json"
    res = browser.run(probe_copy(index, tmp_path / "probe.html"), tmp_path, "--dump-dom", netlog=probe_netlog)
    dom = browser.parse(res.stdout)
    lines = dom.by_id["probe"].strip().splitlines()
    figs = [ln.split() for ln in lines if ln.startswith("fig-")]
    assert {f[0] for f in figs} == {"fig-causes", "fig-replies", "fig-timeline", "fig-latency"}, lines
    for ident, complete, width, height, src in figs:
        assert complete == "true" and int(width) > 100 and int(height) > 50, (ident, width, height)
        assert src.startswith("data:image/png;base64")
    assert lines[-1] == "scripts=2"              # the page's sort script and the probe, nothing else
    assert browser.page_requests(probe_netlog) == []


def test_request_detector_sees_a_page_that_fetches(tmp_path):
    """Control for the check above: a page with outside references is caught (and still goes nowhere)."""
    page = tmp_path / "leaky.html"
    page.write_text('<!DOCTYPE html><img src="http://report-leak.invalid/x.png">'
                    '<link rel="stylesheet" href="https://fonts.report-leak.invalid/css">', encoding="utf-8")
    netlog = tmp_path / "net.json"
    browser.run(page, tmp_path, "--dump-dom", netlog=netlog)
    seen = browser.page_requests(netlog)
    assert "http://report-leak.invalid/x.png" in seen and "https://fonts.report-leak.invalid/css" in seen
    assert len(external_references(page.read_text())) == 2


def test_numbers_on_the_page_match_the_tables(built, tmp_path):
    index, run, sessions = built
    res = browser.run(index, tmp_path, "--dump-dom")
    dom = browser.parse(res.stdout)
    failing = int((sessions["failure_cause"].astype(str) != "ok").sum())
    assert dom.by_id["headline"].strip() == f"{failing} of {len(sessions)} sessions failed."
    assert int(dom.by_id["num-sessions"]) == len(sessions)
    assert int(dom.by_id["num-failing"]) == failing
    assert int(dom.by_id["num-captures"]) == len(captures())
    assert int(dom.by_id["num-messages"]) == int(sessions["messages"].fillna(0).sum())

    rows = dom.tables["causes-table"]
    assert rows[0][:2] == ["cause", "sessions"]
    on_page = {r[0]: int(r[1]) for r in rows[1:]}
    assert on_page == sessions["failure_cause"].astype(str).value_counts().to_dict()
    for r in rows[1:]:
        if r[0] != "ok":
            assert len(r[3]) > 10 and len(r[4]) > 10, r   # every cause says what it means and what to check

    failing_rows = dom.tables["failing-sessions"][1:]
    assert len(failing_rows) == failing
    bad = sessions[sessions["failure_cause"].astype(str) != "ok"]
    for r in bad.itertuples():
        match = [row for row in failing_rows if row[2] == " ".join(str(r.detail).split())]
        assert match, r.detail
        where = match[0][-1]
        assert r.pcap_file in where and f"tcp.stream == {r.stream}" in where and f"frame.number == {r.first_frame}" in where

    servers = {row[0]: int(row[1]) for row in dom.tables["servers-table"][1:]}
    expected = (sessions["server_ip"].astype(str) + ":" + sessions["server_port"].astype(str)).value_counts()
    assert servers == expected.to_dict()


def test_screenshot_artifact_kept(built, tmp_path):
    """The screenshot stays under test-artifacts/ (gitignored) for a person to look at."""
    shot = ARTIFACTS / "report.png"
    if not shot.exists():
        browser.run(built[0], tmp_path, "--window-size=1280,5200", f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "/test-artifacts/" in (ROOT / ".gitignore").read_text()


# -- hostile content, damaged captures ------------------------------------------------

HOSTILE = "<script>document.title='PWNED'</script>"
HOSTILE_IMG = "\"><img src=x onerror=\"document.title='PWNED'\">"


def hostile_tables(tshark):
    s, t = pt.sessions_and_transactions([str(FIXTURES / "rejected.pcap"), str(FIXTURES / "ok.pcap")], tshark=tshark)
    s = s.copy()
    s["helo"] = pd.Series([HOSTILE, "=HYPERLINK(\"http://x\")"], dtype="string")
    s["detail"] = pd.Series([HOSTILE_IMG, "1 message accepted"], dtype="string")
    s["last_reply"] = pd.Series(["550 <b>bold</b> & \x1b[31mred", "221 Bye"], dtype="string")
    s["pcap_file"] = pd.Series(["<i>evil</i>.pcap", "ok.pcap"], dtype="category")
    s["client_ip"] = pd.Series(["<svg onload=alert(1)>", "127.0.0.1"], dtype="string")
    return s, t


def test_capture_content_is_escaped(tshark, tmp_path):
    s, t = hostile_tables(tshark)
    index = write_report_from_tables(s, t, tmp_path / "r")
    html = index.read_text(encoding="utf-8")
    for raw in (HOSTILE, HOSTILE_IMG, "<b>bold</b>", "<i>evil</i>", "<svg onload", "\x1b"):
        assert raw not in html, raw
    assert "&lt;script&gt;document.title=&#x27;PWNED&#x27;&lt;/script&gt;" in html
    assert "&lt;i&gt;evil&lt;/i&gt;.pcap" in html
    assert html.count("<script>") == 1
    csv = (tmp_path / "r" / "sessions.csv").read_text()
    assert "'=HYPERLINK" in csv   # formula cells neutralised

    res = browser.run(probe_copy(index, tmp_path / "probe.html"), tmp_path, "--dump-dom")
    dom = browser.parse(res.stdout)
    assert dom.title == "SMTP diagnosis report"          # no injected script ran
    assert dom.by_id["probe"].strip().endswith("scripts=2")
    assert all(i.get("src", "").startswith("data:") for i in dom.imgs)
    assert HOSTILE in " ".join(sum(dom.tables["failing-sessions"], []))   # shown as text, not run


def truncated_mid_record(src: Path, dest: Path) -> Path:
    """Copy a pcap cut in the middle of a packet about 60 % into the file."""
    data = src.read_bytes()
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    pos = 24
    while pos + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[pos + 8:pos + 12])[0]
        if pos > len(data) * 0.6 and incl > 20:
            dest.write_bytes(data[:pos + 16 + incl // 2])
            return dest
        pos += 16 + incl
    raise AssertionError("no record to cut")


def test_damaged_capture_banner_on_top(tshark, tmp_path):
    cut = truncated_mid_record(corpus_file("smtp.pcap"), tmp_path / "smtp-cut.pcap")
    run = pt.ReadLog()
    index = write_report([str(cut), str(FIXTURES / "ok.pcap")], tmp_path / "r", tshark=tshark, read_log=run)
    assert str(cut) in run.damaged
    html = index.read_text(encoding="utf-8")
    body = html.split("<body>", 1)[1].lstrip()
    assert body.startswith('<div class="banner" id="damage"')
    banner = body.split("</div>", 1)[0]
    assert "smtp-cut.pcap" in banner and "damaged" in banner

    res = browser.run(index, tmp_path, "--dump-dom")
    dom = browser.parse(res.stdout)
    assert "Partial report" in dom.by_id["damage"]
    assert int(dom.by_id["num-sessions"]) >= 2   # what was read before the damage is kept

    shutil.rmtree(tmp_path / "r")
    res = CliRunner().invoke(cli, ["report", str(cut), str(FIXTURES / "ok.pcap"), "-o", str(tmp_path / "r")])
    assert res.exit_code == 4, res.output
    assert (tmp_path / "r" / "index.html").is_file()


# -- the CLI and the figures ----------------------------------------------------------

def test_cli_report_and_plot(tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["report", str(FIXTURES / "data_timeout.pcap"), "-o", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "data_timeout" in (tmp_path / "r" / "index.html").read_text()
    for kind in ("causes", "replies", "timeline", "latency"):
        out = tmp_path / f"{kind}.png"
        res = runner.invoke(cli, ["plot", kind, str(FIXTURES / "data_timeout.pcap"), "-o", str(out)])
        assert res.exit_code == 0, res.output
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = runner.invoke(cli, ["plot", "causes", str(FIXTURES / "ok.pcap"), "-o", str(tmp_path / "c.svg")])
    assert res.exit_code == 0 and (tmp_path / "c.svg").read_text().lstrip().startswith("<?xml")
    res = runner.invoke(cli, ["plot", "replies", str(FIXTURES / "rejected.pcap"), "-o", str(tmp_path / "r.pdf")])
    assert res.exit_code == 0 and (tmp_path / "r.pdf").read_bytes()[:5] == b"%PDF-"
    assert runner.invoke(cli, ["plot", "pie", str(FIXTURES / "ok.pcap"), "-o", str(tmp_path / "p.png")]).exit_code == 2
    res = runner.invoke(cli, ["plot", "causes", str(FIXTURES / "ok.pcap"), "-o", str(tmp_path / "p.jpg")])
    assert res.exit_code == 1 and ".png, .svg or .pdf" in res.output


def test_plots_on_empty_tables_say_no_data(tshark):
    s = pt.sessions(str(FIXTURES / "ok.pcap"), tshark=tshark).iloc[0:0]
    lat = latencies_from_packets(pd.DataFrame())
    for fig in (plots.causes_plot(s), plots.replies_plot(s), plots.timeline_plot(s), plots.latency_plot(lat)):
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
        assert "no data" in texts
        assert plots.to_bytes(fig)[:4] == b"\x89PNG"


def test_latencies_per_phase(tshark):
    lat = latencies([str(corpus_file("smtp.pcap")), str(FIXTURES / "rejected_data_503.pcap")], tshark=tshark)
    assert str(lat["latency"].dtype) == "timedelta64[ns]"
    counts = lat.groupby(["pcap_file", "phase"], observed=True).size().to_dict()
    # smtp.pcap: two complete sessions; rejected_data_503: DATA answered 503, so no DATA→354
    assert counts[("smtp.pcap", "greeting")] == 2 and counts[("smtp.pcap", "DATA → 354")] == 2
    assert counts[("smtp.pcap", "end-of-data → final reply")] == 2
    assert ("rejected_data_503.pcap", "DATA → 354") not in counts
    assert set(lat.loc[lat["phase"] == "DATA → 354", "reply_code"]) == {354}
    first = lat[(lat["pcap_file"] == "smtp.pcap") & (lat["stream"] == 0) & (lat["phase"] == "greeting")]
    assert abs(first["latency"].iloc[0].total_seconds() - 0.690617) < 1e-3


def test_report_on_empty_tables(tshark, tmp_path):
    s, t = pt.sessions_and_transactions(str(FIXTURES / "ok.pcap"), tshark=tshark)
    index = write_report_from_tables(s.iloc[0:0], t.iloc[0:0], tmp_path / "r")
    html = index.read_text(encoding="utf-8")
    assert "No mail sessions found in these captures." in html and 'id="no-failing"' in html
    assert len(pd.read_csv(tmp_path / "r" / "sessions.csv")) == 0
