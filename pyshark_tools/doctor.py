"""`smtpdiag doctor`: is tshark there, which version, does the plugin load, which ports are decoded."""
from __future__ import annotations

from typing import Iterator, Optional

from .errors import SmtpdiagError
from .plugin.file import lua_plugin_path, plugin_version
from .tables.schema import SUMMARY_FIELDS
from .tshark.program import Tshark

Check = tuple[str, bool, str]


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
