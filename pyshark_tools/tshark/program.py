"""Find, identify and run tshark: discovery, version, field checks, privilege handling, streaming."""
from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterator, Optional, Sequence

from .errors import PluginNotLoaded, TsharkError, TsharkNotFound

TSHARK_ENV = "SMTPDIAG_TSHARK"
RUN_AS_ENV = "SMTPDIAG_RUN_AS"

_WINDOWS_PATHS = [
    r"C:\Program Files\Wireshark\tshark.exe",
    r"C:\Program Files (x86)\Wireshark\tshark.exe",
]
_MACOS_PATHS = [
    "/Applications/Wireshark.app/Contents/MacOS/tshark",
    "/opt/homebrew/bin/tshark",
    "/usr/local/bin/tshark",
]


def find_tshark(explicit: Optional[str] = None) -> str:
    """Return the tshark executable: `explicit`, $SMTPDIAG_TSHARK, PATH, then the usual install paths."""
    candidates: list[str] = []
    if explicit:
        candidates.append(explicit)
    elif os.environ.get(TSHARK_ENV):
        candidates.append(os.environ[TSHARK_ENV])
    else:
        found = shutil.which("tshark")
        if found:
            return found
        system = platform.system()
        candidates += _WINDOWS_PATHS if system == "Windows" else _MACOS_PATHS if system == "Darwin" else []
    for c in candidates:
        resolved = shutil.which(c) if os.sep not in c and "/" not in c else c
        if resolved and os.path.isfile(resolved) and os.access(resolved, os.X_OK):
            return resolved
    where = candidates[0] if candidates else "PATH"
    raise TsharkNotFound(
        f"tshark not found ({where}); install Wireshark's tshark (Debian/Ubuntu: apt-get install tshark) "
        f"or point --tshark / ${TSHARK_ENV} at it"
    )


def lua_plugin_path() -> Path:
    """The smtpdiag Lua plugin shipped with this package (or $SMTPDIAG_LUA)."""
    env = os.environ.get("SMTPDIAG_LUA")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for p in (here / "lua" / "smtpdiag.lua", here.parent / "lua" / "smtpdiag.lua"):
        if p.is_file():
            return p
    raise PluginNotLoaded(f"smtpdiag.lua not found next to {here}; set $SMTPDIAG_LUA")


