"""One tshark program: how it is run (as another, unprivileged user if asked), its version, the fields it knows.

Every run gets its own private, empty home and Wireshark configuration folder (0700, owned by the
user tshark runs as, removed afterwards): no personal plugin, preference or profile of whoever
runs the toolkit, nor anything another local user planted in a shared folder, is ever loaded.
"""
from __future__ import annotations

import functools
import hashlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterator, NamedTuple, Optional, Sequence

from ..atomic import write_text
from ..errors import PluginNotLoaded, TsharkError, TsharkNotFound
from ..plugin.file import lua_plugin_path, plugin_version
from . import children
from .fields import (catalogue_file, catalogue_has, keep_catalogue, parse_field_list, read_catalogue,
                     user_cache_dir)
from .find import find_tshark

RUN_AS_ENV = "SMTPDIAG_RUN_AS"
# Where Wireshark looks for personal plugins, preferences and profiles: each points into the run's folder.
PRIVATE_ENV = ("HOME", "WIRESHARK_CONFIG_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME",
               "XDG_STATE_HOME")
# Variables that make Wireshark load plugins or scripts from elsewhere: never passed on.
DROPPED_ENV = ("WIRESHARK_RUN_FROM_BUILD_DIRECTORY", "WIRESHARK_PLUGIN_DIR", "WIRESHARK_EXTCAP_DIR",
               "WIRESHARK_DATA_DIR", "WIRESHARK_APP_DATA_DIR", "LUA_PATH", "LUA_CPATH", "LUA_INIT",
               "LUA_PATH_5_2", "LUA_CPATH_5_2", "LUA_INIT_5_2", "LUA_PATH_5_4", "LUA_CPATH_5_4", "LUA_INIT_5_4")

# What a tshark run as another user keeps of the caller's environment (and LC_*).
KEPT_ENV = ("PATH", "LANG", "LANGUAGE", "TZ")


class RunUser(NamedTuple):
    """Who tshark runs as: user id and primary group id."""
    uid: int
    gid: int


def run_user(name: Optional[str]) -> RunUser:
    """The user a `--run-as` name (or number) stands for; None = whoever runs the toolkit."""
    if not name:
        return RunUser(os.getuid(), os.getgid())
    try:
        pw = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except (KeyError, ValueError):
        raise TsharkError(f"--run-as {name}: no such user") from None
    return RunUser(pw.pw_uid, pw.pw_gid)


def private_dir(user: RunUser, prefix: str = "smtpdiag-") -> str:
    """A new empty folder only `user` can enter (0700, owned by them)."""
    d = tempfile.mkdtemp(prefix=prefix)      # 0700, owned by us
    if (os.getuid(), os.getgid()) != tuple(user):
        try:
            os.chown(d, user.uid, user.gid)
        except PermissionError:
            os.rmdir(d)
            raise TsharkError("--run-as needs root (or CAP_CHOWN and CAP_SETUID)") from None
    return d


