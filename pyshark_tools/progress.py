"""The progress display on standard error (tqdm): files done, bytes read, rate and ETA.

Shown only when standard error is a terminal and --quiet is not given. No colour is used, so
NO_COLOR has nothing to turn off. The runner reports through the `Progress` protocol
(runner/options.py); files are counted when their tshark run (or cache hit) ends, bytes of a
pipe input as they are fed to tshark.
"""
from __future__ import annotations

import os
import sys
import threading
from typing import IO, Optional, Sequence

from tqdm import tqdm

from .runner.plan import Capture


def _size(cap: Capture) -> int:
    if cap.source is not None:
        return 0
    try:
        return os.stat(cap.path).st_size
    except OSError:
        return 0


class FileProgress:
    """One bar for a command's whole run (a report's two passes add up); bytes are the captures' sizes."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.files = 0
        self.done_files = 0
        self.sizes: dict[int, int] = {}
        self.bar: Optional[tqdm] = None
        self.unknown = False        # a pipe input: total bytes unknown, no ETA
        self.lock = threading.Lock()

    def begin(self, captures: Sequence[Capture]) -> None:
        with self.lock:
            sizes = [_size(c) for c in captures]
            self.unknown |= any(c.source is not None for c in captures)
            self.files += len(captures)
            for c, s in zip(captures, sizes):
                self.sizes[id(c)] = s
            if self.bar is None:
                self.bar = tqdm(total=None, unit="B", unit_scale=True, unit_divisor=1024, file=self.stream,
                                desc="smtpdiag", dynamic_ncols=True, leave=False, mininterval=0.2)
            if not self.unknown:
                self.bar.total = (self.bar.total or 0) + sum(sizes)
            else:
                self.bar.total = None
            self._postfix()

    def done(self, cap: Capture) -> None:
        with self.lock:
            self.done_files += 1
            if self.bar is not None:
                self.bar.update(self.sizes.pop(id(cap), 0))
                self._postfix()

    def read(self, nbytes: int) -> None:
        """Bytes of a pipe input handed to tshark."""
        with self.lock:
            if self.bar is not None:
                self.bar.update(nbytes)

    def _postfix(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"{self.done_files}/{self.files} files", refresh=True)

    def close(self) -> None:
        with self.lock:
            if self.bar is not None:
                self.bar.close()
                self.bar = None


def terminal_progress(quiet: bool, stream: Optional[IO[str]] = None) -> Optional[FileProgress]:
    """A FileProgress on standard error if it is a terminal and not --quiet, else None."""
    stream = stream if stream is not None else sys.stderr
    if quiet or stream is None or not getattr(stream, "isatty", lambda: False)():
        return None
    return FileProgress(stream)
