"""Many captures at once: ring-buffer order, parallel tshark runs, the result cache, stitching.

`run_captures()` is the runner behind `sessions.session_rows()`. Every capture is one job: a
tshark+plugin process of its own (small captures share a job), run `jobs` at a time by a
thread pool here or, with a scheduler address, as tasks on a Dask cluster. Rows come back
in input order (members of a dumpcap ring-buffer set in index order); a file that fails is
recorded in the RunReport and never costs the other files their rows. Finished runs are kept
in a `ResultCache`, so unchanged files are not dissected twice. Sessions cut by a file
boundary are then stitched by `stitch.py` (one more tshark run on the files concatenated).

How: `with configured(jobs=4, cache_dir=..., scheduler="tcp://host:8786"): sessions(...)`,
or the CLI's `--jobs`, `--cache-dir`/`--no-cache`, `--scheduler`.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Optional, Sequence

from . import stitch
from . import tshark as _tshark
from .cache import NO_CACHE_ENV, Entry, ResultCache, default_cache_dir, file_identity
from .errors import PluginNotLoaded, SmtpdiagError, TsharkNotFound
from .inputs import Capture

if TYPE_CHECKING:
    from .sessions import RunReport

JOBS_ENV = "SMTPDIAG_JOBS"
SCHEDULER_ENV = "SMTPDIAG_SCHEDULER"
RING = re.compile(r"^(?P<prefix>.+)_(?P<index>\d{5,})_(?P<stamp>\d{14})(?P<ext>\.[A-Za-z0-9.]+)$")


# -- options ---------------------------------------------------------------------

@dataclass(frozen=True)
class BatchOptions:
    """How captures are read: parallelism, cache, where the jobs run, stitching."""

    jobs: Optional[int] = None          # tshark processes at once; None = os.cpu_count()
    cache_dir: Optional[Path] = None    # None = $XDG_CACHE_HOME/smtpdiag/results
    cache: bool = True                  # False: neither read nor write the cache
    scheduler: Optional[str] = None     # tcp://HOST:PORT: run the jobs on that Dask cluster
    stitch: bool = True                 # re-run sessions cut by file boundaries on the concatenation
    small_file: int = 1 << 20           # captures below this size share a job

    @property
    def workers(self) -> int:
        return max(1, self.jobs or os.cpu_count() or 1)


def _env_options() -> BatchOptions:
    jobs = os.environ.get(JOBS_ENV)
    return BatchOptions(jobs=int(jobs) if jobs and jobs.isdigit() else None,
                        cache=os.environ.get(NO_CACHE_ENV, "") in ("", "0"),
                        scheduler=os.environ.get(SCHEDULER_ENV) or None)


_OPTIONS: ContextVar[Optional[BatchOptions]] = ContextVar("smtpdiag_batch_options", default=None)


def current_options() -> BatchOptions:
    """The options set by `configured()`, else from $SMTPDIAG_JOBS / $SMTPDIAG_NO_CACHE / $SMTPDIAG_SCHEDULER."""
    return _OPTIONS.get() or _env_options()


@contextmanager
def configured(**changes) -> Iterator[BatchOptions]:
    """Set batch options for the calls made inside the block; arguments left None keep their value."""
    opts = replace(current_options(), **{k: v for k, v in changes.items() if v is not None})
    token = _OPTIONS.set(opts)
    try:
        yield opts
    finally:
        _OPTIONS.reset(token)


# -- ordering and planning -------------------------------------------------------

def ring_key(path: Path) -> Optional[tuple[str, int, str]]:
    """(set, index, timestamp) of a dumpcap ring-buffer file `name_00001_YYYYMMDDhhmmss.pcapng`."""
    m = RING.match(path.name)
    if not m:
        return None
    return (str(path.parent / m["prefix"]) + "|" + m["ext"], int(m["index"]), m["stamp"])


def order_captures(caps: Sequence[Capture]) -> list[Capture]:
    """Input order, except that each ring-buffer set comes whole, in index order, where its first member was."""
    sets: dict[str, list[Capture]] = {}
    for c in caps:
        k = ring_key(c.path)
        if k:
            sets.setdefault(k[0], []).append(c)
    out: list[Capture] = []
    for c in caps:
        k = ring_key(c.path)
        if not k:
            out.append(c)
        elif k[0] in sets:
            out += sorted(sets.pop(k[0]), key=lambda m: ring_key(m.path)[1:])  # type: ignore[index]
    return out


def plan(sizes: Sequence[int], workers: int, small: int) -> list[list[int]]:
    """Group file indexes into jobs: big files alone, runs of consecutive small ones together."""
    n_small = sum(1 for s in sizes if s < small)
    per_job = max(1, min(16, n_small // (4 * workers)))
    jobs: list[list[int]] = []
    cur: list[int] = []
    acc = 0
    for i, s in enumerate(sizes):
        if s >= small:
            jobs.append([i])
            continue
        cur.append(i)
        acc += s
        if len(cur) >= per_job or acc >= small:
            jobs.append(cur)
            cur, acc = [], 0
    if cur:
        jobs.append(cur)
    return jobs


# -- one job (runs here in a thread, or on a Dask worker) ------------------------

@dataclass(frozen=True)
class Part:
    """A capture file, optionally only its frames 1..last_frame."""

    path: str
    last_frame: Optional[int] = None


@dataclass(frozen=True)
class Job:
    """What one tshark run reads: one file, or the concatenation of several parts (mergecap -a)."""

    parts: tuple[Part, ...]
    decode_args: tuple[str, ...] = ()


_VERSIONS: dict[str, str] = {}


def identity(ts: _tshark.Tshark) -> tuple[str, str]:
    """(tshark version line, plugin version) as seen by this process: a worker must match the coordinator."""
    if ts.path not in _VERSIONS:
        _VERSIONS[ts.path] = ts.version_string
    return _VERSIONS[ts.path], _tshark.plugin_version(ts.lua)


def _tool(ts: _tshark.Tshark, name: str) -> str:
    beside = Path(ts.path).with_name(name)
    found = str(beside) if beside.is_file() else shutil.which(name)
    if not found:
        raise TsharkNotFound(f"{name} not found beside {ts.path} or on PATH (it comes with tshark)")
    return found


@contextmanager
def materialise(ts: _tshark.Tshark, job: Job) -> Iterator[str]:
    """The path tshark should read: the file itself, or a temporary concatenation of the parts."""
    if len(job.parts) == 1 and job.parts[0].last_frame is None:
        yield job.parts[0].path
        return
    tmp = tempfile.mkdtemp(prefix="smtpdiag-stitch-")
    os.chmod(tmp, 0o755)   # tshark may run as another user (--run-as)
    try:
        paths = []
        for k, part in enumerate(job.parts):
            if part.last_frame is None:
                paths.append(part.path)
                continue
            cut = os.path.join(tmp, f"part{k}.pcapng")
            _check(subprocess.run([_tool(ts, "editcap"), "-F", "pcapng", "-r", part.path, cut,
                                   f"1-{part.last_frame}"], capture_output=True), "editcap")
            paths.append(cut)
        merged = os.path.join(tmp, "merged.pcapng")
        _check(subprocess.run([_tool(ts, "mergecap"), "-a", "-F", "pcapng", "-w", merged, *paths],
                              capture_output=True), "mergecap")
        for p in os.listdir(tmp):
            os.chmod(os.path.join(tmp, p), 0o644)
        yield merged
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check(res: subprocess.CompletedProcess, what: str) -> None:
    if res.returncode != 0:
        raise OSError(f"{what} failed: {_tshark.last_line(res.stderr) or res.returncode}")


def run_job(ts: _tshark.Tshark, job: Job) -> Entry:
    """One tshark+plugin run through sessions._raw_rows (the toolkit's per-file reader).

    Errors other than a missing tshark/plugin become a failed Entry: one file never stops the rest.
    """
    _sessions = importlib.import_module(".sessions", __package__)  # the module: `pyshark_tools.sessions` is a function

    tv, pv = identity(ts)
    rep = _sessions.RunReport()
    try:
        with materialise(ts, job) as path:
            rows = _sessions._raw_rows(ts, Capture(Path(path), decode_args=job.decode_args), rep)
    except (TsharkNotFound, PluginNotLoaded):
        raise
    except (SmtpdiagError, OSError) as e:
        return Entry([], -1, str(e), False, {"tshark": tv, "plugin": pv})
    problem = {**rep.failed, **rep.damaged}
    line = next(iter(problem.values()), "")
    stable = _tshark.plugin_version(ts.lua) == pv          # the plugin was not edited while tshark ran
    return Entry(rows, 1 if problem else 0, line, bool(rep.damaged), {"tshark": tv, "plugin": pv, "stable": stable})


def run_jobs(ts: _tshark.Tshark, jobs: Sequence[Job]) -> list[Entry]:
    """A batch of jobs, one after the other (the unit sent to a thread or a Dask worker)."""
    return [run_job(ts, j) for j in jobs]


# -- running many jobs -----------------------------------------------------------

Outcome = tuple[int, "list[Entry] | BaseException"]


def execute(ts: _tshark.Tshark, batches: Sequence[Sequence[Job]], opts: BatchOptions) -> Iterator[Outcome]:
    """Run the batches; yield (batch index, its entries or the exception it raised) as each ends."""
    if not batches:
        return
    if opts.scheduler:
        yield from _execute_dask(ts, batches, opts.scheduler)
        return
    if len(batches) == 1 or opts.workers == 1:
        for i, b in enumerate(batches):
            try:
                yield i, run_jobs(ts, b)
            except Exception as e:  # noqa: BLE001 - handed to the caller, per file
                yield i, e
        return
    with ThreadPoolExecutor(max_workers=min(opts.workers, len(batches)), thread_name_prefix="smtpdiag") as pool:
        futures = {pool.submit(run_jobs, ts, b): i for i, b in enumerate(batches)}
        for f in as_completed(futures):
            exc = f.exception()
            yield futures[f], exc if exc is not None else f.result()


def _execute_dask(ts: _tshark.Tshark, batches: Sequence[Sequence[Job]], address: str) -> Iterator[Outcome]:
    try:
        from distributed import Client
    except ImportError:
        raise SmtpdiagError("--scheduler needs Dask: pip install 'pyshark-tools[dask]'") from None
    light = _tshark.Tshark(ts.path, run_as=ts.run_as, lua=ts.lua)   # no field tables on the wire
    with Client(address, timeout=30, set_as_default=False) as client:
        futures = client.map(run_jobs, [light] * len(batches), list(batches), pure=False)
        for i, f in enumerate(futures):     # input order; the cluster runs them all meanwhile
            try:
                yield i, f.result()
            except Exception as e:  # noqa: BLE001 - a lost worker or a bug there: recorded per file
                yield i, e


@dataclass
class BatchRows:
    """Rows of a batch run, and for each row: its pcap_file, all files it spans, its file's index."""

    rows: list[list[str]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    files: list[list[str]] = field(default_factory=list)
    sources: list[int] = field(default_factory=list)
    captures: list[Capture] = field(default_factory=list)


def toolkit_version() -> str:
    """This package's version plus a hash of the code that turns a capture into rows (part of cache keys)."""
    from . import __version__

    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in ("tshark.py", "sessions.py", "rows.py", "stitch.py"):
        try:
            h.update((here / name).read_bytes())
        except OSError:
            pass
    return f"{__version__}+{h.hexdigest()[:12]}"


def open_cache(ts: _tshark.Tshark, opts: BatchOptions) -> ResultCache:
    """The result cache for this tshark and plugin (one that never hits with --no-cache)."""
    root = (opts.cache_dir or default_cache_dir()) if opts.cache else None
    tv, pv = identity(ts)
    return ResultCache(Path(root) if root else None, tv, pv)


def run_captures(ts: _tshark.Tshark, captures: Sequence[Capture], report: "RunReport",
                 progress: Optional[Callable[[Capture], None]] = None,
                 options: Optional[BatchOptions] = None) -> BatchRows:
    """Every capture's session rows (cached, in parallel), in input order, sessions stitched across files."""
    from .sessions import _tshark_fields

    fields = _tshark_fields()
    opts = options or current_options()
    caps = order_captures(captures)
    cache = open_cache(ts, opts)
    optkey = [toolkit_version(), *fields]
    entries: list[Optional[Entry]] = [None] * len(caps)
    keys: list[str] = [""] * len(caps)
    ids: list[str] = [""] * len(caps)
    sizes: list[int] = [0] * len(caps)
    for i, cap in enumerate(caps):
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
    todo = [i for i in range(len(caps)) if entries[i] is None]
    batches = [[todo[k] for k in b] for b in plan([sizes[i] for i in todo], opts.workers, opts.small_file)]
    jobs = [[Job((Part(os.path.abspath(caps[i].path)),), caps[i].decode_args) for i in b] for b in batches]
    for bi, outcome in execute(ts, jobs, opts):
        _reraise(outcome, opts)
        for k, i in enumerate(batches[bi]):
            got = outcome[k] if not isinstance(outcome, BaseException) else Entry([], -1, f"{caps[i].path}: {outcome}")
            entries[i] = got = _checked(got, cache)
            cache.put(keys[i], got, len(fields), str(caps[i].path))
            if progress:
                progress(caps[i])
    final = [x or Entry([], -1, "not read") for x in entries]
    for cap, x in zip(caps, final):
        report.files.append(str(cap.path))
        if x.returncode != 0:
            (report.damaged if x.damaged or x.rows else report.failed)[str(cap.path)] = x.error
    per_file = [x.rows for x in final]
    runs = stitch.find_runs(per_file, fields) if opts.stitch and len(caps) > 1 else []
    merged = _stitch_runs(ts, caps, runs, ids, [*optkey, "stitch"], len(fields), cache, opts)
    rows, names, files, sources = stitch.apply(runs, merged, per_file, [c.name for c in caps], fields)
    return BatchRows(rows, names, files, sources, caps)


def _reraise(outcome: object, opts: BatchOptions) -> None:
    """A missing tshark/plugin stops the run; so does a bug here (on a cluster, a lost worker is per file)."""
    if isinstance(outcome, (TsharkNotFound, PluginNotLoaded)):
        raise outcome
    if isinstance(outcome, Exception) and not opts.scheduler and not isinstance(outcome, (SmtpdiagError, OSError)):
        raise outcome


def _checked(e: Entry, cache: ResultCache) -> Entry:
    """A worker with another tshark or plugin than this run's gives a failure, not foreign rows."""
    tv, pv = e.meta.get("tshark"), e.meta.get("plugin")
    if tv and pv and (tv, pv) != (cache.tshark_version, cache.plugin_version):
        return Entry([], -1, f"worker runs {tv} with plugin {pv}, this run uses {cache.tshark_version} with "
                             f"plugin {cache.plugin_version}: install the same on every worker")
    return e


def _stitch_runs(ts: _tshark.Tshark, caps: list[Capture], runs: Sequence[stitch.Run], ids: list[str],
                 optkey: list[str], n_fields: int, cache: ResultCache, opts: BatchOptions) -> list[Optional[Entry]]:
    """The rows of each stitch run: files head..last concatenated (cached like any file)."""
    keys: list[str] = []
    results: list[Optional[Entry]] = []
    for r in runs:
        parts = [f"{ids[i]}#{r.trim if i == r.last else ''}" for i in range(r.head, r.last + 1)]
        keys.append(cache.key(parts, [*caps[r.head].decode_args, *optkey]))
        results.append(cache.get(keys[-1], n_fields))
    todo = [k for k, e in enumerate(results) if e is None]
    jobs = [[Job(tuple(Part(os.path.abspath(caps[i].path), r.trim if i == r.last else None) for i in range(r.head, r.last + 1)),
                 caps[r.head].decode_args)] for r in (runs[k] for k in todo)]
    for bi, outcome in execute(ts, jobs, opts):
        _reraise(outcome, opts)
        k = todo[bi]
        e = Entry([], -1, str(outcome)) if isinstance(outcome, BaseException) else _checked(outcome[0], cache)
        results[k] = e
        cache.put(keys[k], e, n_fields, "stitch:" + ",".join(str(caps[i].path) for i in range(runs[k].head, runs[k].last + 1)))
    return results
