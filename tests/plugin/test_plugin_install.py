"""pyshark_tools/plugin/install.py and the `smtpdiag` Wireshark profile, checked against real tshark builds.

tshark 4.0 (PATH) runs as root as the user would; 4.4/4.6 (.tshark-releases, as the matrix tests; skipped
when absent, which fails the run when scripts/test fetched them as root: conftest.py) skip Lua as root, so
they run as nobody over a world-readable temporary tree.
"""
from __future__ import annotations

import csv
import io
import os
import re
import shutil
import stat
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Iterator

import pytest

from conftest import RELEASE_VERSIONS, release_tshark
from pyshark_tools.plugin.install import (install_plugin, install_profile, personal_config_dir,
                                          personal_plugins_dir, personal_profiles_dir, profile_source_dir)

ROOT = Path(__file__).resolve().parents[2]
LUA = ROOT / "lua" / "smtpdiag.lua"
PROFILE = ROOT / "lua" / "profile" / "smtpdiag"
SMTP_PCAP = Path("/work/shared/corpus/zeek/smtp.pcap")
FIXTURES = ROOT / "fixtures" / "captures"

TSHARKS = {"4.0": shutil.which("tshark"), **{v: str(release_tshark(v)) for v in RELEASE_VERSIONS}}
AS_ROOT = {"4.0"}  # 4.4+ skip Lua scripts when run as root


# -- pure path functions ---------------------------------------------------------

@pytest.mark.parametrize("system, env, config, plugins", [
    ("Linux", {"HOME": "/home/ann"}, "/home/ann/.config/wireshark", "/home/ann/.local/lib/wireshark/plugins"),
    ("Linux", {"HOME": "/home/ann", "XDG_CONFIG_HOME": "/cfg"}, "/cfg/wireshark",
     "/home/ann/.local/lib/wireshark/plugins"),
    ("Darwin", {"HOME": "/Users/ann"}, "/Users/ann/.config/wireshark", "/Users/ann/.local/lib/wireshark/plugins"),
    ("Linux", {"HOME": "/home/ann", "WIRESHARK_CONFIG_DIR": "/srv/ws"}, "/srv/ws",
     "/home/ann/.local/lib/wireshark/plugins"),
])
def test_unix_paths(system: str, env: dict, config: str, plugins: str) -> None:
    assert PurePosixPath(personal_config_dir(system, env)) == PurePosixPath(config)
    assert PurePosixPath(personal_plugins_dir(system, env)) == PurePosixPath(plugins)
    assert PurePosixPath(personal_profiles_dir(system, env)) == PurePosixPath(config) / "profiles"


@pytest.mark.parametrize("env, config", [
    ({"APPDATA": r"C:\Users\ann\AppData\Roaming"}, r"C:\Users\ann\AppData\Roaming\Wireshark"),
    ({"USERPROFILE": r"C:\Users\ann"}, r"C:\Users\ann\AppData\Roaming\Wireshark"),
    ({"APPDATA": r"C:\x", "WIRESHARK_CONFIG_DIR": r"D:\ws"}, r"D:\ws"),
])
def test_windows_paths(env: dict, config: str) -> None:
    assert personal_config_dir("Windows", env) == PureWindowsPath(config)
    assert personal_plugins_dir("Windows", env) == PureWindowsPath(config, "plugins")
    assert personal_profiles_dir("Windows", env) == PureWindowsPath(config, "profiles")
    assert isinstance(personal_config_dir("Windows", env), PureWindowsPath)


def test_running_os_gets_concrete_paths() -> None:
    assert isinstance(personal_config_dir(), Path)
    assert isinstance(personal_plugins_dir(), Path)
    assert isinstance(personal_profiles_dir(), Path)


