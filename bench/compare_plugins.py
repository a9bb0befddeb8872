#!/usr/bin/env python3
"""Record what a plugin file outputs on every fixture and corpus capture, to compare two plugins.

    python bench/compare_plugins.py record PLUGIN.lua OUT_DIR [--versions 4.0,4.4,4.6]
    python bench/compare_plugins.py diff OLD_DIR NEW_DIR
    python bench/compare_plugins.py time OLD.lua NEW.lua CAPTURE [--rounds 6] [--mode batch|two_pass]

`record` runs, for each capture and each tshark (4.0 = the system tshark, as the current user;
4.4/4.6 = .tshark-releases/V/bin/tshark, as nobody when run as root), the toolkit's batch run
(summary file), a two-pass `-T fields` run with every smtpdiag field, and `-z expert`; each output
goes to OUT_DIR/V/CAPTURE.{summary,fields,expert} (stderr beside it), what the plugin registers
(fields, expert infos, preferences) to OUT_DIR/V/REGISTRY. `diff` says which differ. `time` runs
both plugins on one capture with the system tshark at the same time, each pinned to its own CPU
(swapped every round), and prints each round's CPU-time ratio new/old and their geometric mean.
Stdlib only: a refactor of the plugin must leave every one of these files byte-identical.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CAPTURE_DIRS = [ROOT / "fixtures" / "captures", ROOT.parent / "shared" / "corpus" / "zeek"]
FAST_PREFS = ["-o", "smtp.desegment_data:FALSE", "-o", "smtp.desegment_lines:FALSE",
              "-o", "pop.desegment_data:FALSE", "-o", "tcp.analyze_sequence_numbers:FALSE",
              "-o", "tcp.calculate_timestamps:FALSE"]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def tshark_for(version: str) -> list[str]:
    """The command prefix that runs tshark `version` so that it loads Lua scripts."""
    if version == "4.0":
        return ["/usr/bin/tshark"]
    exe = ROOT / ".tshark-releases" / version / "bin" / "tshark"
    if not exe.exists():
        sys.exit(f"compare_plugins: no tshark {version} at {exe}")
    prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
              "env", f"HOME={tempfile.gettempdir()}"] if IS_ROOT else []
    return [*prefix, str(exe)]


def captures() -> list[Path]:
    out: list[Path] = []
    for d in CAPTURE_DIRS:
        if d.is_dir():
            out += sorted(p for p in d.iterdir() if p.is_file() and ".pcap" in p.name)
    return out


def plugin_fields(ts: list[str], plugin: str) -> list[str]:
    """Every field the plugin registers (not its expert infos), in tshark's order."""
    res = subprocess.run([*ts, "-G", "fields", "-X", f"lua_script:{plugin}"], capture_output=True, text=True)
    names = []
    for line in res.stdout.splitlines():
        parts = line.split("\t")
        if parts[0] == "F" and (parts[2].startswith("smtpdiag.") or parts[2] in
                                ("smtp.data_terminated", "smtp.failure_cause")) \
                and not parts[2].startswith("smtpdiag.expert."):
            names.append(parts[2])
    if not names:
        sys.exit(f"compare_plugins: {plugin} registered no field in {' '.join(ts)}")
    return sorted(names)


def registry(ts: list[str], plugin: str) -> bytes:
    """What the plugin registers: its fields and expert infos (-G fields), protocols, preferences."""
    out: list[str] = []
    for report in ("fields", "protocols"):
        res = subprocess.run([*ts, "-G", report, "-X", f"lua_script:{plugin}"], capture_output=True, text=True)
        out += [l for l in res.stdout.splitlines() if "smtpdiag" in l or "smtp.data_terminated" in l
                or "smtp.failure_cause" in l]
    res = subprocess.run([*ts, "-G", "defaultprefs", "-X", f"lua_script:{plugin}"], capture_output=True, text=True)
    lines = res.stdout.splitlines()
    idx = [i for i, l in enumerate(lines) if l.startswith("#smtpdiag.")]
    if idx:
        out += lines[max(0, idx[0] - 3): idx[-1] + 1]
    return ("\n".join(out) + "\n").encode()


def record_one(ts: list[str], plugin: str, fields: list[str], cap: Path, out: Path, tmp: Path) -> None:
    """The three outputs of one capture in one tshark."""
    tag = f"{cap.parent.name}-{cap.name}"
    summary = tmp / f"{out.name}-{tag}.tsv"  # one per tshark: another user's file could not be overwritten
    summary.unlink(missing_ok=True)
    runs = {
        "summary": [*ts, "-n", "-q", "-r", str(cap), "-X", f"lua_script:{plugin}",
                    "-o", f"smtpdiag.summary_file:{summary}", *FAST_PREFS, "-Y", "frame"],
        "fields": [*ts, "-n", "-2", "-r", str(cap), "-X", f"lua_script:{plugin}", "-Y", "smtpdiag",
                   "-T", "fields", "-e", "frame.number", *[x for f in fields for x in ("-e", f)]],
        "expert": [*ts, "-n", "-q", "-r", str(cap), "-X", f"lua_script:{plugin}", "-z", "expert"],
    }
    for kind, argv in runs.items():
        res = subprocess.run(argv, capture_output=True)
        body = summary.read_bytes() if kind == "summary" and summary.exists() else res.stdout
        (out / f"{tag}.{kind}").write_bytes(body)
        (out / f"{tag}.{kind}.err").write_bytes(f"exit {res.returncode}\n".encode() + res.stderr)


