"""Running job groups: a thread pool here (`jobs` tshark processes at once) or tasks on a Dask cluster."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Iterator, Sequence

from ..errors import SmtpdiagError
from ..tshark.program import Tshark
from .cache import Entry
from .jobs import Job, run_jobs
from .options import RunOptions

Outcome = tuple[int, "list[Entry] | BaseException"]


def execute(ts: Tshark, groups: Sequence[Sequence[Job]], opts: RunOptions) -> Iterator[Outcome]:
    """Run the job groups; yield (group index, its entries or the exception it raised) as each ends."""
    if not groups:
        return
    if opts.scheduler:
        yield from execute_on_dask(ts, groups, opts.scheduler)
        return
    if len(groups) == 1 or opts.workers == 1:
        for i, g in enumerate(groups):
            try:
                yield i, run_jobs(ts, g)
            except Exception as e:  # noqa: BLE001 - handed to the caller, per file
                yield i, e
        return
    with ThreadPoolExecutor(max_workers=min(opts.workers, len(groups)), thread_name_prefix="smtpdiag") as pool:
        futures = {pool.submit(run_jobs, ts, g): i for i, g in enumerate(groups)}
        for f in as_completed(futures):
            exc = f.exception()
            yield futures[f], exc if exc is not None else f.result()


def execute_on_dask(ts: Tshark, groups: Sequence[Sequence[Job]], address: str) -> Iterator[Outcome]:
    """The same groups as tasks on the Dask cluster at `address`, yielded in input order."""
    try:
        from distributed import Client
    except ImportError:
        raise SmtpdiagError("--scheduler needs Dask: pip install 'smtpdiag[dask]'") from None
    light = Tshark(ts.path, run_as=ts.run_as, lua=ts.lua)   # no field tables on the wire
    with Client(address, timeout=30, set_as_default=False) as client:
        futures = client.map(run_jobs, [light] * len(groups), list(groups), pure=False)
        for i, f in enumerate(futures):     # input order; the cluster runs them all meanwhile
            try:
                yield i, f.result()
            except Exception as e:  # noqa: BLE001 - a lost worker or a bug there: recorded per file
                yield i, e