def test_legacy_dot_wireshark_wins_only_without_xdg_folder(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    (tmp_path / ".wireshark").mkdir()
    assert personal_config_dir("Linux", env) == tmp_path / ".wireshark"
    (tmp_path / ".config" / "wireshark").mkdir(parents=True)
    assert personal_config_dir("Linux", env) == tmp_path / ".config" / "wireshark"


# -- installing ------------------------------------------------------------------------

def test_install_plugin_copies(tmp_path: Path) -> None:
    dest = tmp_path / "a" / "plugins"
    out = install_plugin(dest)
    assert out == dest / "smtpdiag.lua" and not out.is_symlink()
    assert out.read_bytes() == LUA.read_bytes()
    assert install_plugin(dest) == out  # idempotent


def test_install_plugin_symlink_then_copy_keeps_source(tmp_path: Path) -> None:
    before = LUA.read_bytes()
    out = install_plugin(tmp_path, symlink=True)
    assert out.is_symlink() and out.resolve() == LUA.resolve()
    assert install_plugin(tmp_path, symlink=True).is_symlink()  # replacing an existing link
    out = install_plugin(tmp_path)  # a copy over the link must not write through it
    assert not out.is_symlink() and out.read_bytes() == before
    assert LUA.read_bytes() == before


def test_install_plugin_defaults_to_personal_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert install_plugin() == tmp_path / ".local/lib/wireshark/plugins/smtpdiag.lua"


def test_install_profile(tmp_path: Path) -> None:
    out = install_profile(tmp_path)
    assert out == tmp_path / "smtpdiag"
    for name in ("preferences", "colorfilters", "dfilter_buttons"):
        assert (out / name).read_bytes() == (PROFILE / name).read_bytes()
    (out / "recent").write_text("# the user's window\ngui.geometry_main_width: 1400\n"
                                "column.width:\n        %m, -1,\n        %i, -1\n\ngui.toolbar_main_show: TRUE\n")
    (out / "preferences").write_text("stale\n")
    install_profile(tmp_path)
    recent = (out / "recent").read_text()
    # the user's other settings stay; the column widths are the profile's (Cause and Detail wide enough)
    assert "gui.geometry_main_width: 1400" in recent and "gui.toolbar_main_show: TRUE" in recent
    assert recent.count("column.width:") == 1 and "%m, -1" not in recent
    widths = dict(re.findall(r'^\s+"?(%[^",]+)"?, (-?\d+),?$', recent, re.M))
    assert int(widths["%Cus:smtpdiag.failure_cause"]) >= 150 and int(widths["%Cus:smtpdiag.detail"]) >= 400
    # every column of the profile's format has a width
    columns = re.findall(r'^\s+"[^"]*", "([^"]+)"', (PROFILE / "preferences").read_text(), re.M)
    assert {c.rsplit(":", 2)[0] if c.startswith("%Cus") else c for c in columns} == set(widths)
    assert (out / "preferences").read_bytes() == (PROFILE / "preferences").read_bytes()


def test_install_profile_defaults_to_personal_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WIRESHARK_CONFIG_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no legacy ~/.wireshark of the real user can win
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert install_profile() == tmp_path / "cfg/wireshark/profiles/smtpdiag"
    assert profile_source_dir() == PROFILE.resolve()


# -- the profile files ---------------------------------------------------------------------

RULE = re.compile(r"^(!?)@([^@]+)@(.+)@\[(\d+),(\d+),(\d+)\]\[(\d+),(\d+),(\d+)\]$")


def color_rules() -> dict[str, tuple[str, str, str]]:
    """colorfilters → {name: (filter, background #rrggbb, foreground #rrggbb)} as tshark's PSML prints them."""
    rules = {}
    for line in (PROFILE / "colorfilters").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = RULE.match(line)
        assert m, f"not a coloring rule: {line!r}"
        vals = [int(v) for v in m.groups()[3:]]
        assert all(0 <= v <= 65535 for v in vals), line
        hexes = ["#" + "".join(f"{v >> 8:02x}" for v in vals[i:i + 3]) for i in (0, 3)]
        rules[m.group(2)] = (m.group(3), hexes[0], hexes[1])
    return rules


def buttons() -> list[list[str]]:
    rows = []
    for line in (PROFILE / "dfilter_buttons").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            row = next(csv.reader(io.StringIO(line)))
            assert len(row) == 4 and row[0] in ("TRUE", "FALSE") and all(row), line
            rows.append([c.replace("\\x22", '"') for c in row])
    return rows


def expert_codes() -> dict[str, str]:
    """Every diagnosis code of the plugin → 'ERROR' or 'WARN' (from its expert list, fields.EXPERT_SPEC)."""
    src = (ROOT / "lua" / "smtpdiag" / "fields.lua").read_text()
    return dict(re.findall(r'^\s+\{ "(\w+)", "\w+", "(\w+)", "', src, re.M))


def test_profile_files_parse() -> None:
    rules = color_rules()
    assert list(rules)[:3] == ["smtpdiag: smuggling suspect", "smtpdiag: failure evidence", "smtpdiag: warning evidence"]
    labels = [b[1] for b in buttons()]
    assert {"Failing", "DATA not terminated", "Smuggling"} <= set(labels)
    prefs = (PROFILE / "preferences").read_text()
    for title, fmt in [("No.", "%m"), ("Time", "%t"), ("Source", "%s"), ("Destination", "%d"),
                       ("Protocol", "%p"), ("Cause", "%Cus:smtpdiag.failure_cause:0:R"),
                       ("Data end", "%Cus:smtp.data_terminated:0:R"), ("Command", "%Cus:smtpdiag.command:0:R"),
                       ("Reply", "%Cus:smtpdiag.reply_code:0:R"), ("Detail", "%Cus:smtpdiag.detail:0:R"),
                       ("Info", "%i")]:
        assert f'"{title}", "{fmt}"' in prefs


def test_evidence_rules_cover_every_code() -> None:
    codes = expert_codes()
    assert len(codes) >= 20
    rules = color_rules()
    for code, severity in codes.items():
        rule = "smtpdiag: failure evidence" if severity == "ERROR" else "smtpdiag: warning evidence"
        assert re.search(rf"\bsmtpdiag\.expert\.{code}\b", rules[rule][0]), (code, rule)
    evidence = {b[1]: b[2] for b in buttons()}["Evidence"]
    assert set(re.findall(r"smtpdiag\.expert\.(\w+)", evidence)) == set(codes)


# -- real tshark -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world_tmp() -> Iterator[Path]:
    """A temporary tree that user nobody can read (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="smtpdiag-profile-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def open_up(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if p.is_dir() else 0))


class Runner:
    """Runs one tshark build with a private HOME / XDG_CONFIG_HOME (as nobody for 4.4+)."""

    def __init__(self, version: str, home: Path) -> None:
        self.version, self.home = version, home
        self.env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / "xdg")}

    def __call__(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [TSHARKS[self.version], *args]
        env = {k: v for k, v in os.environ.items() if k not in ("WIRESHARK_CONFIG_DIR", "SMTPDIAG_LUA")}
        env.update(self.env)
        if self.version not in AS_ROOT and os.geteuid() == 0:
            cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "env",
                   *(f"{k}={v}" for k, v in self.env.items()), *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)

    def psml(self, *args: str) -> tuple[list[dict[str, str]], list[dict[str, str]], str]:
        """Run with -T psml: (rows by column title, <packet> colour attributes, stderr)."""
        res = self(*args, "-T", "psml")
        assert res.returncode == 0, res.stderr
        root = ET.fromstring(res.stdout)
        titles = [s.text or "" for s in root.find("structure")]
        rows = [dict(zip(titles, (s.text or "" for s in pkt))) for pkt in root.findall("packet")]
        return rows, [dict(p.attrib) for p in root.findall("packet")], res.stderr


PROFILE_ERRORS = re.compile(r"Could not compile|colorfilters|Error loading table|No such preference|preferences"
                            r"|profile|Lua: Error|lua_script", re.I)


@pytest.fixture(scope="module", params=[v if v in AS_ROOT else pytest.param(v, marks=pytest.mark.matrix)
                                        for v in sorted(TSHARKS)])
def runner(request: pytest.FixtureRequest, world_tmp: Path) -> Runner:
    version = request.param
    exe = TSHARKS[version]
    if not exe or not os.access(exe, os.X_OK):
        pytest.skip(f"tshark {version} not installed")
    if version not in AS_ROOT and os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("needs setpriv to run tshark 4.4+ as nobody")
    home = world_tmp / version
    home.mkdir()
    r = Runner(version, home)
    # The real install: the package's functions put plugin and profile where this tshark looks.
    install_plugin(Path(personal_plugins_dir("Linux", r.env)))
    install_profile(Path(personal_profiles_dir("Linux", r.env)))
    open_up(world_tmp)
    return r


def test_paths_match_tshark_folders(runner: Runner, world_tmp: Path) -> None:
    out = runner("-G", "folders").stdout
    folders = dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)
    assert Path(folders["Personal configuration"].strip()) == personal_config_dir("Linux", runner.env)
    assert Path(folders["Personal Lua Plugins"].strip()) == personal_plugins_dir("Linux", runner.env)


def test_legacy_config_folder_matches_tshark(runner: Runner, world_tmp: Path) -> None:
    home = world_tmp / f"legacy-{runner.version}"
    (home / ".wireshark").mkdir(parents=True)
    open_up(home)
    r = Runner(runner.version, home)
    out = r("-G", "folders").stdout
    assert f"Personal configuration:\t{home / '.wireshark'}" in out
    assert personal_config_dir("Linux", r.env) == home / ".wireshark"


def test_installed_plugin_and_profile_show_columns(runner: Runner) -> None:
    """No -X: the plugin comes from the personal plugins folder, the columns from -C smtpdiag."""
    rows, _, err = runner.psml("-n", "-2", "-Y", "tcp", "-C", "smtpdiag", "-r", str(SMTP_PCAP))
    assert not PROFILE_ERRORS.search(err), err
    assert list(rows[0])[:5] == ["No.", "Time", "Source", "Destination", "Protocol"]
    assert {"Cause", "Data end", "Command", "Reply", "Detail", "Info"} <= set(rows[0])
    mail = [r for r in rows if r["Cause"]]  # smtp.pcap also holds web and chat streams: no diagnosis there
    assert len(mail) > 30 and {r["Cause"] for r in mail} == {"ok"}
    assert all(r["Cause"] for r in rows if r["Protocol"] in ("SMTP", "IMF"))
    assert {r["Data end"] for r in mail} <= {"True", "1"}
    assert {"EHLO", "MAIL", "RCPT", "DATA", "QUIT"} <= {r["Command"] for r in mail}
    assert {"220", "250", "354", "221"} <= {r["Reply"] for r in mail}
    assert all(r["Detail"] for r in mail)


def test_documented_command_prints_cause(runner: Runner, world_tmp: Path) -> None:
    """The README's command: profile installed, plugin given with -X (no personal plugin: no double load)."""
    home = world_tmp / f"x-{runner.version}"
    r = Runner(runner.version, home)
    install_profile(Path(personal_profiles_dir("Linux", r.env)))
    open_up(home)
    res = r("-n", "-2", "-Y", "tcp", "-C", "smtpdiag", "-r", str(SMTP_PCAP), "-X", f"lua_script:{LUA}")
    assert res.returncode == 0 and not PROFILE_ERRORS.search(res.stderr), res.stderr
    lines = [line for line in res.stdout.splitlines() if re.search(r" (SMTP|IMF) ", line)]
    assert len(lines) > 10 and all(re.search(r" ok (True|1) ", line) for line in lines), lines[:3]
    assert any(" EHLO " in line for line in lines)


def check_colours(runner: Runner, capture: Path, cause: str, expect: dict[str, str]) -> None:
    rows, attrs, err = runner.psml("-n", "-2", "-Y", "tcp", "-C", "smtpdiag", "--color", "-r", str(capture))
    assert not PROFILE_ERRORS.search(err), err
    assert {r["Cause"] for r in rows} == {cause}
    rules = color_rules()
    seen = {(a.get("background"), a.get("foreground")) for a in attrs}
    for rule, why in expect.items():
        _, bg, fg = rules[rule]
        assert (bg, fg) in seen, f"{capture.name}: no frame coloured by {rule!r} ({why}); saw {seen}"


@pytest.mark.parametrize("capture, cause, expect", [
    ("tempfail.pcap", "tempfail", {"smtpdiag: warning evidence": "the 450 reply",
                                   "smtpdiag: tempfail": "the rest of the session"}),
    ("data_not_terminated.pcap", "data_not_terminated", {"smtpdiag: failure evidence": "the frame proving it",
                                                         "smtpdiag: data_not_terminated": "the rest"}),
    ("smuggling_attempt.pcap", "smuggling_attempt", {"smtpdiag: smuggling suspect": "<LF>.<LF> frame",
                                                     "smtpdiag: smuggling session": "the rest"}),
])
def test_colour_rules_apply(runner: Runner, capture: str, cause: str, expect: dict[str, str]) -> None:
    path = FIXTURES / capture
    if not path.is_file():
        pytest.skip(f"fixture {capture} missing")
    check_colours(runner, path, cause, expect)


def test_clean_session_colour(runner: Runner) -> None:
    rows, attrs, err = runner.psml("-n", "-2", "-Y", "tcp", "-C", "smtpdiag", "--color", "-r", str(SMTP_PCAP))
    assert not PROFILE_ERRORS.search(err), err
    colours = {name: (bg, fg) for name, (_, bg, fg) in color_rules().items()}
    seen = [(a["background"], a["foreground"]) for r, a in zip(rows, attrs) if r["Cause"] == "ok"]
    assert seen.count(colours["smtpdiag: clean session"]) > 20
    # Generic TCP/ICMP trouble (a window-full retransmission, ICMP fragmentation needed) keeps its own colour.
    allowed = {colours[n] for n in ("smtpdiag: clean session", "Bad TCP", "TCP RST", "ICMP errors")}
    assert set(seen) <= allowed


def test_filter_buttons_compile_and_select(runner: Runner) -> None:
    filters = {b[1]: b[2] for b in buttons()}
    anyone = " || ".join(f"({f})" for f in filters.values())
    res = runner("-n", "-2", "-Y", anyone, "-r", str(SMTP_PCAP))
    assert res.returncode == 0, res.stderr
    def count(label: str, capture: Path) -> int:
        res = runner("-n", "-2", "-Y", filters[label], "-r", str(capture))
        assert res.returncode == 0, res.stderr
        return len(res.stdout.splitlines())
    assert count("Failing", SMTP_PCAP) == 0
    assert count("DATA not terminated", SMTP_PCAP) == 0
    if (FIXTURES / "data_not_terminated.pcap").is_file():
        assert count("DATA not terminated", FIXTURES / "data_not_terminated.pcap") > 0
    if (FIXTURES / "smuggling_attempt.pcap").is_file():
        assert count("Smuggling", FIXTURES / "smuggling_attempt.pcap") > 0


# -- docs/wireshark.md stays true -----------------------------------------------------------

DOC = ROOT / "docs" / "wireshark.md"


def doc_section(number: int) -> str:
    text = DOC.read_text()
    return text.split(f"\n## {number}.", 1)[1].split("\n## ", 1)[0]


def test_doc_explains_every_cause_code() -> None:
    explained = set(re.findall(r"^\| `(\w+)` \|", doc_section(5), re.M))
    assert set(expert_codes()) | {"ok"} <= explained


def test_doc_filters_compile(runner: Runner) -> None:
    filters = [f.replace("\\|", "|") for f in re.findall(r"^\| `((?:[^`])+)` \|", doc_section(4), re.M)]
    assert len(filters) >= 8
    for f in filters:
        res = runner("-n", "-2", "-Y", f, "-r", str(SMTP_PCAP))
        assert res.returncode == 0 and "not a valid" not in res.stderr, (f, res.stderr)
