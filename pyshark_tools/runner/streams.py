"""Captures read from a pipe: `-` (standard input), a FIFO, `/dev/stdin` or `<(...)` given by name.

A pipe can be read once. Its first bytes are read to tell the format (pcap, pcapng, gzip ...)
and kept; tshark then reads those bytes and the rest of the pipe from its standard input
(`tshark -r -`), fed by a thread, so nothing is sniffed away and nothing is stored on disk.
When a second pass is needed (`tshark -2` cannot read a pipe, a report reads the capture
twice), the pipe is first copied ("spooled") into a temporary file in a private (0700) folder;
tshark gets that file as its standard input and reads it as `/dev/stdin`, a name that reaches
it without entering the folder, so this also works when tshark runs as another user (`--run-as`).

Results read from a pipe are not cached (its content is only known once read) and never
stitched to other files.
"""
from __future__ import annotations

import atexit
import os
import shutil
import stat
import sys
import tempfile
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator, Optional

from ..errors import InputError

STDIN = "-"
HEAD = 64 << 10            # bytes kept to tell the format (a gzip header and its first block)
CHUNK = 1 << 20


def is_stream_input(item: str) -> bool:
    """`-`, or a path that is neither a regular file nor a folder (FIFO, pipe behind /dev/stdin or /dev/fd/N)."""
    if item == STDIN:
        return True
    try:
        st = os.stat(item)
    except (OSError, ValueError):
        return False
    return not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode)


def _read_head(fd: int, want: int) -> bytes:
    """Up to `want` bytes (fewer only at the end of the stream): a pipe hands them over in pieces."""
    parts: list[bytes] = []
    got = 0
    while got < want:
        b = os.read(fd, want - got)
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)


@dataclass(eq=False)
class StreamSource:
    """One pipe input: its name as given, the descriptor (or binary file object) it is read from, its first bytes."""

    label: str
    fd: int
    head: bytes
    fileobj: Optional[BinaryIO] = field(default=None, repr=False)
    consumed: bool = False
    spool_dir: Optional[str] = None
    fed: int = 0                               # bytes handed to tshark so far
    on_bytes: Optional[Callable[[int], None]] = field(default=None, repr=False)

    @property
    def spool(self) -> Optional[str]:
        return os.path.join(self.spool_dir, "capture") if self.spool_dir else None

    def keep(self) -> None:
        """Copy the whole pipe into a private temporary file (0700 folder), so it can be read again."""
        if self.spool_dir:
            return
        if self.consumed:
            raise InputError(f"{self.label}: already read (a pipe can be read only once)")
        self.spool_dir = tempfile.mkdtemp(prefix="smtpdiag-pipe-")
        try:
            with open(self.spool, "wb") as out:  # type: ignore[arg-type]
                out.write(self.head)
                while chunk := self.read(CHUNK):
                    out.write(chunk)
                    if self.on_bytes:
                        self.on_bytes(len(chunk))
            os.chmod(self.spool, 0o644)   # readable through /dev/stdin only: the folder stays 0700
        except BaseException:
            self.close()
            raise
        self.consumed = True

    @contextmanager
    def stdin(self) -> Iterator[tuple[int, str]]:
        """(descriptor to give tshark as standard input, the name tshark reads it by: `-` or `/dev/stdin`)."""
        if self.spool_dir:
            fd = os.open(self.spool, os.O_RDONLY)  # type: ignore[arg-type]
            try:
                yield fd, "/dev/stdin"
            finally:
                os.close(fd)
            return
        if self.consumed:
            raise InputError(f"{self.label}: already read (a pipe can be read only once)")
        self.consumed = True
        r, w = os.pipe()
        feeder = threading.Thread(target=self._feed, args=(w,), name="smtpdiag-feed", daemon=True)
        feeder.start()
        try:
            yield r, STDIN
        finally:
            os.close(r)              # a feeder still writing gets EPIPE and stops
            feeder.join()

    def _feed(self, w: int) -> None:
        try:
            data = self.head
            while data:
                view = memoryview(data)
                while view:
                    n = os.write(w, view)
                    view = view[n:]
                self.fed += len(data)
                if self.on_bytes:
                    self.on_bytes(len(data))
                data = self.read(CHUNK)
        except (OSError, ValueError):               # tshark stopped reading (it failed, or exited early)
            pass
        finally:
            os.close(w)

    def read(self, n: int) -> bytes:
        return self.fileobj.read(n) if self.fileobj is not None else os.read(self.fd, n)

    def close(self) -> None:
        """Close the pipe and remove the spooled copy (a caller's file object is left open)."""
        if self.spool_dir:
            shutil.rmtree(self.spool_dir, ignore_errors=True)
            self.spool_dir = None
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1


# Pipe inputs already opened in this process, by name: `-` is one stream, however often it is named.
_OPEN: dict[str, StreamSource] = {}
_KEEP: ContextVar[bool] = ContextVar("smtpdiag_keep_streams", default=False)
_LOCK = threading.Lock()


def open_source(item: "str | BinaryIO") -> StreamSource:
    """The StreamSource of `item`, a name or a binary file object (opened and its head read the first time)."""
    key = item if isinstance(item, str) else f"fileobj:{id(item)}"
    with _LOCK:
        src = _OPEN.get(key)
        if src is None:
            src = _open(item) if isinstance(item, str) else _from_fileobj(item)
            _OPEN[key] = src
    if _KEEP.get():
        src.keep()
    return src


def _open(item: str) -> StreamSource:
    label = "standard input" if item == STDIN else item
    if item == STDIN:
        if sys.stdin is None or os.isatty(0):
            raise InputError("-: standard input is a terminal; pipe a capture into it "
                             "(e.g. tcpdump -w - | smtpdiag sessions -)")
        fd = os.dup(0)
    else:
        try:
            fd = os.open(item, os.O_RDONLY)
        except OSError as e:
            raise InputError(f"{item}: cannot read ({e.strerror})") from None
    try:
        head = _read_head(fd, HEAD)
    except OSError as e:
        os.close(fd)
        raise InputError(f"{label}: cannot read ({e.strerror})") from None
    return StreamSource(item, fd, head)


def is_fileobj(item: object) -> bool:
    """A binary file object (open(path, 'rb'), sys.stdin.buffer, io.BytesIO) given instead of a path."""
    return hasattr(item, "read") and not isinstance(item, (str, bytes, os.PathLike))


def _from_fileobj(obj: BinaryIO) -> StreamSource:
    name = getattr(obj, "name", None)
    label = os.path.basename(name) if isinstance(name, str) and name else "stream"
    head = b""
    while len(head) < HEAD:
        b = obj.read(HEAD - len(head))
        if not b:
            break
        if isinstance(b, str):
            raise InputError(f"{label}: opened in text mode; open the capture with 'rb'")
        head += b
    return StreamSource(label, -1, head, fileobj=obj)


@contextmanager
def keep_streams() -> Iterator[None]:
    """Inside the block, pipe inputs are spooled to a private file when opened, so they can be read twice;
    the copies are removed when the outermost block ends."""
    if _KEEP.get():
        yield
        return
    token = _KEEP.set(True)
    try:
        for src in list(_OPEN.values()):
            if not src.consumed:
                src.keep()
        yield
    finally:
        _KEEP.reset(token)
        for item, src in list(_OPEN.items()):
            if src.spool_dir:
                src.close()
                del _OPEN[item]


def close_all() -> None:
    """Close every pipe input and remove spooled copies (tests; the end of a CLI run)."""
    with _LOCK:
        for src in _OPEN.values():
            src.close()
        _OPEN.clear()


atexit.register(close_all)
