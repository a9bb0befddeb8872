#!/usr/bin/env python3
"""Suricata 7 (Debian trixie's, unpacked beside the system) on a capture: time and SMTP count.

What an analyst would run instead of smtpdiag to get every SMTP session of a capture logged:
Suricata offline (`-r`), no rules, checksum checks off (`-k none`), a minimal configuration
whose only output is eve.json with `smtp` events (one per SMTP transaction; the SMTP parser's
MIME decoding as in Debian's shipped configuration). One thread is `--runmode single`; N > 1
is `--runmode autofp` with N flow workers (plus its reader thread), the process pinned to N
CPUs. The binary comes from `bench/suricata-release DEST` (built into bench/out/suricata when
missing).

    .venv/bin/python bench/suricata.py bench/out/mail-1000000-port25.pcap --threads 1,2 --rounds 3
    .venv/bin/python bench/suricata.py CAP --compare      # also count `smtpdiag sessions` / transactions

`run_suricata()` returns one run's wall/CPU time, peak RSS and counts (for bench/run.py).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from run import measure_rusage  # noqa: E402

RELEASE = HERE / "out" / "suricata"

CONFIG = """%YAML 1.1
---
vars:
  address-groups:
    HOME_NET: "[10.0.0.0/8,192.168.0.0/16,172.16.0.0/12]"
    EXTERNAL_NET: "any"
  port-groups: {{}}
default-log-dir: {out}
classification-file: {etc}/classification.config
reference-config-file: {etc}/reference.config
default-rule-path: {out}
rule-files: []
logging:
  default-log-level: notice
  outputs:
    - console:
        enabled: yes
    - file:
        enabled: yes
        level: info
        filename: suricata.log
outputs:
  - eve-log:
      enabled: yes
      filetype: regular
      filename: eve.json
      types:
        - smtp
  - stats:
      enabled: no
app-layer:
  protocols:
    smtp:
      enabled: yes
      raw-extraction: no
      mime:
        decode-mime: yes
        decode-base64: yes
        decode-quoted-printable: yes
        header-value-depth: 2000
        extract-urls: yes
        body-md5: no
      inspected-tracker:
        content-limit: 100000
        content-inspect-min-size: 32768
        content-inspect-window: 4096
pcap-file:
  checksum-checks: no
stream:
  checksum-validation: no
threading:
  set-cpu-affinity: no
  detect-thread-ratio: {ratio}
"""


def ensure_release(dest: Path = RELEASE) -> Path:
    """DEST/bin/suricata, unpacked by bench/suricata-release when missing."""
    binary = dest / "bin" / "suricata"
    if not binary.exists():
        subprocess.run([str(HERE / "suricata-release"), str(dest)], check=True)
    return binary


def version(binary: Path) -> str:
    return subprocess.run([str(binary), "-V"], capture_output=True, text=True).stdout.strip()


@dataclass
class SuricataRun:
    """One Suricata run: its costs and what its eve.json holds."""

    capture: str
    threads: int
    cmd: list[str]
    wall: float = 0.0
    cpu: float = 0.0
    maxrss_mb: float = 0.0
    load: float = 0.0
    returncode: int = 0
    note: str = ""
    smtp_events: int = 0          # eve "smtp" events (Suricata's SMTP transactions, also helo-only ones)
    smtp_mail: int = 0            # those with a mail_from: mail transactions
    smtp_flows: int = 0           # distinct flows among them: SMTP sessions with a command
    packets: int = 0              # packets Suricata says it read


def command(binary: Path, capture: Path, out: Path, threads: int, detection: bool = True,
            cpus: Optional[Sequence[int]] = None) -> list[str]:
    """Suricata's argv for `threads` threads, pinned to `cpus` (default: the first `threads` usable CPUs)."""
    usable = sorted(os.sched_getaffinity(0))
    cpus = list(cpus) if cpus is not None else usable[:threads]
    ratio = threads / (os.cpu_count() or 1)
    (out / "suricata.yaml").write_text(CONFIG.format(out=out, etc=binary.parent.parent / "root" / "etc" / "suricata",
                                                     ratio=f"{ratio:g}"))
    cmd = ["taskset", "-c", ",".join(map(str, cpus)), str(binary), "-c", str(out / "suricata.yaml"),
           "-r", str(capture), "-l", str(out), "-k", "none",
           "--runmode", "single" if threads == 1 else "autofp"]
    return cmd if detection else cmd + ["--disable-detection"]


def count_eve(eve: Path) -> tuple[int, int, int]:
    """(smtp events, those with a MAIL FROM, distinct flows among them) of an eve.json."""
    events, mail, flows = 0, 0, set()
    with eve.open() as f:
        for line in f:
            e = json.loads(line)
            if e.get("event_type") == "smtp":
                events += 1
                mail += "mail_from" in e.get("smtp", {})
                flows.add(e.get("flow_id"))
    return events, mail, len(flows)


