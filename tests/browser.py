"""Headless Chromium for the report tests: screenshot, DOM after load, and the page's own network requests.

Chromium runs with every host name mapped to NOTFOUND and a local dead proxy, so nothing can
leave the machine; its net log then says what the page *tried* to fetch. Chromium's own
background requests (update checks, account probes) carry no page origin and are ignored.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Optional

import pytest

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--no-pings", "--disable-domain-reliability",
    "--disable-client-side-phishing-detection", "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
]


def chromium_path() -> str:
    """The Chromium binary; a missing one fails the test unless SMTPDIAG_WITH_BROWSER=0 (as in scripts/setup)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    if os.environ.get("SMTPDIAG_WITH_BROWSER", "1") == "0":
        pytest.skip("chromium not installed (SMTPDIAG_WITH_BROWSER=0)")
    pytest.fail("chromium not found: run scripts/setup (apt-get install chromium)")


def run(page: Path, work: Path, *action: str, netlog: Optional[Path] = None) -> subprocess.CompletedProcess:
    """Open `page` (a file) in a fresh profile under `work` and do `action` (--screenshot=…, --dump-dom)."""
    profile = work / f"profile-{len(list(work.glob('profile-*')))}"
    args = [chromium_path(), *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000", *action]
    if netlog is not None:
        args.append(f"--log-net-log={netlog}")
    args.append(page.resolve().as_uri())
    res = subprocess.run(args, capture_output=True, text=True, timeout=180, cwd=work)
    assert res.returncode == 0, res.stderr[-2000:]
    return res


def page_requests(netlog: Path) -> list[str]:
    """URLs the page itself asked for (requests whose isolation key is the file:// page), from a net log."""
    text = netlog.read_text(encoding="utf-8", errors="replace")
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # not closed cleanly: finish the events array
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    urls = []
    for ev in log["events"]:
        params = ev.get("params") or {}
        if names.get(ev["type"]) != "URL_REQUEST_START_JOB" or "url" not in params:
            continue
        from_page = "file://" in params.get("network_isolation_key", "") or params.get("initiator") not in (None, "not an origin")
        if from_page and not params["url"].startswith(("data:", "file:")):
            urls.append(params["url"])
    return urls


class DomText(HTMLParser):
    """Text by element id, and tables (by id) as lists of rows of cell texts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.by_id: dict[str, str] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self._open: list[tuple[str, Optional[str]]] = []
        self._table: Optional[str] = None
        self._row: Optional[list[str]] = None
        self._cell: Optional[list[str]] = None
        self.imgs: list[dict[str, str]] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "img":
            self.imgs.append(a)
            return
        if tag in ("br", "meta", "link", "input"):
            return
        self._open.append((tag, a.get("id")))
        if a.get("id"):
            self.by_id.setdefault(a["id"], "")
        if tag == "title":
            self._in_title = True
        if tag == "table":
            self._table = a.get("id")
            self.tables[self._table or ""] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table or ""].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i][0] == tag:
                del self._open[i:]
                break

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if self._cell is not None:
            self._cell.append(data)
        for _, ident in self._open:
            if ident:
                self.by_id[ident] += data


def parse(html_text: str) -> DomText:
    p = DomText()
    p.feed(html_text)
    p.close()
    return p
