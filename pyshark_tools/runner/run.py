"""Reading many captures: plan the order, run each file once (or take its rows from the cache), stitch.

`read_captures()` is the straight line behind `pyshark_tools.sessions()` and the other tables:
plan the inputs and their order (plan.py) → one tshark+plugin job per file (jobs.py; small
files share a job group), `jobs` at a time here or on a Dask cluster (executors.py) → each
finished run kept in the result cache (cache.py), so unchanged files are not dissected twice →
sessions cut by a file boundary read again from the files concatenated (stitch.py). Rows come
back in input order (members of a dumpcap ring-buffer set in index order); a file that fails is
recorded in the ReadLog and never costs the other files their rows. An export a sensor wrote
(exports/) gives its rows straight from the file, in its place among the inputs.
"""
from __future__ import annotations

import bisect
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Sequence

from ..errors import PluginNotLoaded, ReadLog, SmtpdiagError, TsharkNotFound
from ..exports.read import read_export
from ..gc_pause import gc_paused
from ..tshark.program import Tshark
from ..version import __version__
from . import split, stitch
from .cache import Entry, ResultCache, default_cache_dir, file_identity
from .executors import execute
from .extract import Extract
from .jobs import Job, Part, companion_tool, group_jobs, identity, run_stream
from .options import RunOptions, current_options
from .plan import Capture, expand_inputs, order_captures, ring_key

# The code that turns a capture into rows: an edit to it makes cached rows stale.
ROW_CODE = ("plugin/summary_file.py", "tshark/conversations.py", "tshark/frames.py", "tshark/stream.py",
            "tshark/program.py", "runner/jobs.py", "runner/stitch.py",
            "runner/extract.py", "runner/pcapio.py", "runner/split.py")


