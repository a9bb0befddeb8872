"""`smtpdiag doctor`: is tshark there, which version, does the plugin load, which ports are decoded, which
other copies of the plugin Wireshark itself would load."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, NamedTuple, Optional

from .errors import SmtpdiagError
from .plugin.file import PLUGIN_FILE, lua_plugin_path, plugin_build, plugin_version
from .tables.schema import SUMMARY_FIELDS
from .tshark.program import Tshark

Check = tuple[str, Optional[bool], str]      # passed: True, False, or None for a warning

# `tshark -G folders` lines naming where Wireshark looks for Lua plugins.
LUA_FOLDERS = ("Personal Lua Plugins", "Global Lua Plugins")


class InstalledPlugin(NamedTuple):
    """A smtpdiag.lua that Wireshark, run by this user, would load."""
    path: Path
    where: str          # "personal" or "global"
    version: str        # version+content hash
    build: str


def installed_plugins(ts: Tshark) -> list[InstalledPlugin]:
    """Every smtpdiag.lua in the Lua plugin folders Wireshark uses for the user running this (and its
    subfolders, which Wireshark also loads), plus any other such file `tshark -G plugins` names."""
    folders = ts.run_as_user_would(["-G", "folders"]).stdout.decode("utf-8", "replace").splitlines()
    found: dict[Path, str] = {}
    for line in folders:
        name, _, value = line.partition(":")
        if name.strip() in LUA_FOLDERS and Path(value.strip()).is_dir():
            where = name.split()[0].lower()
            for f in sorted(Path(value.strip()).rglob(PLUGIN_FILE)):
                found.setdefault(f, where)
    for line in ts.run_as_user_would(["-G", "plugins"]).stdout.decode("utf-8", "replace").splitlines():
        cells = line.split("\t")
        if len(cells) >= 4 and Path(cells[-1].strip()).name == PLUGIN_FILE:
            found.setdefault(Path(cells[-1].strip()), "loaded")
    out = []
    for f, where in found.items():
        try:
            out.append(InstalledPlugin(f, where, plugin_version(f), plugin_build(f)))
        except OSError:
            continue
    return out


def installed_checks(ts: Tshark, package_plugin: Path) -> Iterator[Check]:
    """One line per installed copy: the same as the package's, or a warning saying how to update it."""
    ours = plugin_version(package_plugin)
    copies = installed_plugins(ts)
    if not copies:
        yield ("installed plugin", True, "no smtpdiag.lua in Wireshark's plugin folders (the toolkit needs none; "
               "`smtpdiag lua install` adds it for the GUI)")
    for c in copies:
        same = c.version == ours
        text = f"{c.where} {c.path} (version {c.version}, build {c.build})"
        if not same:
            text += (f" differs from the package's {ours}: Wireshark loads that copy, the toolkit does not; "
                     "`smtpdiag lua install` updates it" if c.where != "global" else
                     f" differs from the package's {ours}: Wireshark loads that copy, and the toolkit's runs fail "
                     "while it is there; update or remove it")
        yield ("installed plugin", True if same else None, text)


def run_checks(tshark_path: Optional[str] = None, run_as: Optional[str] = None) -> Iterator[Check]:
    """Yield (check, passed, one-line explanation); stops early when later checks cannot run."""
    try:
        ts = Tshark.discover(tshark_path, run_as=run_as)
    except SmtpdiagError as e:
        yield ("tshark", False, str(e))
        return
    yield ("tshark", True, ts.path + (f" (run as {run_as})" if run_as else ""))
    try:
        yield ("version", True, ts.version_string)
    except SmtpdiagError as e:
        yield ("version", False, str(e))
        return
    verbose = ts.run(["-v"]).stdout.decode(errors="replace")
    has_lua = "with Lua" in verbose
    yield ("lua support", has_lua, "built with Lua" if has_lua else "this tshark was built without Lua")
    try:
        plugin = lua_plugin_path()
        yield ("plugin file", True, f"{plugin} (version {plugin_version(plugin)})")
    except SmtpdiagError as e:
        yield ("plugin file", False, str(e))
        return
    yield from installed_checks(ts, plugin)
    if ts.skips_lua:
        yield ("privileges", False, "running as root: tshark 4.4+ skips Lua plugins; use --run-as nobody")
    try:
        ts.check_plugin()
        yield ("plugin loads", True, "smtpdiag fields registered")
    except SmtpdiagError as e:
        yield ("plugin loads", False, str(e))
        return
    missing = [f for f in SUMMARY_FIELDS if f not in ts.fields()]
    yield ("fields", not missing, "all table fields present" if not missing else "missing: " + ", ".join(missing))
    decodes = ts.run(["-G", "decodes"]).stdout.decode(errors="replace").splitlines()
    ports = sorted({f"{parts[0].split('.')[0]}/{parts[1]}={parts[2]}" for parts in (l.split("\t") for l in decodes)
                    if len(parts) == 3 and parts[2] in ("smtp", "pop", "imap") and parts[0] in ("tcp.port", "tls.port")})
    yield ("decoded ports", True, ", ".join(ports) + "; the plugin also diagnoses 2525 and any port whose "
           "server greets with '220 ... SMTP'")
