"""Follow a dumpcap ring buffer: dissect each file once dumpcap has closed it, keep tables up to date.

dumpcap (`-b files:N -b duration:S`) writes `name_00001_YYYYMMDDhhmmss.pcapng`, `..._00002_...`;
a file is closed when a newer one of its set appears, the newest is in progress (`final=True`:
the capture has stopped, the newest is complete too). Each new closed file becomes one Parquet
partition per table under OUT (`sessions.parts/`, `transactions.parts/`), and the whole tables
are rewritten as `OUT/sessions.parquet` and `OUT/transactions.parquet`; the HTML report is
regenerated in `OUT/report/`.

Sessions that cross a file boundary are stitched (runner/stitch.py): the files they may still
continue from are "unsettled" and read again (from the result cache) with each new file, their
partitions rewritten; a settled file's partition is never touched again, so files dumpcap has
deleted keep their rows. State (files done, which are unsettled) is in `OUT/watch-state.json`.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import pandas as pd

from .atomic import write_text, write_with
from .errors import InputError, ReadLog, SmtpdiagError
from .report.folder import write_report_from_tables
from .runner.options import RunOptions, current_options
from .exports.formats import ExportKind, is_export_name
from .runner.plan import Capture, decode_as_args, is_capture_name, ring_key, sniff_input
from .runner.run import run_captures
from .runner.stitch import MAX_SPAN
from .tables.schema import CATEGORY_COLUMNS, LIST_COLUMNS, SUMMARY_FIELDS
from .tables.sessions import sessions_frame
from .tables.transactions import transactions_frame
from .tshark.program import Tshark

STATE = "watch-state.json"
TABLES = ("sessions", "transactions")


@dataclass
class State:
    """Files done (in order, with their partition number) and which are not settled yet."""

    done: list[str] = field(default_factory=list)
    unsettled: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, out: Path) -> "State":
        """The state kept in OUT (none yet: a fresh one); a malformed file is a one-line error, never
        silently replaced (that would rewrite every partition)."""
        path = out / STATE
        try:
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            return cls()
        except OSError as e:
            raise InputError(f"{path}: cannot read the watch state ({e.strerror})") from None
        try:
            d = json.loads(text)
            done, unsettled = d["done"], d.get("unsettled", [])
            if not (isinstance(done, list) and isinstance(unsettled, list)
                    and all(isinstance(n, str) for n in done + unsettled)):
                raise TypeError("'done' and 'unsettled' must be lists of file names")
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise InputError(f"{path}: malformed watch state ({type(e).__name__}: {e}); "
                             "move it away to process every file again") from None
        return cls(list(done), list(unsettled))

    def save(self, out: Path) -> None:
        write_text(out / STATE, json.dumps({"done": self.done, "unsettled": self.unsettled}, indent=1))


def ring_files(directory: Path) -> list[Path]:
    """Capture files of DIR in writing order: ring-buffer members by index (one set per folder), else by mtime;
    then the exports sensors dropped there (by mtime)."""
    files = [p for p in directory.iterdir() if p.is_file() and is_capture_name(p.name)]
    exports = sorted((p for p in files if is_export_name(p.name)), key=lambda p: (p.stat().st_mtime_ns, p.name))
    files = [p for p in files if not is_export_name(p.name)]
    ring = [p for p in files if ring_key(p)]
    if ring:
        return sorted(ring, key=ring_key) + exports  # type: ignore[arg-type,operator]
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name)) + exports


@dataclass
class Cycle:
    """What one pass over the directory did."""

    new: list[str] = field(default_factory=list)
    sessions: int = 0
    read_log: ReadLog = field(default_factory=ReadLog)
    html: Optional[Path] = None


def _part(out: Path, table: str, seq: int, name: str) -> Path:
    return out / f"{table}.parts" / f"{seq:06d}_{Path(name).stem}.parquet"


def _write(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_with(path, lambda tmp: df.to_parquet(tmp, index=False))


def read_tables(out: Path) -> dict[str, pd.DataFrame]:
    """The whole tables from their partitions, in file order, with the usual dtypes."""
    result = {}
    for table in TABLES:
        parts = sorted((out / f"{table}.parts").glob("*.parquet"))
        frames = [pd.read_parquet(p) for p in parts]
        frames = [f for f in frames if len(f)] or frames[:1]
        df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        for c in df.columns:
            if c in LIST_COLUMNS:
                df[c] = [list(v) if v is not None and not isinstance(v, str) else [] for v in df[c]]
            elif c in CATEGORY_COLUMNS:
                df[c] = df[c].astype("category")
        result[table] = df
    return result


def process(directory: str | Path, out_dir: str | Path, ts: Tshark, decode_as: Sequence[str] = (),
            final: bool = False, options: Optional[RunOptions] = None,
            progress: Optional[Callable[[Capture], None]] = None) -> Cycle:
    """One pass: dissect the files closed since the last pass, update partitions, tables and report."""
    directory, out = Path(directory), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = State.load(out)
    files = ring_files(directory)
    kinds = {p.name: _kind(p) for p in files}
    # The newest capture may still be written; an export is dropped whole (write it elsewhere, then rename).
    pcaps = [p for p in files if kinds[p.name][1] is None]
    closed = files if final or not pcaps else [p for p in files if p != pcaps[-1]]
    cycle = Cycle(new=[p.name for p in closed if p.name not in state.done])
    if not cycle.new:
        return cycle
    present = {p.name: p for p in closed}
    redo = [n for n in state.unsettled if n in present]
    context = _context(out, state, redo, present)
    window = context + redo + cycle.new
    dargs = decode_as_args(decode_as)
    caps = [Capture(present[n], kinds[n][0], dargs, kinds[n][1]) for n in window]
    got = run_captures(ts, caps, SUMMARY_FIELDS, cycle.read_log, progress, options or current_options())
    for name in cycle.new:
        state.done.append(name)
    for k, cap in enumerate(got.captures):
        name = cap.path.name            # as in the state (cap.name is the text shown in tables)
        if name in context:
            continue                    # settled: its partition stays as written
        own = got.of_capture(k)
        seq = state.done.index(name)
        _write(sessions_frame(own), _part(out, "sessions", seq, name))
        _write(transactions_frame(own), _part(out, "transactions", seq, name))
    tables = read_tables(out)
    state.unsettled = _unsettled(tables["sessions"], state.done)
    for table, df in tables.items():
        _write(df, out / f"{table}.parquet")
    state.save(out)
    cycle.sessions = len(tables["sessions"])
    cycle.html = write_report_from_tables(tables["sessions"], tables["transactions"], out / "report",
                                          read_log=cycle.read_log)
    return cycle


def _kind(path: Path) -> tuple[str, Optional[ExportKind]]:
    """The capture's format, or what export it is; an unreadable file is left to tshark, whose failure is
    then recorded."""
    try:
        return sniff_input(str(path))
    except InputError:
        return "unknown", None


def _context(out: Path, state: State, redo: list[str], present: dict[str, Path]) -> list[str]:
    """Settled files that start sessions continuing into the files read again: read, not rewritten.

    Without them, the continuation of such a session would come back as a midstream row of its own.
    """
    table = out / "sessions.parquet"
    if not redo or not table.is_file():
        return []
    pos = {n: i for i, n in enumerate(state.done)}
    start = pos.get(redo[0], 0)
    s = pd.read_parquet(table, columns=["pcap_file", "pcap_files"])
    first = start
    for head, files in zip(s["pcap_file"].astype(str), s["pcap_files"]):
        if pos.get(head, start) < start and set(files) & set(redo):
            first = min(first, pos[head])
    return [n for n in state.done[first:start] if n in present]


def _unsettled(s: pd.DataFrame, done: list[str]) -> list[str]:
    """Files a session may still continue from: the newest, and back to the oldest file that starts
    a session still open at the end of a recent file (within MAX_SPAN files)."""
    first = len(done) - 1
    if len(s):
        pos = {n: i for i, n in enumerate(done)}
        for head, files, anomalies in zip(s["pcap_file"].astype(str), s["pcap_files"], s["anomalies"]):
            if "open_at_capture_end" in anomalies and head in pos and len(files) \
                    and first - pos.get(files[-1], -MAX_SPAN) < MAX_SPAN:
                first = min(first, pos[head])
    return done[first:]


def watch(directory: str | Path, out_dir: str | Path, ts: Tshark, decode_as: Sequence[str] = (),
          once: bool = False, final: bool = False, interval: float = 2.0,
          on_cycle: Optional[Callable[[Cycle], None]] = None, stop: Optional[Callable[[], bool]] = None,
          options: Optional[RunOptions] = None) -> ReadLog:
    """Process DIR now and then every `interval` seconds; return the problems seen.

    `once`: a single pass. `final`: the capture has stopped, the newest file is complete (implies `once`).
    """
    ts.check_plugin()
    total = ReadLog()
    while True:
        try:
            cycle = process(directory, out_dir, ts, decode_as, final=final, options=options)
        except SmtpdiagError:
            raise                       # the state, the folder, the set-up: the next pass would fail the same way
        except Exception as e:  # noqa: BLE001 - one cycle's failure never stops a long-running watch
            if once or final:
                raise
            cycle = Cycle()
            cycle.read_log.failed[str(directory)] = f"{directory}: this pass failed ({type(e).__name__}: {e}); " \
                                                    "trying again"
        total.add(cycle.read_log)
        if on_cycle:
            on_cycle(cycle)
        if once or final or (stop and stop()):
            return total
        time.sleep(interval)


