"""Per-file result cache: the raw summary rows of one tshark+plugin run, as one Parquet file.

Layout: ``CACHE_DIR/tshark=<version>/plugin=<version+hash>/<key[:2]>/<key>.parquet``, one
partition per tshark and plugin version, so a new tshark or an edited plugin never reads
old rows (and old partitions can simply be deleted). The key covers the file's identity
(content hash up to ``SMALL_FILE`` bytes, else realpath + size + mtime_ns), the tshark
options (decode-as, display filter, fields) and, for stitched runs, every part it was
made of. Failed runs are never stored; damaged (cut-short) ones are, with tshark's line.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

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
    return f"stat:{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}"


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

    def _path(self, key: str) -> Path:
        assert self.root is not None
        ver = re.search(r"\d+\.\d+\.\d+", self.tshark_version)
        return (self.root / f"tshark={_safe(ver.group(0) if ver else self.tshark_version)}"
                / f"plugin={_safe(self.plugin_version)}" / key[:2] / f"{key}.parquet")

    def get(self, key: str, n_fields: int) -> Optional[Entry]:
        if self.root is None:
            return None
        p = self._path(key)
        try:
            table = pq.read_table(p)
        except (OSError, pa.ArrowException):
            return None
        meta = json.loads((table.schema.metadata or {}).get(b"smtpdiag", b"{}"))
        if table.num_columns != n_fields:
            return None
        cols = [c.to_pylist() for c in table.columns]
        rows = [list(r) for r in zip(*cols)] if cols else []
        self.hits += 1
        return Entry(rows, meta.get("returncode", 0), meta.get("error", ""), meta.get("damaged", False), meta)

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
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_name(f".{p.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            pq.write_table(table, tmp)
            os.replace(tmp, p)
            self.writes += 1
        except OSError:
            pass