def plugin_version(path: Optional[Path] = None) -> str:
    """The version string declared in the Lua plugin plus a short content hash."""
    path = path or lua_plugin_path()
    data = path.read_bytes()
    m = re.search(rb'SMTPDIAG_VERSION = "([^"]+)"', data)
    version = m.group(1).decode() if m else "unknown"
    return f"{version}+{hashlib.sha256(data).hexdigest()[:12]}"


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    d = Path(base) / "smtpdiag"
    return d


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
            group = "nogroup" if self.run_as == "nobody" else self.run_as
            cmd = [setpriv, f"--reuid={self.run_as}", f"--regid={group}", "--clear-groups",
                   "env", f"HOME={home}", *cmd]
        return cmd

    def run(self, args: Sequence[str], timeout: Optional[float] = 120) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(self.command(args), capture_output=True, timeout=timeout)
        except FileNotFoundError as e:
            raise TsharkNotFound(f"cannot run tshark at {self.path}: {e.strerror}") from None

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

    # -- fields --------------------------------------------------------------
    def fields(self, with_plugin: bool = True) -> frozenset[str]:
        """Every display-filter field name tshark knows (with the plugin's), cached per version."""
        return frozenset(self.field_types(with_plugin))

    def field_types(self, with_plugin: bool = True) -> dict[str, str]:
        """Field name → tshark type (FT_UINT32, FT_STRING, ...; protocols are 'FT_PROTOCOL')."""
        lua = (self.lua or lua_plugin_path()) if with_plugin else None
        key = (".".join(map(str, self.version)), self.run_as or "",
               plugin_version(lua) if lua else "none")
        if key in self._fields_cache:
            return self._fields_cache[key]
        digest = hashlib.sha256("|".join(key).encode() + self.path.encode()).hexdigest()[:16]
        cache_file = _cache_dir() / f"fields-{digest}.tsv"
        types: dict[str, str] = {}
        if cache_file.is_file():
            for line in cache_file.read_text().splitlines():
                name, _, ftype = line.partition("\t")
                if name:
                    types[name] = ftype
        if not types:
            args = ["-G", "fields"] + (["-X", f"lua_script:{lua}"] if lua else [])
            res = self.run(args)
            for line in res.stdout.decode("utf-8", "replace").splitlines():
                parts = line.split("\t")
                if parts[0] == "F" and len(parts) >= 4:
                    types[parts[2]] = parts[3]
                elif parts[0] == "P" and len(parts) >= 3:
                    types[parts[2]] = "FT_PROTOCOL"
            if not types:
                raise TsharkError(f"tshark -G fields listed nothing: {last_line(res.stderr)}")
            try:
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache_file.with_suffix(".tmp")
                tmp.write_text("\n".join(f"{k}\t{v}" for k, v in sorted(types.items())))
                tmp.replace(cache_file)
            except OSError:
                pass
        self._fields_cache[key] = types
        return types

    def check_plugin(self) -> None:
        """Fail loudly unless the smtpdiag plugin loads in this tshark."""
        if "smtpdiag.failure_cause" in self.fields(with_plugin=True):
            return
        if self.is_root and self.version >= (4, 4, 0):
            raise PluginNotLoaded(
                f"tshark {'.'.join(map(str, self.version))} run as root skips Lua scripts, so the smtpdiag "
                "plugin did not load; run as an ordinary user or pass --run-as nobody"
            )
        raise PluginNotLoaded(
            f"the smtpdiag Lua plugin did not load in {self.version_string} "
            f"(-X lua_script:{self.lua or lua_plugin_path()}); run `smtpdiag doctor`"
        )

    def check_fields(self, names: Sequence[str]) -> None:
        """Raise a clear error naming the fields this tshark does not have."""
        known = self.fields(with_plugin=True)
        missing = [n for n in names if n not in known]
        if missing:
            raise TsharkError(
                f"tshark {'.'.join(map(str, self.version))} has no field(s) {', '.join(missing)}"
            )

    def lua_args(self) -> list[str]:
        return ["-X", f"lua_script:{self.lua or lua_plugin_path()}"]


