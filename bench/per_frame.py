#!/usr/bin/env python3
"""The plugin's per-frame cost in tshark, against raw tshark on the same capture and fields.

Three modes, each a pair of commands (tshark + plugin, raw tshark) that run at the same time,
each pinned to its own CPU, swapped every round (as bench/run.py's ratio rows do: both meet
the same machine); CPU time (user + system, wait4) is the measure:

- two_pass: `tshark -n -2 -r CAP -X lua_script:PLUGIN -Y smtpdiag -T fields -e BASE... -e
  smtpdiag.failure_cause -e smtp.data_terminated -e smtpdiag.detail` against
  `tshark -n -2 -r CAP -T fields -e BASE...` (the same fields and filter minus the plugin's).
- one_pass_filter: one pass with a display filter, which builds a tree for every frame and
  prints the matching frames' summary lines (what the GUI does on load with a filter):
  `tshark -n -r CAP -X lua_script:PLUGIN -Y 'smtp.failure_cause != "ok"'` against
  `tshark -n -r CAP -Y 'smtp.response.code != 250'` (about as many frames shown).
- one_pass_verbose: `tshark -n -r CAP [-X lua_script:PLUGIN] -V`: the whole tree of every frame.

With --floor, each mode also gets a floor row: the raw command with `bench/lua/fields.lua` loaded
(a Lua post-dissector that reads what smtpdiag.lua cannot do without: tcp.stream and tcp.len
through field extractors, the ports, number and time from pinfo, the TCP header and payload
bytes) against the raw command: what any Lua post-dissector that looks at TCP costs per frame.

Output goes to /dev/null. Default preferences (the GUI's), tshark from PATH.

    .venv/bin/python bench/per_frame.py                       # 200k packets, 3 rounds, all modes
    .venv/bin/python bench/per_frame.py --capture CAP --modes two_pass --rounds 5 --json out.json

`measure_two_pass()`, `measure_one_pass()` and `measure_mode()` return every round's numbers;
`table()` renders them as markdown (for bench/run.py).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from run import BASE_FIELDS, Measure, measure_rusage  # noqa: E402
from sections import PER_FRAME, with_section  # noqa: E402

PLUGIN = ROOT / "lua" / "smtpdiag.lua"
FLOOR = HERE / "lua" / "fields.lua"
PLUGIN_FIELDS = ["smtpdiag.failure_cause", "smtp.data_terminated", "smtpdiag.detail"]
FILTER_PLUGIN = 'smtp.failure_cause != "ok"'
FILTER_RAW = "smtp.response.code != 250"
MODES = ("two_pass", "one_pass_filter", "one_pass_verbose")


def commands(mode: str, capture: Path, plugin: Path = PLUGIN, tshark: str = "tshark",
             floor: bool = False) -> tuple[list[str], list[str]]:
    """(tshark + plugin, raw tshark) argv of a mode; floor: (raw + FLOOR Lua, raw)."""
    cap, lua = str(capture), ["-X", f"lua_script:{plugin}"]
    if floor:
        raw = commands(mode, capture, plugin, tshark)[1]
        return [raw[0], "-X", f"lua_script:{FLOOR}", *raw[1:]], raw
    fields = [x for f in BASE_FIELDS for x in ("-e", f)]
    if mode == "two_pass":
        extra = [x for f in PLUGIN_FIELDS for x in ("-e", f)]
        return ([tshark, "-n", "-2", "-r", cap, *lua, "-Y", "smtpdiag", "-T", "fields", *fields, *extra],
                [tshark, "-n", "-2", "-r", cap, "-T", "fields", *fields])
    if mode == "one_pass_filter":
        return [tshark, "-n", "-r", cap, *lua, "-Y", FILTER_PLUGIN], [tshark, "-n", "-r", cap, "-Y", FILTER_RAW]
    if mode == "one_pass_verbose":
        return [tshark, "-n", "-r", cap, *lua, "-V"], [tshark, "-n", "-r", cap, "-V"]
    raise ValueError(f"unknown mode {mode!r} (one of {', '.join(MODES)})")


@dataclass
class PairResult:
    """Every round of one mode: CPU and wall seconds of both commands, and their CPU ratio."""

    mode: str
    capture: str
    plugin_cmd: list[str]
    raw_cmd: list[str]
    plugin_cpu: list[float] = field(default_factory=list)
    raw_cpu: list[float] = field(default_factory=list)
    plugin_wall: list[float] = field(default_factory=list)
    raw_wall: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)
    floor: bool = False

    @property
    def ratios(self) -> list[float]:
        return [p / r for p, r in zip(self.plugin_cpu, self.raw_cpu)]

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)


def concurrent_pair(a: tuple[str, list[str]], b: tuple[str, list[str]], swap: bool) -> tuple[Measure, Measure]:
    """Run two (name, argv) at once, each pinned to its own CPU (swapped when `swap`); one after
    the other when fewer than two CPUs are usable."""
    usable = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(usable) < 2:
        return measure_rusage(*a), measure_rusage(*b)
    cpus = (usable[1], usable[0]) if swap else (usable[0], usable[1])
    out: list[Optional[Measure]] = [None, None]

    def one(i: int, spec: tuple[str, list[str]]) -> None:
        out[i] = measure_rusage(spec[0], spec[1], cpu=cpus[i])

    threads = [threading.Thread(target=one, args=(i, s)) for i, s in enumerate((a, b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if out[0] is None or out[1] is None:
        raise SystemExit("per_frame: a measurement failed")
    return out[0], out[1]


def check_plugin(plugin: Path, tshark: str = "tshark") -> None:
    """The plugin diagnoses a fixture when loaded with -X lua_script, and raw tshark does not
    know its fields (no copy in a personal plugins folder): otherwise the comparison is void."""
    fixture = str(ROOT / "fixtures" / "captures" / "ok.pcap")
    out = subprocess.run([tshark, "-n", "-r", fixture, "-X", f"lua_script:{plugin}", "-Y", "smtpdiag.failure_cause",
                          "-T", "fields", "-e", "smtpdiag.failure_cause"], capture_output=True, text=True).stdout
    if "ok" not in out.split():
        raise SystemExit(f"per_frame: {plugin} diagnoses nothing on {fixture}")
    raw = subprocess.run([tshark, "-n", "-r", fixture, "-Y", "smtpdiag.failure_cause"], capture_output=True, text=True)
    if raw.returncode == 0:
        raise SystemExit("per_frame: raw tshark knows the plugin's fields (a copy in a plugins folder?)")


def measure_mode(mode: str, capture: Path, plugin: Path = PLUGIN, rounds: int = 3, tshark: str = "tshark",
                 floor: bool = False) -> PairResult:
    """`rounds` concurrent pinned pairs of a mode's two commands (floor: the floor Lua's pair)."""
    if not floor:
        check_plugin(plugin, tshark)
    num, den = commands(mode, Path(capture), plugin, tshark, floor)
    res = PairResult(mode, str(capture), num, den, floor=floor)
    for i in range(max(1, rounds)):
        p, r = concurrent_pair((f"{mode}: tshark + plugin", num), (f"{mode}: raw tshark", den), swap=i % 2 == 1)
        for m in (p, r):
            if m.returncode != 0:
                raise SystemExit(f"per_frame: {m.name} exited {m.returncode}: {m.note}")
        res.plugin_cpu.append(p.cpu)
        res.raw_cpu.append(r.cpu)
        res.plugin_wall.append(p.wall)
        res.raw_wall.append(r.wall)
        res.load.append(max(p.load, r.load))
    return res


def measure_two_pass(capture: Path, plugin: Path = PLUGIN, rounds: int = 3, tshark: str = "tshark") -> PairResult:
    """Plugin in two-pass field mode against raw `tshark -2` on the same fields."""
    return measure_mode("two_pass", capture, plugin, rounds, tshark)


def measure_one_pass(capture: Path, plugin: Path = PLUGIN, rounds: int = 3, verbose: bool = False,
                     tshark: str = "tshark") -> PairResult:
    """One pass with a tree: a display filter (default) or -V, plugin against raw."""
    return measure_mode("one_pass_verbose" if verbose else "one_pass_filter", capture, plugin, rounds, tshark)


LABELS = {
    "two_pass": "two-pass fields (`-2 -Y smtpdiag -T fields`) / raw `-2 -T fields`",
    "one_pass_filter": "one pass with a tree (`-Y` filter) / raw one pass `-Y`",
    "one_pass_verbose": "one pass, every tree printed (`-V`) / raw `-V`",
}


FLOOR_LABELS = {
    "two_pass": "floor, two-pass fields: raw `-2 -T fields` + `bench/lua/fields.lua` / raw",
    "one_pass_filter": "floor, one pass with a tree: raw one pass `-Y` + `bench/lua/fields.lua` / raw",
    "one_pass_verbose": "floor, every tree printed: raw `-V` + `bench/lua/fields.lua` / raw",
}


def _label(r: PairResult) -> str:
    return FLOOR_LABELS[r.mode] if r.floor else LABELS[r.mode]


def table(results: Sequence[PairResult]) -> str:
    """Markdown: per mode, the fastest CPU s of each side, every round's CPU ratio and the median."""
    lines = ["| ratio | plugin CPU s (min) | raw CPU s (min) | CPU ratio, round by round | median | wall s plugin / raw (min) |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {_label(r)} | {min(r.plugin_cpu):.2f} | {min(r.raw_cpu):.2f} | "
                     f"{' / '.join(f'{x:.2f}' for x in r.ratios)} | {r.median:.2f}× | "
                     f"{min(r.plugin_wall):.2f} / {min(r.raw_wall):.2f} |")
    return "\n".join(lines)


