"""Streaming `tshark -T fields`: one capture's output lines as tshark writes them, and how the run ended."""
from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional, Sequence

from . import children
from .program import Tshark, last_line

# Separates the values of a field that occurs several times in a cell: tshark's -E aggregator
# here, and what the plugin writes between the values of one field in its summary file.
SEP = "\x1f"

_DAMAGE = re.compile(r"cut short|corrupt|bad record|invalid|malformed|isn't a capture", re.I)
# The plugin's notice after a one-pass run with a tree: the toolkit's one-pass runs read only the
# per-frame fields the first pass decides, so it is not about them (and is no error).
ONE_PASS_NOTICE = "smtpdiag: this run read the capture once"


@dataclass
class StreamResult:
    """What a streaming tshark run left behind once its output was read."""

    returncode: int = 0
    stderr: str = ""
    damaged: Optional[str] = None  # tshark's one line when the capture is cut short or corrupt

    @property
    def error_line(self) -> str:
        return last_line(self.stderr)

    def record(self, returncode: int, stderr: bytes) -> None:
        """Keep how tshark ended; a non-zero exit whose message names damage marks the capture damaged."""
        self.returncode = returncode
        text = stderr.decode("utf-8", "replace")
        if ONE_PASS_NOTICE in text:
            text = "".join(line for line in text.splitlines(True) if not line.startswith(ONE_PASS_NOTICE))
        self.stderr = text
        if returncode != 0 and _DAMAGE.search(self.stderr):
            self.damaged = self.error_line


def stream_fields(ts: Tshark, capture: str, fields: Sequence[str], display_filter: str,
                  extra: Sequence[str] = (), two_pass: bool = True,
                  result: Optional[StreamResult] = None, stdin: Optional[int] = None) -> Iterator[bytes]:
    """Run tshark -T fields on one capture and yield its output lines (bytes), streaming.

    `result` is filled in when the iterator is exhausted: return code, stderr, damage.
    `capture` "-" with `stdin` (a descriptor): tshark reads the capture from it.
    """
    args = ["-n", "-r", capture]
    args += ts.lua_args()
    if two_pass:
        # The first pass's output is discarded: the plugin need not add per-frame fields there.
        args += ["-2", "-o", "smtpdiag.first_pass_fields:FALSE"]
    args += list(extra)
    args += ["-Y", display_filter, "-T", "fields", "-E", "header=n", "-E", "separator=/t",
             "-E", "occurrence=a", "-E", f"aggregator={SEP}", "-E", "quote=n"]
    for f in fields:
        args += ["-e", f]
    result = result if result is not None else StreamResult()
    with ts.private_run(args) as run, tempfile.TemporaryFile() as err:
        proc = children.spawn(run.command, env=run.env, stdin=stdin, stdout=subprocess.PIPE, stderr=err)
        finished = False
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                yield line
            finished = True
        finally:
            if proc.stdout:
                proc.stdout.close()
            if not finished and proc.poll() is None:   # the reader stopped early: stop tshark
                children.kill(proc)
            proc.wait()
            children.forget(proc)
            err.seek(0)
            result.record(proc.returncode, err.read())


def split_line(line: bytes, n: int) -> list[str]:
    """One tshark output line → exactly n string cells (short lines padded)."""
    cells = line.rstrip(b"\r\n").decode("utf-8", "replace").split("\t")
    if len(cells) < n:
        cells += [""] * (n - len(cells))
    return cells[:n]


def read_rows(lines: Iterable[bytes], fields: Sequence[str]) -> list[list[str]]:
    """Materialise the lines of one run. Memory is bounded by the number of rows (sessions), not packets."""
    n = len(fields)
    return [split_line(l, n) for l in lines if l.strip()]
