#!/usr/bin/env python3
"""Every core on one capture, and ring-buffer sets: wall time against one raw tshark and Suricata 7.

On one capture (bench/make_capture.py, 1 M packets by default), each in its own child process,
wall and CPU time and peak memory of the whole process tree:
- one raw `tshark -T fields` (bench/run.py's fields): the floor a tshark-based tool is held to;
- `smtpdiag sessions CAP -j N --no-cache` for each N (N > 1 cuts the capture into N parts read at
  once when it is at least 32 MB), its rows checked against N = 1 (all columns but `stream`);
- Suricata 7 with 1 and N threads (bench/suricata.py; skipped with --no-suricata);
- the capture cut by `editcap -c` into 2, 4, 8 ring-buffer files (in the capture's own format, and 2
  files as pcapng, what dumpcap writes), `smtpdiag sessions DIR -j 2`:
  every row checked against the whole file's (frame numbers as runner/stitch.py counts them).
The table goes into RESULTS.md between the markers below (bench/run.py keeps it).

    .venv/bin/python bench/cores.py
    .venv/bin/python bench/cores.py --capture /tmp/x.pcap --jobs 1,2 --rings 2,4,8 --rounds 3

Wall-clock ratios only mean something on a quiet machine: the 1-minute load average is printed
beside every run.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from run import BASE_FIELDS, OUT, SMTPDIAG, Measure, measure_rusage  # noqa: E402

from sections import CORES, with_section  # noqa: E402

BEGIN, END = CORES
FRAMES = re.compile(r"\b(frames? )(\d+)(?:-(\d+))?")


def packets(*captures: Path) -> list[int]:
    out = subprocess.run(["capinfos", "-cMT", "-r", *map(str, captures)], capture_output=True, text=True, check=True)
    return [int(line.split("\t")[-1]) for line in out.stdout.splitlines() if line.strip()]


def same_rows(got, whole, counts: Optional[list[int]] = None, names: Optional[list[str]] = None) -> str:
    """'yes', or what differs; with ring files, frame numbers are first counted in the whole capture."""
    import pandas as pd
    if len(got) != len(whole):
        return f"no: {len(got):,} rows, whole file {len(whole):,}"
    got = got.copy()
    if counts and names:
        base = {n: sum(counts[:i]) for i, n in enumerate(names)}
        off = got["pcap_file"].astype(str).map(base).astype(int)
        got["first_frame"] = got["first_frame"] + off
        got["last_frame"] = got["last_frame"] + off
        got["detail"] = [FRAMES.sub(lambda m: m.group(1) + str(int(m.group(2)) + o)
                                    + (f"-{int(m.group(3)) + o}" if m.group(3) else ""), d) if isinstance(d, str)
                         else d for d, o in zip(got["detail"], off)]
    bad = []
    for col in whole.columns:
        if col in ("stream", "pcap_file", "pcap_files", "source"):   # where each file sits, not what it holds
            continue
        a = [str(list(x)) if hasattr(x, "__len__") and not isinstance(x, str) else ("" if pd.isna(x) else str(x))
             for x in got[col]]
        b = [str(list(x)) if hasattr(x, "__len__") and not isinstance(x, str) else ("" if pd.isna(x) else str(x))
             for x in whole[col]]
        n = sum(1 for x, y in zip(a, b) if x != y)
        if n:
            bad.append(f"{col} ({n})")
    return "yes" if not bad else "no: " + ", ".join(bad)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capture", type=Path, default=OUT / "mail-1000000-port25.pcap")
    ap.add_argument("--jobs", default=f"1,2{',' + str(os.cpu_count()) if (os.cpu_count() or 1) > 2 else ''}")
    ap.add_argument("--rings", default="2,4,8,2:pcapng",
                    help="ring-buffer sets to cut the capture into: N, or N:FORMAT (editcap -F; default the "
                         "capture's own format; '' for none)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds: each runs every command once (ratios per round, median)")
    ap.add_argument("--no-suricata", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    a = ap.parse_args(argv)
    import pandas as pd

    from make_capture import build
    from pyshark_tools import Tshark
    from pyshark_tools.runner.plan import sniff_input

    cap = a.capture
    if not cap.exists():
        print(f"cores: building {cap}", flush=True)
        build(1_000_000, cap)
    n_packets = packets(cap)[0]
    ts = Tshark.discover()
    tmp = Path(tempfile.mkdtemp(prefix="cores-", dir=OUT if OUT.exists() else None))
    jobs = [int(j) for j in a.jobs.split(",") if j]
    fields = [x for f in BASE_FIELDS for x in ("-e", f)]
    # (label, measure name, argv, output parquet, ring files): every command runs once per round,
    # all in the same round one after the other, so each ratio compares runs minutes apart at most
    specs: list[tuple[str, str, list[str], Optional[Path], list[Path]]] = [
        ("one raw `tshark -T fields`", "raw tshark -T fields",
         [ts.path, "-n", "-r", str(cap), "-T", "fields", *fields], None, [])]
    rows: list[tuple[str, Measure, list[float], str]] = []
    try:
        for j in jobs:
            out = tmp / f"j{j}.parquet"
            specs.append((f"`smtpdiag sessions -j {j}`", f"smtpdiag sessions -j {j}",
                          [str(SMTPDIAG), "-q", "sessions", str(cap), "-j", str(j), "--no-cache", "--format",
                           "parquet", "-o", str(out)], out, []))
        own = "pcapng" if sniff_input(str(cap))[0] == "pcapng" else "pcap"
        for spec in [x for x in a.rings.split(",") if x]:
            n, _, fmt = spec.partition(":")
            fmt = fmt or own
            ring = tmp / f"ring{n}{fmt}"
            ring.mkdir()
            subprocess.run(["editcap", "-F", fmt, "-c", str(-(-n_packets // int(n))), str(cap), str(ring / "mail.pcap")],
                           check=True)
            out = tmp / f"ring{n}{fmt}.parquet"
            specs.append((f"`smtpdiag sessions DIR -j 2`, {n} ring-buffer files ({fmt})",
                          f"smtpdiag sessions, {n} {fmt} files",
                          [str(SMTPDIAG), "-q", "sessions", str(ring), "-j", "2", "--no-cache", "--format",
                           "parquet", "-o", str(out)], out, sorted(ring.iterdir())))
        runs: list[list[Measure]] = [[] for _ in specs]
        for r in range(max(1, a.rounds)):
            order = list(enumerate(specs))
            for k, (_, name, cmd, _, _) in (order if r % 2 == 0 else order[::-1]):   # no command always last
                runs[k].append(measure_rusage(name, cmd))
        # the whole file read the way a ring-buffer set is (-j 2), for the sets' own ratio
        same_j = next((k for k, s in enumerate(specs) if s[1] == "smtpdiag sessions -j 2"), None)
        whole = None
        for k, (label, _, _, out, files) in enumerate(specs):
            ratios = [m.wall / r.wall for m, r in zip(runs[k], runs[0])]
            note = ""
            if files and same_j is not None:
                to_whole = [m.wall / w.wall for m, w in zip(runs[k], runs[same_j])]
                note = (f"wall / the whole file's `-j 2` run, round by round: "
                        f"{' / '.join(f'{x:.2f}' for x in to_whole)} (median {statistics.median(to_whole):.2f}×); ")
            if out is not None:
                df = pd.read_parquet(out)
                if files:
                    same = same_rows(df, whole, packets(*files), [f.name for f in files]) if whole is not None else "?"
                    note += f"{len(df):,} rows; every row equal to the whole file's: {same}"
                elif whole is None:
                    whole, note = df, f"{len(df):,} rows"
                else:
                    note = f"{len(df):,} rows; equal to -j {jobs[0]}: {same_rows(df, whole)}"
            rows.append((label, min(runs[k], key=lambda m: m.wall), ratios, note))
        if not a.no_suricata:
            from suricata import run_suricata
            for t in sorted({1, max(jobs)}):
                r = run_suricata(cap, threads=t)
                rows.append((f"Suricata 7, {t} thread{'s' if t > 1 else ''}",
                             Measure(f"suricata {t}", [], r.wall, r.cpu, r.maxrss_mb, load=r.load), [],
                             f"{r.smtp_flows:,} SMTP flows"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    raw_wall = rows[0][1].wall
    table = [f"{BEGIN}", "", f"### Every core on one capture; ring-buffer sets ({n_packets:,} packets, "
             f"{cap.stat().st_size / 1e6:.0f} MB, {os.cpu_count()} CPUs)", "",
             "| command | wall s (fastest) | CPU s | wall / raw tshark, round by round | median | peak memory (tree) "
             "| load | rows |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, m, ratios, note in rows:
        by_round = " / ".join(f"{x:.2f}" for x in ratios) if ratios else f"{m.wall / raw_wall:.2f} (to the fastest)"
        med = f"{statistics.median(ratios):.2f}×" if ratios else "–"
        table.append(f"| {name} | {m.wall:.1f} | {m.cpu:.1f} | {by_round} | {med} | "
                     f"{max(m.tree_mb, m.maxrss_mb):.0f} MB | {m.load:.1f} | {note} |")
    command = " ".join([".venv/bin/python bench/cores.py", *(argv if argv is not None else sys.argv[1:])])
    table += ["", f"Command: `{command}`. Each round runs every command once, one after the other (every other "
                  "round in the reverse order); a round's "
                  "ratio divides a command's wall time by raw tshark's in the same round, since this machine's "
                  "speed drifts between minutes; the verdict goes by the median. Load: the 1-minute load average "
                  "when the fastest run ended.", "", END]
    text = "\n".join(table)
    print(text)
    a.out.write_text(with_section(a.out.read_text() if a.out.exists() else "", text, CORES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
