"""How captures are read: how many tshark runs at once, the result cache, a Dask cluster, stitching.

`with configured(jobs=4, cache_dir=..., scheduler="tcp://host:8786"): pt.sessions(...)`, or the
CLI's `--jobs`, `--cache-dir`/`--no-cache`, `--scheduler`; else $SMTPDIAG_JOBS, $SMTPDIAG_NO_CACHE,
$SMTPDIAG_SCHEDULER, $SMTPDIAG_SPLIT_MB (the size from which one capture is read in parts).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Optional, Protocol, Sequence

from .cache import NO_CACHE_ENV

JOBS_ENV = "SMTPDIAG_JOBS"
SCHEDULER_ENV = "SMTPDIAG_SCHEDULER"
MAX_DECOMPRESSED_ENV = "SMTPDIAG_MAX_DECOMPRESSED"
MAX_DECOMPRESSED = 8 << 30          # bytes a compressed capture may expand to (a gzip bomb is refused)


def parse_size(text: str) -> int:
    """'500M', '8G', '1048576' → bytes (K, M, G, T are powers of 1024); a bad size is a ValueError."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = 1
    if t and t[-1] in "KMGT":
        mult, t = 1 << (10 * ("KMGT".index(t[-1]) + 1)), t[:-1]
    try:
        n = int(float(t) * mult)
    except ValueError:
        raise ValueError(f"{text!r}: not a size (e.g. 500M, 8G)") from None
    if n <= 0:
        raise ValueError(f"{text!r}: a size must be positive")
    return n
SPLIT_ENV = "SMTPDIAG_SPLIT_MB"


class Progress(Protocol):
    """Told what is read: the captures of a pass, each one done, bytes of a pipe as they are fed."""

    def begin(self, captures: Sequence[Any]) -> None: ...
    def done(self, capture: Any) -> None: ...
    def read(self, nbytes: int) -> None: ...


@dataclass(frozen=True)
class RunOptions:
    """How captures are read: parallelism, cache, where the jobs run, stitching."""

    jobs: Optional[int] = None          # tshark processes at once; None = os.cpu_count()
    cache_dir: Optional[Path] = None    # None = $XDG_CACHE_HOME/smtpdiag/results
    cache: bool = True                  # False: neither read nor write the cache
    scheduler: Optional[str] = None     # tcp://HOST:PORT: run the jobs on that Dask cluster
    stitch: bool = True                 # re-run sessions cut by file boundaries on the concatenation
    small_file: int = 1 << 20           # captures below this size share a job group
    max_decompressed: int = MAX_DECOMPRESSED   # a gzip capture expanding beyond this is refused as damaged
    split_size: int = 32 << 20          # a capture this large is cut into `workers` parts read at once
    progress: Optional[Progress] = field(default=None, compare=False)   # the CLI's display on a terminal

    @property
    def workers(self) -> int:
        return max(1, self.jobs or os.cpu_count() or 1)


def _env_options() -> RunOptions:
    jobs = os.environ.get(JOBS_ENV)
    limit = os.environ.get(MAX_DECOMPRESSED_ENV)
    split_mb = os.environ.get(SPLIT_ENV, "")
    return RunOptions(jobs=int(jobs) if jobs and jobs.isdigit() else None,
                      max_decompressed=parse_size(limit) if limit else MAX_DECOMPRESSED,
                      cache=os.environ.get(NO_CACHE_ENV, "") in ("", "0"),
                      scheduler=os.environ.get(SCHEDULER_ENV) or None,
                      **({"split_size": int(split_mb) << 20} if split_mb.isdigit() else {}))


_OPTIONS: ContextVar[Optional[RunOptions]] = ContextVar("smtpdiag_run_options", default=None)


def current_options() -> RunOptions:
    """The options set by `configured()`, else from $SMTPDIAG_JOBS / $SMTPDIAG_NO_CACHE / $SMTPDIAG_SCHEDULER."""
    return _OPTIONS.get() or _env_options()


@contextmanager
def configured(**changes) -> Iterator[RunOptions]:
    """Set run options for the calls made inside the block; arguments left None keep their value."""
    opts = replace(current_options(), **{k: v for k, v in changes.items() if v is not None})
    token = _OPTIONS.set(opts)
    try:
        yield opts
    finally:
        _OPTIONS.reset(token)