def _command(argv: Optional[Sequence[str]], drop: Sequence[str] = ()) -> str:
    """This run's command line, without the options in `drop` (and their values)."""
    args, out = list(argv if argv is not None else sys.argv[1:]), []
    skip = False
    for x in args:
        if skip:
            skip = False
        elif x in drop:
            skip = True
        elif not any(x.startswith(d + "=") for d in drop):
            out.append(x)
    return " ".join([".venv/bin/python bench/per_frame.py", *out])


def _gui(path: Optional[Path]) -> str:
    """The table part of a saved `bench/gui.py measure` output ('' without one)."""
    if not path:
        return ""
    text = path.read_text()
    start = text.find("\nWireshark ")
    return text[start + 1:] if start >= 0 else text


TARGET = 1.5   # issue 16: the plugin's per-frame path at most 1.5x raw tshark


def section(results: Sequence[PairResult], command: str, tshark: str = "tshark", taken: Optional[float] = None,
            gui: str = "") -> str:
    """bench/RESULTS.md's per-frame section: the table, the target and what was run."""
    import datetime
    version = subprocess.run([tshark, "-v"], capture_output=True, text=True).stdout.splitlines()[:1]
    stamp = datetime.datetime.fromtimestamp(taken, datetime.timezone.utc) if taken else \
        datetime.datetime.now(datetime.timezone.utc)
    when = stamp.strftime("%Y-%m-%d %H:%M UTC")
    verdicts = [f"{LABELS[r.mode].split(' / ')[0]}: median {r.median:.2f}× against ≤ {TARGET}× — "
                + ("met" if r.median <= TARGET else "**not met**") for r in results if not r.floor]
    verdicts += [f"{FLOOR_LABELS[r.mode].split(':')[0]}: median {r.median:.2f}× before any diagnosis (a Lua "
                 "post-dissector that only reads the frame's TCP stream, length, ports and bytes)"
                 for r in results if r.floor]
    lines = [PER_FRAME[0], "", "### The plugin's per-frame cost with a tree (tshark -2, one pass with a filter)", "",
             f"Measured {when}, {version[0].rstrip('.') if version else tshark}, capture `{Path(results[0].capture).name}` "
             "(bench/make_capture.py). Each round runs the two commands at the same time, each pinned to its "
             "own CPU (swapped every round); CPU time is the measure.", "", table(results), "",
             *[f"- {v}" for v in verdicts], "",
             "Commands (plugin / raw): " + "; ".join(f"`{' '.join(r.plugin_cmd)}` / `{' '.join(r.raw_cmd)}`"
                                                     for r in results), "",
             f"Reproduce: `{command}`.", ""]
    if gui:
        lines += ["The same in the Wireshark GUI, run as an unprivileged analyst under Xvfb (load, re-filter, clear; "
                  "`.venv/bin/python bench/gui.py measure --capture CAP --configs raw,plugin`, its output given "
                  "with `--gui FILE`):", "", gui.strip(), ""]
    lines.append(PER_FRAME[1])
    return "\n".join(lines).replace(str(ROOT) + "/", "")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capture", type=Path, help="default bench/out/mail-200000-port25.pcap (built if missing)")
    ap.add_argument("--plugin", type=Path, default=PLUGIN)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--tshark", default="tshark")
    ap.add_argument("--floor", action="store_true", help="also measure each mode's floor (bench/lua/fields.lua)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--load", type=Path, help="the rounds of an earlier --json run, instead of measuring")
    ap.add_argument("--results", type=Path, help="put the table into this RESULTS.md (its per-frame section)")
    ap.add_argument("--gui", type=Path, help="with --results: also put in this output of `bench/gui.py measure` (from its "
                                              "'Wireshark' line on)")
    a = ap.parse_args(argv)
    if a.load:
        results = [PairResult(**{k: v for k, v in d.items() if k != "ratios"}) for d in json.loads(a.load.read_text())]
        print(table(results))
        if a.results:
            cmd = _command(argv, drop=("--load", "--gui"))
            old = a.results.read_text() if a.results.exists() else ""
            a.results.write_text(with_section(old, section(results, cmd, a.tshark, a.load.stat().st_mtime, _gui(a.gui)),
                                              PER_FRAME))
        return 0
    cap = a.capture
    if cap is None:
        cap = HERE / "out" / "mail-200000-port25.pcap"
        if not cap.exists():
            from make_capture import build
            cap.parent.mkdir(parents=True, exist_ok=True)
            build(200_000, cap)
    results = [measure_mode(m, cap, a.plugin.resolve(), a.rounds, a.tshark, floor)
               for m in a.modes.split(",") for floor in ((False, True) if a.floor else (False,))]
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps([{**asdict(r), "ratios": r.ratios} for r in results], indent=1))
    print()
    print(table(results))
    if a.results:
        cmd = _command(argv, drop=("--gui",))
        old = a.results.read_text() if a.results.exists() else ""
        a.results.write_text(with_section(old, section(results, cmd, a.tshark, gui=_gui(a.gui)), PER_FRAME))
    return 0


if __name__ == "__main__":
    sys.exit(main())
