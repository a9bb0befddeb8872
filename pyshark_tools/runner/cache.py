"""Per-file result cache: the raw summary rows of one tshark+plugin run, as one Parquet file.

Layout: ``CACHE_DIR/tshark=<version>/plugin=<version+hash>/<key[:2]>/<key>.parquet``, one
partition per tshark and plugin version, so a new tshark or an edited plugin never reads
old rows (and old partitions can simply be deleted). The key covers the file's identity
(content hash up to ``SMALL_FILE`` bytes, else realpath, device, inode, size, mtime_ns and
ctime_ns: a file rewritten in place with its size and mtime restored still changes its ctime),
the tshark options (decode-as, display filter, fields), the Wireshark preferences that change
the plugin's output (run.py) and, for stitched runs, every part it was made of. Failed runs
are never stored; damaged (cut-short) ones are, with tshark's line.

The cache is trusted only when it is ours: a cache folder owned by another user is refused
(an error), a symlink or foreign folder inside it is neither read nor written through, files
are opened with O_NOFOLLOW, and unreadable or corrupt entries are misses.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import SmtpdiagError
from ..tshark.fields import user_cache_dir

SMALL_FILE = 4 << 20          # files up to this size are keyed on their content
CACHE_ENV = "SMTPDIAG_CACHE_DIR"
NO_CACHE_ENV = "SMTPDIAG_NO_CACHE"
FORMAT = "1"                  # bump when the stored layout changes


def default_cache_dir() -> Path:
    """$SMTPDIAG_CACHE_DIR, else $XDG_CACHE_HOME/smtpdiag/results (~/.cache/smtpdiag/results)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return user_cache_dir() / "results"


def file_identity(path: str) -> str:
    """Content hash for small files (copies and touches still hit), else realpath + size + mtime_ns."""
    st = os.stat(path)
    if st.st_size <= SMALL_FILE:
        with open(path, "rb") as fh:
            return "sha256:" + hashlib.sha256(fh.read()).hexdigest()
    real = os.fsencode(os.path.realpath(path)).decode("utf-8", "backslashreplace")
    return f"stat:{real}:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def check_cache_root(root: Path) -> None:
    """Refuse a cache folder that is not a directory owned by this user (another user could plant rows)."""
    try:
        st = os.stat(root)
    except FileNotFoundError:
        return                                  # created on first write, owned by us
    except OSError as e:
        raise SmtpdiagError(f"result cache {root}: {e.strerror} (--cache-dir elsewhere or --no-cache)") from None
    if not stat.S_ISDIR(st.st_mode):
        raise SmtpdiagError(f"result cache {root}: not a directory (--cache-dir elsewhere or --no-cache)")
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        raise SmtpdiagError(f"result cache {root}: owned by uid {st.st_uid}, not by you (uid {os.geteuid()}): "
                            "refused (--cache-dir elsewhere or --no-cache)")
    if st.st_mode & 0o002:
        raise SmtpdiagError(f"result cache {root}: writable by everyone (mode {stat.S_IMODE(st.st_mode):o}): "
                            "refused (chmod o-w it, --cache-dir elsewhere or --no-cache)")


def _own_dir(path: Path) -> bool:
    """Is `path` a real directory (not a symlink) owned by this user?"""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and (not hasattr(os, "geteuid") or st.st_uid == os.geteuid())


def _open_nofollow(path: Path, flags: int, mode: int = 0o600) -> int:
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), mode)


@dataclass
class Entry:
    """What one (possibly stitched) tshark run gave: rows, exit status, tshark's last line."""

    rows: list[list[str]]
    returncode: int = 0
    error: str = ""
    damaged: bool = False
    meta: dict = field(default_factory=dict)


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+_-]", "_", s)[:80]


@dataclass
class ResultCache:
    """Rows of finished runs, keyed on what went into them; `None` dir = a cache that never hits."""

    root: Optional[Path]
    tshark_version: str
    plugin_version: str
    hits: int = 0
    writes: int = 0

    def key(self, identities: Sequence[str], options: Sequence[str]) -> str:
        blob = json.dumps([FORMAT, self.tshark_version, self.plugin_version, list(identities), list(options)])
        return hashlib.sha256(blob.encode()).hexdigest()

    def __post_init__(self) -> None:
        if self.root is not None:
            check_cache_root(self.root)

    def _dirs(self, key: str) -> list[Path]:
        """The folders from the root down to the one holding `key`'s file."""
        assert self.root is not None
        ver = re.search(r"\d+\.\d+\.\d+", self.tshark_version)
        a = self.root / f"tshark={_safe(ver.group(0) if ver else self.tshark_version)}"
        b = a / f"plugin={_safe(self.plugin_version)}"
        return [a, b, b / key[:2]]

    def _path(self, key: str) -> Path:
        return self._dirs(key)[-1] / f"{key}.parquet"

    def _trusted(self, key: str) -> bool:
        """Every folder below the root is a real directory of ours (no symlink to elsewhere)."""
        return all(_own_dir(d) for d in self._dirs(key))

    def get(self, key: str, n_fields: int) -> Optional[Entry]:
        """The stored run, or None: absent, unreadable, corrupt, or reached through a symlink."""
        if self.root is None or not self._trusted(key):
            return None
        try:
            fd = _open_nofollow(self._path(key), os.O_RDONLY)
        except OSError:
            return None
        try:
            with open(fd, "rb") as fh:
                if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                    return None
                table = pq.read_table(pa.BufferReader(fh.read()))
            meta = json.loads((table.schema.metadata or {}).get(b"smtpdiag", b"{}"))
            if not isinstance(meta, dict) or table.num_columns != n_fields:
                return None
            cols = [c.to_pylist() for c in table.columns]
            rows = [list(r) for r in zip(*cols)] if cols else []
            if any(not isinstance(v, str) for r in rows for v in r):
                return None
            entry = Entry(rows, int(meta.get("returncode", 0)), str(meta.get("error", "")),
                          bool(meta.get("damaged", False)), meta)
        except (OSError, ValueError, TypeError, pa.ArrowException):
            return None                         # corrupt: a miss, read again and rewritten
        self.hits += 1
        return entry

    def put(self, key: str, entry: Entry, n_fields: int, source: str = "") -> None:
        """Store a finished run (never a failed one); a cache that cannot be written is skipped."""
        if self.root is None or (entry.returncode != 0 and not entry.damaged and not entry.rows) \
                or entry.meta.get("stable") is False:
            return
        cols = list(zip(*entry.rows)) if entry.rows else [()] * n_fields
        table = pa.table({f"c{i}": pa.array(list(c), pa.string()) for i, c in enumerate(cols)})
        meta = {"returncode": entry.returncode, "error": entry.error, "damaged": entry.damaged,
                "source": source, "tshark": self.tshark_version, "plugin": self.plugin_version}
        table = table.replace_schema_metadata({"smtpdiag": json.dumps(meta)})
        p = self._path(key)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            self.root.parent.mkdir(parents=True, exist_ok=True)
            for d in [self.root, *self._dirs(key)]:
                try:
                    os.mkdir(d, 0o700)
                except FileExistsError:
                    pass
            if not self._trusted(key):
                return                          # a symlink or a foreign folder inside: never written through
            buf = pa.BufferOutputStream()
            pq.write_table(table, buf)
            fd = _open_nofollow(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with open(fd, "wb") as fh:
                    fh.write(buf.getvalue().to_pybytes())
                os.replace(tmp, p)              # replaces a symlink at p itself, never its target
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            self.writes += 1
        except (OSError, pa.ArrowException):
            pass