def run_suricata(capture: Path, threads: int = 1, binary: Optional[Path] = None, detection: bool = True,
                 cpus: Optional[Sequence[int]] = None, keep: Optional[Path] = None) -> SuricataRun:
    """Run Suricata once on `capture` and count the SMTP it logged; `keep`: copy eve.json there."""
    binary = binary or ensure_release()
    capture = Path(capture).resolve()
    out = Path(tempfile.mkdtemp(prefix="suricata-"))
    try:
        cmd = command(binary, capture, out, threads, detection, cpus)
        m = measure_rusage(f"suricata, {threads} thread{'s' if threads > 1 else ''}", cmd)
        r = SuricataRun(str(capture), threads, cmd, m.wall, m.cpu, m.maxrss_mb, m.load, m.returncode, m.note)
        eve = out / "eve.json"
        if m.returncode != 0 or not eve.exists():
            log = (out / "suricata.log").read_text()[-500:] if (out / "suricata.log").exists() else ""
            raise SystemExit(f"suricata: exit {m.returncode}: {m.note} {log}")
        r.smtp_events, r.smtp_mail, r.smtp_flows = count_eve(eve)
        log = (out / "suricata.log").read_text() if (out / "suricata.log").exists() else ""
        found = re.search(r"pcap: read \d+ files?, (\d+) packets", log)
        r.packets = int(found.group(1)) if found else 0
        if keep:
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(eve, keep)
        return r
    finally:
        shutil.rmtree(out, ignore_errors=True)


@dataclass
class SmtpdiagCount:
    """What `smtpdiag sessions` and `transactions` find on the same capture."""

    sessions: int = 0             # every row
    smtp_sessions: int = 0        # rows with proto smtp
    smtp_with_mail: int = 0       # smtp rows with at least one message
    messages: int = 0             # sum of `messages`
    transactions: int = 0         # rows of `smtpdiag transactions`
    causes: dict[str, int] = field(default_factory=dict)


def smtpdiag_count(capture: Path) -> SmtpdiagCount:
    """Run the toolkit (this checkout's venv) on `capture` and count what Suricata should match."""
    import pandas as pd

    exe = Path(sys.executable).with_name("smtpdiag")
    with tempfile.TemporaryDirectory() as tmp:
        s, t = Path(tmp) / "s.parquet", Path(tmp) / "t.parquet"
        for cmd, out in (("sessions", s), ("transactions", t)):
            subprocess.run([str(exe), "-q", cmd, str(capture), "--format", "parquet", "-o", str(out), "--no-cache"],
                           check=True)
        d, tx = pd.read_parquet(s), pd.read_parquet(t)
    smtp = d[d["proto"] == "smtp"]
    return SmtpdiagCount(len(d), len(smtp), int((smtp["messages"].fillna(0) > 0).sum()),
                         int(smtp["messages"].fillna(0).sum()), len(tx),
                         {str(k): int(v) for k, v in smtp["failure_cause"].value_counts().items() if v})


def plausibility(r: SuricataRun, c: SmtpdiagCount) -> list[str]:
    """Suricata's counts beside the toolkit's: its mail transactions against `smtpdiag transactions`
    rows, its flows against SMTP sessions that carried a command (not refused or unanswered)."""
    talked = c.smtp_sessions - c.causes.get("connection_refused", 0) - c.causes.get("no_response", 0)
    out = []
    for what, sur, ours, ours_what in (("events with MAIL FROM", r.smtp_mail, c.transactions, "transactions rows"),
                                       ("flows with an smtp event", r.smtp_flows, talked,
                                        "SMTP sessions but connection_refused and no_response")):
        verdict = "equal" if sur == ours else f"differ by {sur - ours:+,}"
        out.append(f"Suricata {what}: {sur:,}; smtpdiag {ours_what}: {ours:,} ({verdict})")
    return out


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture", type=Path)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-detection", action="store_true", help="--disable-detection (default: engine on, no rules)")
    ap.add_argument("--release", type=Path, default=RELEASE, help="suricata-release DEST")
    ap.add_argument("--compare", action="store_true", help="also count sessions/transactions with smtpdiag")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    binary = ensure_release(a.release)
    runs: list[SuricataRun] = []
    threads = [int(x) for x in a.threads.split(",")]
    for i in range(a.rounds):
        for n in (threads if i % 2 == 0 else threads[::-1]):
            runs.append(run_suricata(a.capture, n, binary, not a.no_detection))
    count = smtpdiag_count(a.capture) if a.compare else None
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"version": version(binary), "runs": [asdict(r) for r in runs],
                                      "smtpdiag": asdict(count) if count else None}, indent=1))
    print(f"\n{version(binary)}; {a.capture}; detection {'off' if a.no_detection else 'on, no rules'}\n")
    print("| threads | wall s, every round | median wall s | CPU s (median) | peak RSS MB | packets | smtp events "
          "| with MAIL FROM | flows |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in threads:
        rs = [r for r in runs if r.threads == n]
        print(f"| {n} | {' / '.join(f'{r.wall:.2f}' for r in rs)} | {statistics.median(r.wall for r in rs):.2f} | "
              f"{statistics.median(r.cpu for r in rs):.2f} | {max(r.maxrss_mb for r in rs):.0f} | {rs[0].packets:,} | "
              f"{rs[0].smtp_events:,} | {rs[0].smtp_mail:,} | {rs[0].smtp_flows:,} |")
    if count:
        print(f"\nsmtpdiag: {count.sessions:,} sessions, {count.smtp_sessions:,} SMTP, {count.smtp_with_mail:,} with a "
              f"message, {count.messages:,} messages; {count.transactions:,} transactions rows; SMTP causes: "
              + ", ".join(f"{k} {v:,}" for k, v in count.causes.items()))
        for line in plausibility(runs[0], count):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