def last_line(stderr: bytes | str) -> str:
    """tshark's last meaningful stderr line (its 'Running as root' banner skipped)."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.startswith("Running as user")]
    return lines[-1] if lines else ""


@dataclass
class StreamResult:
    """What a streaming tshark run left behind once its output was read."""

    returncode: int = 0
    stderr: str = ""
    damaged: Optional[str] = None  # tshark's one line when the capture is cut short or corrupt

    @property
    def error_line(self) -> str:
        return last_line(self.stderr)

    def record(self, returncode: int, stderr: bytes) -> None:
        """Keep how tshark ended; a non-zero exit whose message names damage marks the capture damaged."""
        self.returncode = returncode
        self.stderr = stderr.decode("utf-8", "replace")
        if returncode != 0 and _DAMAGE.search(self.stderr):
            self.damaged = self.error_line


_DAMAGE = re.compile(r"cut short|corrupt|bad record|invalid|malformed|isn't a capture", re.I)


def stream_fields(ts: Tshark, capture: str, fields: Sequence[str], display_filter: str,
                  extra: Sequence[str] = (), two_pass: bool = True,
                  result: Optional[StreamResult] = None) -> Iterator[bytes]:
    """Run tshark -T fields on one capture and yield its output lines (bytes), streaming.

    `result` is filled in when the iterator is exhausted: return code, stderr, damage.
    """
    args = ["-n", "-r", capture]
    args += ts.lua_args()
    if two_pass:
        # The first pass's output is discarded: the plugin need not add per-frame fields there.
        args += ["-2", "-o", "smtpdiag.first_pass_fields:FALSE"]
    args += list(extra)
    args += ["-Y", display_filter, "-T", "fields", "-E", "header=n", "-E", "separator=/t",
             "-E", "occurrence=a", "-E", "aggregator=\x1f", "-E", "quote=n"]
    for f in fields:
        args += ["-e", f]
    result = result if result is not None else StreamResult()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(ts.command(args), stdout=subprocess.PIPE, stderr=err)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                yield line
        finally:
            if proc.poll() is None:
                if proc.stdout:
                    proc.stdout.close()
                proc.kill()
            proc.wait()
            err.seek(0)
            result.record(proc.returncode, err.read())


def sniff_capture(path: str) -> str:
    """'pcap', 'pcapng', 'gzip', ... from the first bytes; raise a one-line error for a non-capture."""
    from .errors import InputError

    p = Path(path)
    if not p.exists():
        raise InputError(f"{path}: no such file")
    if p.is_dir():
        raise InputError(f"{path}: is a directory")
    try:
        with open(p, "rb") as fh:
            head = fh.read(4)
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    if len(head) == 0:
        raise InputError(f"{path}: empty file")
    magic = head.hex()
    kinds = {
        "d4c3b2a1": "pcap", "a1b2c3d4": "pcap", "4d3cb2a1": "pcap", "a1b23c4d": "pcap",
        "0a0d0d0a": "pcapng",
    }
    if magic in kinds:
        return kinds[magic]
    if head[:2] == b"\x1f\x8b":
        import gzip

        try:
            with gzip.open(p, "rb") as fh:
                inner = fh.read(4).hex()
        except (OSError, EOFError):
            raise InputError(f"{path}: damaged gzip file") from None
        if inner in kinds:
            return "gzip"
        raise InputError(f"{path}: gzip file that holds no pcap/pcapng capture")
    if magic == "28b52ffd":
        return "zstd"
    if magic == "04224d18":
        return "lz4"
    raise InputError(f"{path}: not a capture file (expected pcap or pcapng, optionally gzip-compressed)")


# The plugin scans TCP payload itself: Wireshark's own reassembly of SMTP/POP3 message data
# only costs time and memory (15 s and 400 MB on one 50 MB message). It also tracks sequence
# numbers itself and reads no tcp.analysis.* or tcp.time_* field, so Wireshark's TCP analysis
# is off too: about 6 % of the CPU and most of tshark's memory (730 → 255 MB on the 1M-packet
# bench capture); tcp.stream does not depend on it.
FAST_PREFS = ("-o", "smtp.desegment_data:FALSE", "-o", "smtp.desegment_lines:FALSE",
              "-o", "pop.desegment_data:FALSE",
              "-o", "tcp.analyze_sequence_numbers:FALSE", "-o", "tcp.calculate_timestamps:FALSE")


def run_summary(ts: Tshark, capture: str, fields: Sequence[str], extra: Sequence[str] = (),
                result: Optional[StreamResult] = None) -> list[list[str]]:
    """One pass of tshark with the plugin in batch mode: one row per conversation, cells in `fields` order.

    The plugin writes its summary file as sessions end and at the end of the capture, so memory
    (tshark's and ours) is bounded by the conversations, not the packets. A damaged capture still
    yields every row read before the damage (`result.damaged` says so).
    """
    result = result if result is not None else StreamResult()
    with tempfile.TemporaryDirectory(prefix="smtpdiag-") as tmp:
        out = os.path.join(tmp, "summary.tsv")
        if ts.run_as:
            os.chmod(tmp, 0o777)
        args = ["-n", "-q", "-r", capture, *ts.lua_args(), "-o", f"smtpdiag.summary_file:{out}",
                *FAST_PREFS, *extra, "-Y", "frame"]
        with tempfile.TemporaryFile() as err:
            proc = subprocess.run(ts.command(args), stdout=subprocess.DEVNULL, stderr=err)
            err.seek(0)
            result.record(proc.returncode, err.read())
        if not os.path.exists(out):
            if proc.returncode == 0:
                raise PluginNotLoaded(f"the smtpdiag plugin wrote no summary for {capture}; run `smtpdiag doctor`")
            return []
        rows: list[list[str]] = []
        with open(out, "rb") as fh:
            header = fh.readline().rstrip(b"\n").decode().split("\t")
            index = {name: i for i, name in enumerate(header)}
            pick = [index.get(f) for f in fields]
            for raw in fh:
                cells = raw.rstrip(b"\n").decode("utf-8", "replace").split("\t")
                rows.append([cells[i] if i is not None and i < len(cells) else "" for i in pick])
        return rows
