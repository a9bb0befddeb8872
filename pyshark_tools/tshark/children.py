"""The tshark (editcap, mergecap) processes this process started: each in its own process group,
killed with it on SIGINT/SIGTERM/exit, and by the kernel if this process dies first (PR_SET_PDEATHSIG).

`spawn()`/`run()` replace subprocess.Popen/run for every child. `stop_all()` kills every live
child's group and makes later spawns fail at once (so queued jobs start no new tshark);
`handle_signals()` (the CLI's) does that on SIGINT/SIGTERM and raises `Interrupted`, which
unwinds every `finally` (temporary files) before the CLI exits 130/143.
"""
from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import os
import signal
import subprocess
import threading
from typing import Optional, Sequence

PR_SET_PDEATHSIG = 1


class Interrupted(BaseException):
    """SIGINT/SIGTERM arrived: the run stops, its children killed; exit status 128 + signal."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _load_prctl():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.prctl
        fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        return fn
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl() if hasattr(os, "fork") and os.uname().sysname == "Linux" else None
_LOCK = threading.RLock()
_LIVE: dict[int, subprocess.Popen] = {}
_stopping: Optional[int] = None


def _in_child() -> None:
    """Between fork and exec: die with the parent (setpriv keeps it past the user change: see program.py)."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(cmd: Sequence[str], **kwargs) -> subprocess.Popen:
    """subprocess.Popen in a new process group, registered for stop_all(); refused once stopping."""
    with _LOCK:
        if _stopping is not None:
            raise Interrupted(_stopping)
        proc = subprocess.Popen(list(cmd), start_new_session=True,
                                preexec_fn=_in_child if _PRCTL is not None else None, **kwargs)
        _LIVE[proc.pid] = proc
    return proc


def forget(proc: subprocess.Popen) -> None:
    """The child has been waited for: no longer ours to kill."""
    with _LOCK:
        _LIVE.pop(proc.pid, None)


def run(cmd: Sequence[str], timeout: Optional[float] = None, **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run through spawn(): output captured as asked, the child's group killed on timeout or error."""
    if kwargs.pop("capture_output", False):
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    proc = spawn(cmd, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        kill(proc)
        proc.wait()
        raise
    finally:
        forget(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group (setpriv → env → tshark, and anything tshark started)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def live() -> list[int]:
    with _LOCK:
        return list(_LIVE)


def stop_all(signum: int = signal.SIGTERM) -> None:
    """Kill every live child's group; spawns from now on raise Interrupted(signum)."""
    global _stopping
    with _LOCK:
        if _stopping is None:
            _stopping = signum
        procs = list(_LIVE.values())
    for p in procs:
        kill(p)


def reset() -> None:
    """Allow spawns again (tests, a library user after handling Interrupted)."""
    global _stopping
    with _LOCK:
        _stopping = None


def _on_signal(signum: int, _frame) -> None:
    first = _stopping is None
    stop_all(signum)
    if first:
        raise Interrupted(signum)


def handle_signals() -> None:
    """SIGINT and SIGTERM kill the children and raise Interrupted in the main thread."""
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _on_signal)


@atexit.register
def _at_exit() -> None:
    with _LOCK:
        procs = list(_LIVE.values())
    for p in procs:
        kill(p)