def record(plugin: Path, out_dir: Path, versions: list[str], jobs: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="compare-plugins-"))
    os.chmod(tmp, 0o777)
    snap = tmp / "plugin.lua"  # nobody must read it, wherever the original is
    shutil.copyfile(plugin, snap)
    os.chmod(snap, 0o644)
    caps = captures()
    try:
        for v in versions:
            ts = tshark_for(v)
            fields = plugin_fields(ts, str(snap))
            out = out_dir / v
            out.mkdir(parents=True, exist_ok=True)
            (out / "FIELDS").write_text("\n".join(fields) + "\n")
            (out / "REGISTRY").write_bytes(registry(ts, str(snap)))
            with ThreadPoolExecutor(jobs) as pool:
                list(pool.map(lambda c: record_one(ts, str(snap), fields, c, out, tmp), caps))
            print(f"{v}: {len(caps)} captures x 3 outputs -> {out}", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def diff(old: Path, new: Path) -> int:
    names = sorted({p.relative_to(old) for p in old.rglob("*") if p.is_file()}
                   | {p.relative_to(new) for p in new.rglob("*") if p.is_file()})
    differ = [n for n in names if not (old / n).is_file() or not (new / n).is_file()
              or (old / n).read_bytes() != (new / n).read_bytes()]
    for n in differ:
        print(f"differs: {n}")
    print(f"{len(names) - len(differ)} identical, {len(differ)} different")
    return 1 if differ else 0


def time_pair(old: Path, new: Path, capture: Path, rounds: int, mode: str) -> list[float]:
    """CPU time (user + system) ratios new/old, one per round, the two runs concurrent and pinned."""
    ratios = []
    for r in range(rounds):
        cpus = (0, 1) if r % 2 == 0 else (1, 0)
        tmp = Path(tempfile.mkdtemp(prefix="compare-plugins-time-"))
        procs = {}
        for name, plugin, cpu in (("old", old, cpus[0]), ("new", new, cpus[1])):
            if mode == "batch":
                argv = ["tshark", "-n", "-q", "-r", str(capture), "-X", f"lua_script:{plugin}",
                        "-o", f"smtpdiag.summary_file:{tmp / name}.tsv", *FAST_PREFS, "-Y", "frame"]
            else:
                argv = ["tshark", "-n", "-2", "-r", str(capture), "-X", f"lua_script:{plugin}", "-Y", "smtpdiag",
                        "-T", "fields", "-e", "frame.number", "-e", "smtpdiag.failure_cause",
                        "-e", "smtpdiag.command", "-e", "smtpdiag.reply_code"]
            proc = subprocess.Popen(["taskset", "-c", str(cpu), *argv],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs[proc.pid] = name
        cpu_s: dict[str, float] = {}
        while procs:
            pid, _status, ru = os.wait4(-1, 0)
            if pid in procs:
                cpu_s[procs.pop(pid)] = ru.ru_utime + ru.ru_stime
        same = ""
        if mode == "batch":
            same = ", summaries identical" if (tmp / "old.tsv").read_bytes() == (tmp / "new.tsv").read_bytes() \
                else ", SUMMARIES DIFFER"
        shutil.rmtree(tmp, ignore_errors=True)
        ratios.append(cpu_s["new"] / cpu_s["old"])
        print(f"round {r + 1}: old {cpu_s['old']:.2f} s (CPU {cpus[0]}), new {cpu_s['new']:.2f} s "
              f"(CPU {cpus[1]}), new/old {ratios[-1]:.3f}{same}", flush=True)
    return ratios


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("plugin", type=Path)
    r.add_argument("out", type=Path)
    r.add_argument("--versions", default="4.0,4.4,4.6")
    r.add_argument("--jobs", type=int, default=2)
    d = sub.add_parser("diff")
    d.add_argument("old", type=Path)
    d.add_argument("new", type=Path)
    tm = sub.add_parser("time")
    tm.add_argument("old", type=Path)
    tm.add_argument("new", type=Path)
    tm.add_argument("capture", type=Path)
    tm.add_argument("--rounds", type=int, default=6)
    tm.add_argument("--mode", choices=("batch", "two_pass"), default="batch")
    a = ap.parse_args()
    if a.cmd == "time":
        ratios = time_pair(a.old.resolve(), a.new.resolve(), a.capture.resolve(), a.rounds, a.mode)
        print(f"geometric mean new/old over {len(ratios)} rounds: "
              f"{math.exp(sum(map(math.log, ratios)) / len(ratios)):.3f}")
        return 0
    if a.cmd == "record":
        record(a.plugin.resolve(), a.out, a.versions.split(","), a.jobs)
        return 0
    return diff(a.old, a.new)


if __name__ == "__main__":
    sys.exit(main())
