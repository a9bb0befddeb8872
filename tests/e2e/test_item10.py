"""Right exit codes and messages: an invalid -Y filter, --run-as a user whose primary group is not
named after it, packets JSON with escape characters, Markdown for notebooks, IMAP quoted user names."""
from __future__ import annotations

import grp
import json
import os
import pwd
import shutil

import pytest
from click.testing import CliRunner

from conftest import FIXTURES

import pyshark_tools as pt
from pyshark_tools.cli import cli
from pyshark_tools.report.markup import markdown_code, markdown_text
from pyshark_tools.tshark.program import Tshark, primary_group

scapy = pytest.importorskip("scapy.all", reason="scapy is in the test extra: pip install -e .[test]")
from test_output_safety import conversation, write  # noqa: E402


@pytest.mark.parametrize("expr,said", [("smtp.req.command ==", "Unexpected end of filter expression"),
                                       ("smtpdiag.nosuchfield == 1", "smtpdiag.nosuchfield"),
                                       ("tcp.port == 25 &&", "filter")])
def test_invalid_display_filter_is_exit_1_with_tshark_message(expr, said):
    res = CliRunner().invoke(cli, ["packets", str(FIXTURES / "ok.pcap"), "-Y", expr])
    assert res.exit_code == 1, res.output
    assert said in res.stderr and "invalid display filter" in res.stderr
    assert "(no rows)" not in res.stdout and res.stderr.strip() != "smtpdiag: error: ^"


def test_valid_display_filters_still_work():
    res = CliRunner().invoke(cli, ["packets", str(FIXTURES / "ok.pcap"), "-Y", "smtpdiag.reply_code == 250",
                                   "-e", "frame.number", "--format", "json"])
    assert res.exit_code == 0 and len(json.loads(res.stdout)) > 0


def _user_without_own_group() -> str:
    for u in pwd.getpwall():
        try:
            grp.getgrnam(u.pw_name)
        except KeyError:
            if u.pw_uid != 0:
                return u.pw_name
    pytest.skip("every user here has a group named after it")


def test_run_as_uses_the_real_primary_group():
    user = _user_without_own_group()
    assert primary_group(user) == str(pwd.getpwnam(user).pw_gid)
    with pytest.raises(pt.TsharkError, match="no such user"):
        primary_group("no-such-user-here")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_run_as_a_user_without_own_group_runs_tshark():
    user = _user_without_own_group()
    ts = Tshark.discover(run_as=user)
    assert "TShark" in ts.version_string


def test_packets_json_neutralises_escape_characters(tmp_path):
    cap = write(tmp_path, "esc.pcap", conversation([("s", b"220 \x1b[31mred \x1b]0;title\x07\r\n"),
                                                     ("c", b"QUIT\r\n"), ("s", b"221 \x1b[2Jbye\r\n")]))
    res = CliRunner().invoke(cli, ["packets", cap, "-Y", "smtp.response", "-e", "frame.number",
                                   "-e", "smtp.rsp.parameter", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert "\\u001b" not in res.stdout and "\\u0007" not in res.stdout and "\x1b" not in res.stdout
    values = [v for r in json.loads(res.stdout) for v in (r["smtp.rsp.parameter"] if
              isinstance(r["smtp.rsp.parameter"], list) else [r["smtp.rsp.parameter"]]) if v]
    assert any("\\x1b[31mred" in v for v in values), values


@pytest.mark.parametrize("hostile", ["![x](http://evil.example/p.png)", "[click](javascript:alert(1))",
                                     "<img src=x onerror=alert(1)>", "**bold** _it_ `code`", "# heading\n- item"])
def test_markdown_text_is_inert(hostile):
    import re

    out = markdown_text(hostile)
    # every character that could open a link, image, emphasis, code span or HTML tag is escaped
    assert not re.search(r"(?<!\\)[\[\]()!*_`<>#-]", out.replace("&lt;", "").replace("&gt;", "")), out
    assert "\n" not in out and "<" not in out
    code = markdown_code(hostile + " `x` ``y``")
    fence = re.match(r"`+", code).group(0)
    assert code.endswith(fence) and "\n" not in code
    assert markdown_code("tempfail") == "`tempfail`"
    assert max(len(r) for r in re.findall(r"`+", code[len(fence):-len(fence)])) < len(fence)


def test_imap_quoted_user_name_with_spaces(tmp_path):
    cap = write(tmp_path, "imapq.pcap", conversation([
        ("s", b"* OK IMAP4rev1 ready\r\n"), ("c", b'a1 LOGIN "John \\"JJ\\" Smith" pw-x\r\n'),
        ("s", b"a1 OK LOGIN completed\r\n"), ("c", b"a2 LOGOUT\r\n"), ("s", b"* BYE\r\na2 OK\r\n")], sport=143))
    df = pt.mailbox_sessions(cap)
    assert df["user"].tolist() == ['John "JJ" Smith']
