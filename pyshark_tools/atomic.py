"""Writing a file whole or not at all: a temporary file beside the destination, then `os.replace`.

Every file the toolkit writes (tables, the report folder, plots, the profile, cache entries)
goes through here, so a full disk, an error or an interrupt never leaves a half-written file in
place of a good one, and the temporary file is removed on the way out.

A destination that is a symbolic link is refused, never written through and never replaced:
in a shared folder such as /tmp a link planted by another user would otherwise make us
overwrite a file of theirs choosing; a link the user made on purpose is better kept than
silently turned into a plain file. A destination that exists and is not a regular file
(/dev/null, a FIFO, a terminal) is written to directly: there is nothing there to keep.
"""
from __future__ import annotations

import os
import stat
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Callable, Iterator, Union

from .errors import SmtpdiagError

PathLike = Union[str, os.PathLike]


class UnsafeDestination(SmtpdiagError, OSError):
    """An output path that is a symbolic link, or a folder where a file was asked for (an OSError too:
    a cache that cannot be written is skipped like any other)."""


def _umask() -> int:
    """The process umask, read without changing it (Linux); else the usual 022."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _stream_target(dest: Path) -> bool:
    """An existing destination that is not a regular file or folder (device, FIFO, terminal)."""
    try:
        st = os.stat(dest)
    except OSError:
        return False
    return not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode)


def check_destination(path: PathLike, folder: bool = False) -> Path:
    """Refuse a destination that is a symbolic link (or, for a file, a folder); return it as a Path."""
    dest = Path(path)
    if dest.is_symlink():
        raise UnsafeDestination(f"{dest}: is a symbolic link; refusing to write through it "
                                "(remove the link or choose another name)")
    if not folder and dest.is_dir():
        raise UnsafeDestination(f"{dest}: is a folder, expected a file name")
    return dest


def _final_mode(dest: Path) -> int:
    """Keep the mode of the file being replaced; a new file gets 0666 minus the umask, as open() would."""
    try:
        st = os.lstat(dest)
        if stat.S_ISREG(st.st_mode):
            return stat.S_IMODE(st.st_mode)
    except OSError:
        pass
    return 0o666 & ~_umask()


@contextmanager
def replacing_path(path: PathLike, durable: bool = True) -> Iterator[str]:
    """Yield the name of a fresh temporary file beside `path`; when the block ends, it replaces `path`.

    For writers that need a file name (Parquet). On any error the temporary file is removed and
    `path` is left as it was. `durable`: fsync before the rename (outputs, not cache entries).
    """
    dest = check_destination(path)
    fd, tmp = tempfile.mkstemp(dir=str(dest.parent), prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        if durable:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.chmod(tmp, _final_mode(dest))
        check_destination(dest)
        os.replace(tmp, dest)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def write_bytes(path: PathLike, data: bytes, durable: bool = True) -> Path:
    """Write `data` to `path` atomically (or straight into /dev/null, a FIFO, a terminal)."""
    dest = Path(path)
    if _stream_target(dest):
        with open(dest, "wb") as fh:
            fh.write(data)
        return dest
    with replacing_path(dest, durable) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
    return dest


def write_text(path: PathLike, text: str, durable: bool = True) -> Path:
    """`text` as UTF-8 to `path`, atomically."""
    return write_bytes(path, text.encode("utf-8"), durable)


def write_with(path: PathLike, writer: Callable[[str], None], durable: bool = True) -> Path:
    """Call `writer(temporary name)` and put the result at `path` atomically (for writers that take a name)."""
    dest = Path(path)
    if _stream_target(dest):
        writer(str(dest))
        return dest
    with replacing_path(dest, durable) as tmp:
        writer(tmp)
    return dest


def copy_file(src: PathLike, path: PathLike) -> Path:
    """Copy `src` to `path` atomically."""
    def copy(tmp: str) -> None:
        with open(src, "rb") as fi, open(tmp, "wb") as fo:
            while chunk := fi.read(1 << 20):
                fo.write(chunk)
    return write_with(path, copy)

