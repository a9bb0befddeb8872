"""One tshark program: how it is run (as another, unprivileged user if asked), its version, the fields it knows."""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Optional, Sequence

from ..errors import PluginNotLoaded, TsharkError, TsharkNotFound
from ..plugin.file import lua_plugin_path, plugin_version
from . import children
from .fields import catalogue_file, keep_catalogue, parse_field_list, read_catalogue
from .find import find_tshark

RUN_AS_ENV = "SMTPDIAG_RUN_AS"


@dataclass
class Tshark:
    """One tshark executable, optionally run as another (unprivileged) user."""

    path: str
    run_as: Optional[str] = None
    lua: Optional[Path] = None
    _fields_cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def discover(cls, explicit: Optional[str] = None, run_as: Optional[str] = None) -> "Tshark":
        return cls(find_tshark(explicit), run_as=run_as or os.environ.get(RUN_AS_ENV) or None)

    # -- running -------------------------------------------------------------
    def command(self, args: Sequence[str]) -> list[str]:
        """The argument list (never a shell string) that runs tshark with `args`."""
        cmd = [self.path, *args]
        if self.run_as:
            setpriv = shutil.which("setpriv")
            if not setpriv:
                raise TsharkError("--run-as needs setpriv (util-linux)")
            home = tempfile.gettempdir()
            group = primary_group(self.run_as)
            # The user change clears PR_SET_PDEATHSIG (children.py): setpriv sets it again after.
            death = ["--pdeathsig", "KILL"] if _setpriv_has_pdeathsig(setpriv) else []
            cmd = [setpriv, f"--reuid={self.run_as}", f"--regid={group}", "--clear-groups", *death,
                   "env", f"HOME={home}", *cmd]
        return cmd

    def run(self, args: Sequence[str], timeout: Optional[float] = 120) -> subprocess.CompletedProcess:
        try:
            return children.run(self.command(args), capture_output=True, timeout=timeout)
        except FileNotFoundError as e:
            raise TsharkNotFound(f"cannot run tshark at {self.path}: {e.strerror}") from None

    def lua_args(self) -> list[str]:
        """The options that load the plugin."""
        return ["-X", f"lua_script:{self.lua or lua_plugin_path()}"]

    # -- identity ------------------------------------------------------------
    @cached_property
    def version_string(self) -> str:
        out = self.run(["--version"]).stdout.decode("utf-8", "replace")
        first = out.splitlines()[0] if out else ""
        if "TShark" not in first:
            raise TsharkError(f"{self.path} does not look like tshark: {first[:80]!r}")
        return first

    @cached_property
    def version(self) -> tuple[int, int, int]:
        m = re.search(r"(\d+)\.(\d+)\.(\d+)", self.version_string)
        if not m:
            raise TsharkError(f"cannot read tshark's version from {self.version_string!r}")
        return tuple(int(x) for x in m.groups())  # type: ignore[return-value]

    @property
    def is_root(self) -> bool:
        return hasattr(os, "geteuid") and os.geteuid() == 0 and self.run_as in (None, "root")

    @property
    def skips_lua(self) -> bool:
        """tshark 4.4 and newer, run as root, skip Lua plugins without a word."""
        return self.is_root and self.version >= (4, 4, 0)

    # -- fields --------------------------------------------------------------
    def fields(self, with_plugin: bool = True) -> frozenset[str]:
        """Every display-filter field name tshark knows (with the plugin's), cached per version."""
        return frozenset(self.field_types(with_plugin))

    def field_types(self, with_plugin: bool = True) -> dict[str, str]:
        """Field name → tshark type (FT_UINT32, FT_STRING, ...; protocols are 'FT_PROTOCOL')."""
        lua = (self.lua or lua_plugin_path()) if with_plugin else None
        key = (".".join(map(str, self.version)), self.run_as or "",
               plugin_version(lua) if lua else "none")
        if key not in self._fields_cache:
            kept = catalogue_file(key, self.path)
            types = read_catalogue(kept)
            if types is None:
                res = self.run(["-G", "fields"] + (["-X", f"lua_script:{lua}"] if lua else []))
                types = parse_field_list(res.stdout.decode("utf-8", "replace"))
                if not types:
                    raise TsharkError(f"tshark -G fields listed nothing: {last_line(res.stderr)}")
                keep_catalogue(kept, types)
            self._fields_cache[key] = types
        return self._fields_cache[key]

    def check_plugin(self) -> None:
        """Fail loudly unless the smtpdiag plugin loads in this tshark."""
        if "smtpdiag.failure_cause" in self.fields(with_plugin=True):
            return
        if self.skips_lua:
            raise PluginNotLoaded(
                f"tshark {'.'.join(map(str, self.version))} run as root skips Lua scripts, so the smtpdiag "
                "plugin did not load; run as an ordinary user or pass --run-as nobody"
            )
        raise PluginNotLoaded(
            f"the smtpdiag Lua plugin did not load in {self.version_string} "
            f"(-X lua_script:{self.lua or lua_plugin_path()}); run `smtpdiag doctor`"
        )

    def check_display_filter(self, expr: str) -> None:
        """Raise a one-line error quoting tshark when `expr` is not a valid display filter (plugin loaded).

        tshark compiles the filter before it opens the capture, so a capture that does not exist
        tells a good filter (its "doesn't exist" message) from a bad one.
        """
        probe = os.path.join(tempfile.gettempdir(), f"smtpdiag-no-such-file-{os.getpid()}.pcap")
        res = self.run(["-n", *self.lua_args(), "-Y", expr, "-r", probe])
        err = res.stderr.decode("utf-8", "replace")
        if probe in err or res.returncode == 0:
            return
        said = [l.strip() for l in err.splitlines() if l.strip().startswith("tshark:")]
        why = said[0].removeprefix("tshark:").strip() if said else last_line(err)
        raise TsharkError(f"invalid display filter {expr!r}: {why}")

    def check_fields(self, names: Sequence[str]) -> None:
        """Raise a clear error naming the fields this tshark does not have."""
        known = self.fields(with_plugin=True)
        missing = [n for n in names if n not in known]
        if missing:
            raise TsharkError(
                f"tshark {'.'.join(map(str, self.version))} has no field(s) {', '.join(missing)}"
            )


def primary_group(user: str) -> str:
    """The user's real primary group id (not a group named after the user, which may not exist)."""
    import pwd

    try:
        entry = pwd.getpwnam(user) if not user.isdigit() else pwd.getpwuid(int(user))
    except KeyError:
        raise TsharkError(f"--run-as {user}: no such user") from None
    return str(entry.pw_gid)


@functools.lru_cache(maxsize=None)
def _setpriv_has_pdeathsig(setpriv: str) -> bool:
    try:
        out = subprocess.run([setpriv, "--help"], capture_output=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return b"--pdeathsig" in out


def last_line(stderr: bytes | str) -> str:
    """tshark's last meaningful stderr line (its 'Running as root' banner skipped)."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.startswith("Running as user")]
    return lines[-1] if lines else ""
