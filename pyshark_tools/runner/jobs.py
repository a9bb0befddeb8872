"""One job: what one tshark+plugin run reads (a file, or a copy of cut conversations' frames), and running it.

A job is the batch run (one row per conversation, the plugin's summary file) or, given a display
filter, a per-frame run (one row per matching frame, the plugin's per-frame fields).

A job runs in a thread here or as a task on a Dask worker; it returns an Entry (runner/cache.py),
never raises for a bad capture: one file never costs the others their rows.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ..errors import PluginNotLoaded, SmtpdiagError, TsharkNotFound
from ..plugin.file import plugin_version
from ..tshark.conversations import conversation_rows
from ..tshark.frames import frame_rows
from ..tshark.program import Tshark, private_dir
from ..tshark.stream import StreamResult
from .cache import Entry
from .extract import Extract, write_extract
from .stitch import Cols, frames_named, map_frames
from .streams import StreamSource


@dataclass(frozen=True)
class Part:
    """A capture file."""

    path: str


@dataclass(frozen=True)
class Job:
    """One tshark run: one file (or, with `extract`, a copy of some conversations' frames of several files)
    and the fields it returns; with a `display_filter`, one row per matching frame instead of one per conversation."""

    parts: tuple[Part, ...]
    decode_args: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    display_filter: Optional[str] = None
    extract: Optional[Extract] = None     # instead of parts: the cut conversations' frames of these files


def group_jobs(sizes: Sequence[int], workers: int, small: int) -> list[list[int]]:
    """Group file indexes into job groups: big files alone, runs of consecutive small ones together."""
    n_small = sum(1 for s in sizes if s < small)
    per_group = max(1, min(16, n_small // (4 * workers)))
    groups: list[list[int]] = []
    cur: list[int] = []
    acc = 0
    for i, s in enumerate(sizes):
        if s >= small:
            groups.append([i])
            continue
        cur.append(i)
        acc += s
        if len(cur) >= per_group or acc >= small:
            groups.append(cur)
            cur, acc = [], 0
    if cur:
        groups.append(cur)
    return groups


_VERSIONS: dict[str, str] = {}


def identity(ts: Tshark) -> tuple[str, str]:
    """(tshark version line, plugin version) as seen by this process: a worker must match the coordinator."""
    if ts.path not in _VERSIONS:
        _VERSIONS[ts.path] = ts.version_string
    return _VERSIONS[ts.path], plugin_version(ts.lua)


def companion_tool(ts: Tshark, name: str) -> str:
    beside = Path(ts.path).with_name(name)
    found = str(beside) if beside.is_file() else shutil.which(name)
    if not found:
        raise TsharkNotFound(f"{name} not found beside {ts.path} or on PATH (it comes with tshark)")
    return found


def read_conversations(ts: Tshark, path: str, decode_args: Sequence[str], fields: Sequence[str],
                       stdin: Optional[int] = None) -> Entry:
    """The plugin's rows for one capture file, in the order the conversations began, and how tshark ended."""
    res = StreamResult()
    rows = conversation_rows(ts, path, fields, extra=decode_args, result=res, stdin=stdin)
    # The plugin writes the conversations as they end.
    first, proto = fields.index("smtpdiag.first_frame"), fields.index("smtpdiag.proto")
    rows.sort(key=lambda r: (int(r[first]) if r[first].isdigit() else 0, r[proto]))
    if res.returncode == 0:
        return Entry(rows)
    line = res.error_line or f"tshark exited with status {res.returncode}"
    return Entry(rows, 1, line, damaged=bool(res.damaged or rows))


def read_frames(ts: Tshark, path: str, decode_args: Sequence[str], fields: Sequence[str],
                display_filter: str, stdin: Optional[int] = None) -> Entry:
    """The frames of one capture file that match `display_filter`, and how tshark ended."""
    res = StreamResult()
    rows = frame_rows(ts, path, fields, display_filter, extra=decode_args, result=res, stdin=stdin)
    if res.returncode == 0:
        return Entry(rows)
    line = res.error_line or f"tshark exited with status {res.returncode}"
    return Entry(rows, 1, line, damaged=bool(res.damaged or rows))


def read_extract(ts: Tshark, x: Extract, decode_args: Sequence[str], fields: Sequence[str]) -> Entry:
    """The rows of the cut conversations, dissected from a copy of their frames only (extract.py).

    Frame numbers count from the file each row's first frame is in; every row gets two more cells:
    that file's index in `x.files` and the index of the last file any of its frames is in.
    """
    user = ts.user
    tmp = private_dir(user, prefix="smtpdiag-stitch-")   # only tshark's user may read the stitching copy
    try:
        path = os.path.join(tmp, "stitch.pcapng")
        fmap, counts = write_extract(x, path, tmp)
        os.chmod(path, 0o600)
        if user.uid != os.getuid():
            os.chown(path, user.uid, user.gid)
        entry = read_conversations(ts, path, decode_args, fields)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = [0]
    for n in counts:
        base.append(base[-1] + n)
    c = Cols(fields)

    def where(k: int) -> tuple[int, int]:
        return fmap[k - 1] if 0 < k <= len(fmap) else (0, k)

    rows = []
    for r in entry.rows:
        head = where(c.frame(r, c.first))[0]
        r = map_frames(r, c, lambda k: base[where(k)[0]] - base[head] + where(k)[1])
        last = max([head] + [head + sum(1 for b in base[head + 1:-1] if k > b - base[head])
                             for k in frames_named(r, c)])
        rows.append([*r, str(head), str(last)])
    entry.rows = rows
    return entry


def run_job(ts: Tshark, job: Job) -> Entry:
    """One tshark+plugin run. Errors other than a missing tshark/plugin become a failed Entry."""
    tv, pv = identity(ts)
    meta = {"tshark": tv, "plugin": pv}
    try:
        if job.extract is not None:
            entry = read_extract(ts, job.extract, job.decode_args, job.fields)
        else:
            path = job.parts[0].path
            entry = read_frames(ts, path, job.decode_args, job.fields, job.display_filter) \
                if job.display_filter else read_conversations(ts, path, job.decode_args, job.fields)
    except (TsharkNotFound, PluginNotLoaded):
        raise
    except (SmtpdiagError, OSError) as e:
        return Entry([], -1, str(e), False, meta)
    entry.meta = {**meta, "stable": plugin_version(ts.lua) == pv}   # the plugin was not edited while tshark ran
    return entry


def run_stream(ts: Tshark, source: StreamSource, decode_args: Sequence[str], fields: Sequence[str],
               display_filter: Optional[str] = None) -> Entry:
    """One tshark+plugin run over a pipe input (tshark -r - fed from it), here, never on a cluster."""
    tv, pv = identity(ts)
    try:
        with source.stdin() as (fd, name):
            entry = read_frames(ts, name, decode_args, fields, display_filter, stdin=fd) if display_filter \
                else read_conversations(ts, name, decode_args, fields, stdin=fd)
    except (TsharkNotFound, PluginNotLoaded):
        raise
    except (SmtpdiagError, OSError) as e:
        return Entry([], -1, str(e), False, {"tshark": tv, "plugin": pv})
    entry.meta = {"tshark": tv, "plugin": pv}
    return entry


def run_jobs(ts: Tshark, jobs: Sequence[Job]) -> list[Entry]:
    """A group of jobs, one after the other (the unit sent to a thread or a Dask worker)."""
    return [run_job(ts, j) for j in jobs]