@dataclass
class RunRows:
    """Rows of a run, and for each row: its pcap_file, all files it spans, its capture's index in `captures`."""

    rows: list[list[str]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    files: list[list[str]] = field(default_factory=list)
    sources: list[int] = field(default_factory=list)
    captures: list[Capture] = field(default_factory=list)

    def source_names(self) -> list[str]:
        """Each row's `source`: the name of the folder its file came from (a sensor's, for exports)."""
        folders = ["" if c.source is not None else c.path.resolve().parent.name for c in self.captures]  # a pipe: none
        return [folders[k] if 0 <= k < len(folders) else "" for k in self.sources]

    def of_capture(self, k: int) -> "RunRows":
        """The rows that come from capture k (a stitched row belongs to the file it starts in)."""
        keep = [i for i, s in enumerate(self.sources) if s == k]
        return RunRows([self.rows[i] for i in keep], [self.names[i] for i in keep], [self.files[i] for i in keep],
                       [k] * len(keep), self.captures)


def read_captures(captures: Iterable[str] | str, fields: Sequence[str], tshark: Optional[Tshark] = None,
                  read_log: Optional[ReadLog] = None, decode_as: Sequence[str] = (),
                  display_filter: Optional[str] = None, tls_keylog: Optional[str] = None) -> RunRows:
    """Capture paths → the plugin's rows, one per conversation: plan the inputs, run each file, stitch.
    `tls_keylog`: a TLS key log for every capture (SMTP/POP3/IMAP inside TLS diagnosed as in clear).

    With a `display_filter`: one row per matching frame instead (per-frame fields), nothing stitched.
    Without a `read_log`, an unreadable input is an error; with one, it is recorded there.
    """
    caps = order_captures(expand_inputs(captures, decode_as=decode_as, read_log=read_log, tls_keylog=tls_keylog))
    ts = tshark or Tshark.discover()
    if not all(c.is_export for c in caps):    # exports alone run no tshark
        ts.check_plugin()
    return run_captures(ts, caps, fields, read_log if read_log is not None else ReadLog(),
                        display_filter=display_filter)


@gc_paused
def run_captures(ts: Tshark, captures: Sequence[Capture], fields: Sequence[str], read_log: ReadLog,
                 progress: Optional[Callable[[Capture], None]] = None,
                 options: Optional[RunOptions] = None, display_filter: Optional[str] = None) -> RunRows:
    """Every capture's rows (cached, in parallel), in the order given, sessions stitched across files.

    The captures come in reading order: ring-buffer members by index (plan.order_captures), so that
    a session cut by a file boundary continues in the next file. With a `display_filter`, the rows
    are the matching frames of each file (its tcp.stream numbers), cached the same way, not stitched.
    """
    if any(c.is_export for c in captures):
        return _with_exports(ts, list(captures), fields, read_log, progress, options, display_filter)
    opts = options or current_options()
    caps = list(captures)
    progress = _with_display(progress, opts, caps)
    cache = open_cache(ts, opts)
    optkey = [toolkit_version(), wireshark_settings(ts), *fields, *key_log_identities(caps),
              *(["frames", display_filter] if display_filter else [])]
    ids, entries = _read_files(ts, caps, fields, optkey, cache, opts, progress, display_filter)
    for cap, x in zip(caps, entries):
        read_log.files.append(str(cap.path))
        if x.returncode != 0:
            (read_log.damaged if x.damaged or x.rows else read_log.failed)[str(cap.path)] = x.error
    per_file = [x.rows for x in entries]
    if display_filter:
        return RunRows([r for rows in per_file for r in rows],
                       [c.name for c, rows in zip(caps, per_file) for _ in rows],
                       [[c.name] for c, rows in zip(caps, per_file) for _ in rows],
                       [k for k, rows in enumerate(per_file) for _ in rows], caps)
    # Only members of one ring-buffer set continue each other: loose files in a folder (the fixtures,
    # made minutes apart on one host) are separate captures even when close in time.
    sets = [ring_key(c.path) for c in caps]
    same_set = [bool(a and b and a[0] == b[0]) for a, b in zip(sets, sets[1:])]
    spans = stitch.find_spans(per_file, fields, same_set) \
        if opts.stitch and len(caps) > 1 and not any(c.source for c in caps) else []   # a pipe is read once
    merged = _stitch(ts, caps, spans, ids, fields, [*optkey, "stitch"], cache, opts)
    rows, names, files, sources = stitch.apply(spans, merged, per_file, [c.name for c in caps], fields)
    return RunRows(rows, names, files, sources, caps)


def _with_exports(ts: Tshark, caps: list[Capture], fields: Sequence[str], read_log: ReadLog,
                  progress: Optional[Callable[[Capture], None]], options: Optional[RunOptions],
                  display_filter: Optional[str]) -> RunRows:
    """Captures run as usual (stitched among themselves), exports' rows read from the files; input order kept.

    An export holds conversations only: a per-frame run (`display_filter`) gets no rows from it.
    """
    pcaps = [c for c in caps if not c.is_export]
    got = run_captures(ts, pcaps, fields, read_log, progress, options, display_filter) if pcaps \
        else RunRows(captures=[])
    out = RunRows(captures=caps)
    k_pcap = 0
    for k, cap in enumerate(caps):
        if cap.is_export:
            part = RunRows(captures=caps) if display_filter else _export_rows(cap, k, fields, read_log, caps)
            if progress:
                progress(cap)
        else:
            part = got.of_capture(k_pcap)
            part.sources = [k] * len(part.rows)
            k_pcap += 1
        out.rows += part.rows
        out.names += part.names
        out.files += part.files
        out.sources += part.sources
    return out


def _export_rows(cap: Capture, k: int, fields: Sequence[str], read_log: ReadLog, caps: list[Capture]) -> RunRows:
    """One export's rows as capture k's; a failure or a cut goes to the read_log like a capture's."""
    read_log.files.append(str(cap.path))
    try:
        got = read_export(cap.path, cap.export, fields)  # type: ignore[arg-type]
    except SmtpdiagError as e:
        read_log.failed[str(cap.path)] = str(e)
        return RunRows(captures=caps)
    if got.damaged:
        read_log.damaged[str(cap.path)] = got.damaged
    n = len(got.rows)
    return RunRows(got.rows, [got.capture] * n, [[got.capture] for _ in range(n)], [k] * n, caps)
def _with_display(progress: Optional[Callable[[Capture], None]], opts: RunOptions,
                  caps: Sequence[Capture]) -> Optional[Callable[[Capture], None]]:
    """The caller's per-file callback plus the options' progress display (told the captures first)."""
    bar = opts.progress
    if bar is None:
        return progress
    bar.begin(caps)
    for c in caps:
        if c.source is not None:
            c.source.on_bytes = bar.read

    def tick(cap: Capture) -> None:
        if progress:
            progress(cap)
        bar.done(cap)
    return tick


def key_log_identities(caps: Sequence[Capture]) -> list[str]:
    """What the TLS key logs the captures are read with hold (their path alone is in the tshark options):
    a key log rewritten in place gives other rows, so it gives another cache key."""
    logs = sorted({a.split(":", 1)[1] for c in caps for a in c.decode_args if a.startswith("tls.keylog_file:")})
    out = []
    for path in logs:
        try:
            out.append("keylog " + file_identity(path))
        except OSError:
            out.append("keylog missing " + path)
    return out


def toolkit_version() -> str:
    """This package's version plus a hash of the code that turns a capture into rows (part of cache keys)."""
    package = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for name in ROW_CODE:
        try:
            h.update((package / name).read_bytes())
        except OSError:
            pass
    return f"{__version__}+{h.hexdigest()[:12]}"


# The files of a Wireshark configuration folder that change what the plugin reports: its
# preferences (smtpdiag.ports, ...), decode-as entries and the enabled/disabled dissectors.
SETTINGS_FILES = ("preferences", "decode_as_entries", "disabled_protos", "enabled_protos", "heuristic_protos")


def wireshark_settings(ts: Tshark) -> str:
    """A hash of the Wireshark settings tshark reads (personal and global folders): part of cache keys,
    so that changing smtpdiag.ports or a decode-as entry in Wireshark never returns stale rows."""
    home = tempfile.gettempdir() if ts.run_as else os.path.expanduser("~")
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    folders = [os.environ.get("WIRESHARK_CONFIG_DIR") or os.path.join(xdg, "wireshark"),
               os.path.join(home, ".wireshark"), os.path.join(Path(ts.path).resolve().parent.parent, "share", "wireshark"),
               "/usr/share/wireshark", "/etc/wireshark"]
    h = hashlib.sha256()
    for folder in folders:
        for name in SETTINGS_FILES:
            try:
                with open(os.path.join(folder, name), "rb") as fh:
                    h.update(f"{folder}/{name}\0".encode() + hashlib.sha256(fh.read()).digest())
            except OSError:
                continue
    return "settings:" + h.hexdigest()[:16]


def open_cache(ts: Tshark, opts: RunOptions) -> ResultCache:
    """The result cache for this tshark and plugin (one that never hits with --no-cache)."""
    root = (opts.cache_dir or default_cache_dir()) if opts.cache else None
    tv, pv = identity(ts)
    return ResultCache(Path(root) if root else None, tv, pv)


def _read_files(ts: Tshark, caps: Sequence[Capture], fields: Sequence[str], optkey: Sequence[str],
                cache: ResultCache, opts: RunOptions, progress: Optional[Callable[[Capture], None]],
                display_filter: Optional[str] = None) -> tuple[list[str], list[Entry]]:
    """Each file's identity and Entry: from the cache, else one job each (small files grouped)."""
    n = len(caps)
    entries: list[Optional[Entry]] = [None] * n
    keys, ids, sizes = [""] * n, [""] * n, [0] * n
    for i, cap in enumerate(caps):
        if cap.source is not None:       # a pipe: read now, here, once; not cached
            ids[i] = f"pipe:{cap.path}"
            entries[i] = run_stream(ts, cap.source, cap.decode_args, fields, display_filter)
            if progress:
                progress(cap)
            continue
        try:
            ids[i] = file_identity(str(cap.path))
            sizes[i] = cap.path.stat().st_size
        except OSError as err:
            entries[i] = Entry([], -1, f"{cap.path}: cannot read ({err.strerror})")
            continue
        keys[i] = cache.key([ids[i]], [*cap.decode_args, *optkey])
        entries[i] = cache.get(keys[i], len(fields))
        if entries[i] is not None and progress:
            progress(cap)
    todo = [i for i in range(n) if entries[i] is None]
    share = sum(sizes[i] for i in todo) / opts.workers
    for i in list(todo):
        # Cut a capture only when it is well over its share of the work (then the other files
        # alone would leave cores idle); a ring-buffer set's files are read side by side.
        if display_filter is None and opts.workers > 1 and sizes[i] >= opts.split_size \
                and sizes[i] > 1.5 * share and caps[i].kind in ("pcap", "pcapng", "gzip"):
            try:
                entries[i] = _read_split(ts, caps[i], ids[i], fields, optkey, cache, opts)
            except (OSError, ValueError, SmtpdiagError):
                entries[i] = None                       # read whole instead
            if entries[i] is not None:
                todo.remove(i)
                if progress:
                    progress(caps[i])
    groups = [[todo[k] for k in g] for g in group_jobs([sizes[i] for i in todo], opts.workers, opts.small_file)]
    jobs = {i: Job((Part(os.path.abspath(caps[i].path)),), caps[i].decode_args, tuple(fields), display_filter)
            for i in todo}
    _run_and_keep(ts, groups, jobs, keys, [str(c.path) for c in caps], entries, cache, len(fields), opts,
                  (lambda i: progress(caps[i])) if progress else None)
    return ids, [x or Entry([], -1, "not read") for x in entries]


def _read_split(ts: Tshark, cap: Capture, id_: str, fields: Sequence[str], optkey: Sequence[str],
                cache: ResultCache, opts: RunOptions) -> Optional[Entry]:
    """One large capture cut into `workers` parts (split.py), read in parallel and stitched (None: no cut found).

    Frame numbers are the whole capture's; `stream` is known for conversations that begin in the
    first part (tshark numbers streams in each part from 0), empty for the others.
    """
    nf = len(fields)
    key = cache.key([id_], [*cap.decode_args, *optkey, f"split{opts.workers}"])
    hit = cache.get(key, nf)
    if hit is not None:
        return hit
    where = cache.root / "parts" if cache.root is not None and opts.scheduler else None
    if where is not None:
        where.mkdir(parents=True, exist_ok=True)       # a Dask cluster's workers share the cache directory
    tmp = tempfile.mkdtemp(prefix="smtpdiag-split-", dir=where)
    os.chmod(tmp, 0o755)   # tshark may run as another user (--run-as)
    try:
        plain = split.decompressed(str(cap.path), tmp, opts.max_decompressed)
        parts = split.write_parts(plain, opts.workers, tmp)
        if len(parts) < 2:
            return None
        for p, _, _ in parts:
            os.chmod(p, 0o644)
        counters = [split.frame_count(companion_tool(ts, "capinfos"), p) for p, _, _ in parts]
        keys = [cache.key([id_], [*cap.decode_args, *optkey, f"bytes {a}-{b}"]) for _, a, b in parts]
        entries: list[Optional[Entry]] = [cache.get(k, nf) for k in keys]
        todo = [k for k, e in enumerate(entries) if e is None]
        jobs = {k: Job((Part(parts[k][0]),), cap.decode_args, tuple(fields)) for k in todo}
        _run_and_keep(ts, [[k] for k in todo], jobs, keys, [f"{cap.path}@{a}-{b}" for _, a, b in parts], entries,
                      cache, nf, opts)
        offs = [0]
        for proc in counters:
            offs.append(offs[-1] + split.counted(proc))
        c = stitch.Cols(fields)
        per_part: list[list[list[str]]] = []
        for k, e in enumerate(entries):
            rows = e.rows if e else []
            if k:                                   # the first part's numbers are already the capture's
                rows = [stitch.map_frames(r, c, lambda f, o=offs[k]: f + o) for r in rows]
                for r in rows:
                    r[c.stream] = ""
            per_part.append(rows)
        spans = stitch.find_spans(per_part, fields) if opts.stitch else []
        merged = None
        if spans:
            x = Extract((plain,), tuple((s.key, (0, s.start[1]), (0, offs[s.end[0] + 1] if s.end[1] >= stitch.END
                                                                    else s.end[1])) for s in spans))
            got: list[Optional[Entry]] = [None]
            uncached = ResultCache(None, cache.tshark_version, cache.plugin_version)
            _run_and_keep(ts, [[0]], {0: Job((), cap.decode_args, tuple(fields), extract=x)}, [""],
                          [f"stitch:{cap.path}"], got, uncached, nf + 2, opts)
            merged = got[0]
            if merged is not None:
                merged.rows = [[*r[:-2], str(bisect.bisect_left(offs, c.frame(r, c.first)) - 1), "0"]
                               for r in merged.rows]
        rows = stitch.apply(spans, merged, per_part, [cap.name] * len(parts), fields)[0]
        bad = next((e for e in entries if e is None or e.returncode != 0), None) or Entry([], 0)
        entry = Entry(rows, bad.returncode, bad.error, bad.returncode != 0 and bool(rows),
                      entries[0].meta if entries[0] else {})
        cache.put(key, entry, nf, str(cap.path))
        return entry
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _stitch(ts: Tshark, caps: Sequence[Capture], spans: Sequence[stitch.Span], ids: Sequence[str],
            fields: Sequence[str], optkey: Sequence[str], cache: ResultCache, opts: RunOptions) -> Optional[Entry]:
    """The rows of the cut conversations, from one run over a copy of their frames (cached like a file)."""
    if not spans:
        return None
    base = spans[0].start[0]
    x = Extract(tuple(os.path.abspath(c.path) for c in caps[base:]),
                tuple((s.key, (s.start[0] - base, s.start[1]), (s.end[0] - base, s.end[1])) for s in spans))
    key = cache.key(list(ids[base:]), [*caps[base].decode_args, *optkey, repr(x.spans), repr(x.timeouts)])
    got: list[Optional[Entry]] = [cache.get(key, len(fields) + 2)]
    if got[0] is None:
        job = Job((), caps[base].decode_args, tuple(fields), extract=x)
        _run_and_keep(ts, [[0]], {0: job}, [key], ["stitch:" + ",".join(x.files)], got, cache, len(fields) + 2, opts)
    e = got[0]
    if e is not None and base:
        e = Entry([[*r[:-2], str(int(r[-2]) + base), str(int(r[-1]) + base)] for r in e.rows], e.returncode,
                  e.error, e.damaged, e.meta)
    return e


def _run_and_keep(ts: Tshark, groups: Sequence[Sequence[int]], jobs: Mapping[int, Job], keys: Sequence[str],
                  labels: Sequence[str], entries: list[Optional[Entry]], cache: ResultCache, n_fields: int,
                  opts: RunOptions, done: Optional[Callable[[int], None]] = None) -> None:
    """Run the groups of jobs (indexes into `entries`); keep each result there and in the cache."""
    for gi, outcome in execute(ts, [[jobs[i] for i in g] for g in groups], opts):
        _reraise(outcome, opts)
        for k, i in enumerate(groups[gi]):
            got = Entry([], -1, f"{labels[i]}: {outcome}") if isinstance(outcome, BaseException) \
                else _from_same_versions(outcome[k], cache)
            entries[i] = got
            cache.put(keys[i], got, n_fields, labels[i])
            if done:
                done(i)


def _reraise(outcome: object, opts: RunOptions) -> None:
    """A missing tshark/plugin stops the run; so does a bug here (on a cluster, a lost worker is per file)."""
    if isinstance(outcome, (TsharkNotFound, PluginNotLoaded)):
        raise outcome
    if isinstance(outcome, Exception) and not opts.scheduler and not isinstance(outcome, (SmtpdiagError, OSError)):
        raise outcome


def _from_same_versions(e: Entry, cache: ResultCache) -> Entry:
    """A worker with another tshark or plugin than this run's gives a failure, not foreign rows."""
    tv, pv = e.meta.get("tshark"), e.meta.get("plugin")
    if tv and pv and (tv, pv) != (cache.tshark_version, cache.plugin_version):
        return Entry([], -1, f"worker runs {tv} with plugin {pv}, this run uses {cache.tshark_version} with "
                             f"plugin {cache.plugin_version}: install the same on every worker")
    return e