@dataclass(frozen=True)
class PrivateRun:
    """One tshark run: its command, its environment (home and configuration folders private and empty), and
    `work`, a folder of its own for what it writes (0700, owned by the user it runs as)."""

    command: list[str]
    env: dict[str, str]
    work: str


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
    @property
    def user(self) -> RunUser:
        """Who tshark runs as."""
        return run_user(self.run_as)

    def command(self, args: Sequence[str]) -> list[str]:
        """The argument list (never a shell string) that runs tshark with `args` (dropping privileges if asked).

        Run it with the environment of `private_run()`, which gives tshark its private folders.
        """
        cmd = [self.path, *args]
        if self.run_as:
            setpriv = shutil.which("setpriv")
            if not setpriv:
                raise TsharkError("--run-as needs setpriv (util-linux)")
            user = self.user
            # The user change clears PR_SET_PDEATHSIG (children.py): setpriv sets it again after.
            death = ["--pdeathsig", "KILL"] if _setpriv_has_pdeathsig(setpriv) else []
            cmd = [setpriv, f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups", *death, *cmd]
        return cmd

    @contextmanager
    def private_run(self, args: Sequence[str]) -> Iterator[PrivateRun]:
        """The command and environment of one tshark run in its own private folder (removed afterwards)."""
        user = self.user
        root = private_dir(user)
        try:
            home, work = os.path.join(root, "home"), os.path.join(root, "work")
            for d in (home, work):
                os.mkdir(d, 0o700)
                if user.uid != os.getuid():
                    os.chown(d, user.uid, user.gid)
            env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV and k not in PRIVATE_ENV
                   and (not self.run_as or k in KEPT_ENV or k.startswith("LC_"))}
            env.update({"HOME": home, "WIRESHARK_CONFIG_DIR": os.path.join(home, "config"),
                        "XDG_CONFIG_HOME": os.path.join(home, "config"), "XDG_DATA_HOME": os.path.join(home, "data"),
                        "XDG_CACHE_HOME": os.path.join(home, "cache"), "XDG_STATE_HOME": os.path.join(home, "state"),
                        "TMPDIR": work})
            yield PrivateRun(self.command(args), env, work)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def run(self, args: Sequence[str], timeout: Optional[float] = 120) -> subprocess.CompletedProcess:
        """Run tshark in a private folder; its output captured."""
        with self.private_run(args) as pr:
            try:
                return children.run(pr.command, env=pr.env, capture_output=True, timeout=timeout)
            except FileNotFoundError as e:
                raise TsharkNotFound(f"cannot run tshark at {self.path}: {e.strerror}") from None

    def run_as_user_would(self, args: Sequence[str], timeout: Optional[float] = 120) -> subprocess.CompletedProcess:
        """Run tshark with the caller's own home and configuration: what Wireshark would load for them."""
        try:
            return children.run([self.path, *args], capture_output=True, timeout=timeout)
        except FileNotFoundError as e:
            raise TsharkNotFound(f"cannot run tshark at {self.path}: {e.strerror}") from None

    def lua_args(self) -> list[str]:
        """The options that load the plugin."""
        return ["-X", f"lua_script:{self.lua or lua_plugin_path()}"]

    # -- identity ------------------------------------------------------------
    @cached_property
    def version_string(self) -> str:
        """tshark's first --version line; kept on disk per binary (path, inode, size, time), as a run's
        start would otherwise wait for it."""
        kept = version_file(self.path)
        try:
            first = kept.read_text().strip() if kept else ""
        except OSError:
            first = ""
        if first.startswith("TShark"):
            return first
        out = self.run(["--version"]).stdout.decode("utf-8", "replace")
        first = out.splitlines()[0] if out else ""
        if "TShark" not in first:
            raise TsharkError(f"{self.path} does not look like tshark: {first[:80]!r}")
        if kept:
            try:
                kept.parent.mkdir(parents=True, exist_ok=True)
                write_text(kept, first + "\n", durable=False)
            except OSError:
                pass
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
        key = self._catalogue_key(with_plugin)
        if key not in self._fields_cache:
            lua = (self.lua or lua_plugin_path()) if with_plugin else None
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

    def _catalogue_key(self, with_plugin: bool) -> tuple[str, str, str]:
        lua = (self.lua or lua_plugin_path()) if with_plugin else None
        return (".".join(map(str, self.version)), self.run_as or "", plugin_version(lua) if lua else "none")

    def has_field(self, name: str, with_plugin: bool = True) -> bool:
        """Whether tshark knows the field; a kept catalogue is searched, not parsed (a run's start pays it)."""
        key = self._catalogue_key(with_plugin)
        if key not in self._fields_cache:
            kept = catalogue_has(catalogue_file(key, self.path), name)
            if kept:
                return True
        return name in self.field_types(with_plugin)

    def check_plugin(self) -> None:
        """Fail loudly unless the smtpdiag plugin loads in this tshark."""
        if self.has_field("smtpdiag.failure_cause"):
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


def version_file(path: str) -> Optional[Path]:
    """Where the version of the tshark binary at `path` is kept (None when it cannot be looked at)."""
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return None
    ident = f"{real}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}".encode()
    return user_cache_dir() / f"version-{hashlib.sha256(ident).hexdigest()[:16]}.txt"


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
