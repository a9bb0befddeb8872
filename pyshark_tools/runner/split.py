"""Cutting one large capture into time-ordered parts at record boundaries, without dissecting.

A cut is looked for near each 1/N of the file: the first offset from there where a chain of
records (pcap: plausible headers, each ending where the next begins; pcapng: packet blocks
whose leading and trailing lengths agree) runs on for CHAIN records, so no record is walked
from the start. Each part is the file's header (pcap) or its leading blocks up to the first
packet (pcapng: section header, interface descriptions, decryption secrets), then its records
copied byte for byte. A gzip-compressed capture is decompressed once first.
"""
from __future__ import annotations

import gzip
import os
import struct
import subprocess
from typing import Optional, Sequence

from ..tshark import children
from .pcapio import PACKET_BLOCKS, PCAP_MAGIC, SHB

CHAIN = 16
WINDOW = 4 << 20           # how far past a target offset a cut is looked for


def decompressed(path: str, tmp: str, limit: Optional[int] = None) -> str:
    """The path of an uncompressed capture: `path` itself, or its gzip content written once into tmp
    (more than `limit` bytes: a ValueError, the capture is then read whole and refused there)."""
    with open(path, "rb") as fh:
        if fh.read(2) != b"\x1f\x8b":
            return path
    out = os.path.join(tmp, os.path.basename(path).rsplit(".gz", 1)[0] or "capture")
    n = 0
    with gzip.open(path, "rb") as src, open(out, "wb") as dst:
        while buf := src.read(1 << 22):
            n += len(buf)
            if limit is not None and n > limit:
                raise ValueError(f"{path}: expands beyond {limit} bytes")
            dst.write(buf)
    return out


def _pcap_ok(d: bytes, off: int, e: str, snap: int, t0: int) -> bool:
    for _ in range(CHAIN):
        if off == len(d):
            return True
        if off + 16 > len(d):
            return False
        sec, frac, incl, orig = struct.unpack_from(e + "IIII", d, off)
        if incl > max(snap, 262144) or incl > orig or frac >= 1_000_000_000 or abs(sec - t0) > 10 * 365 * 86400:
            return False
        off += 16 + incl
    return True


def _pcapng_ok(d: bytes, off: int, e: str) -> bool:
    for k in range(CHAIN):
        if off == len(d):
            return True
        if off + 12 > len(d):
            return False
        t, n = struct.unpack_from(e + "II", d, off)
        if (k == 0 and t not in PACKET_BLOCKS) or t == SHB or n < 12 or n % 4 or off + n > len(d) \
                or struct.unpack_from(e + "I", d, off + n - 4)[0] != n:
            return False
        off += n
    return True


def layout(path: str) -> tuple[str, int, bytes, str]:
    """(kind, offset of the first record, the header every part starts with, byte order)."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    if head[:4] in PCAP_MAGIC:
        return "pcap", 24, head[:24], PCAP_MAGIC[head[:4]][0]
    if head[:4] != b"\x0a\x0d\x0d\x0a":
        raise ValueError(f"{path}: not an uncompressed pcap or pcapng file")
    e = "<" if head[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    off = 0
    while off + 12 <= len(head):
        t, n = struct.unpack_from(e + "II", head, off)
        if t in PACKET_BLOCKS or (t == SHB and off) or n < 12:
            break
        off += n
    return "pcapng", off, head[:off], e


def cut_offsets(path: str, n: int) -> list[int]:
    """Byte offsets where parts 1..n-1 begin (fewer when the file is too small or no chain is found)."""
    kind, first, header, e = layout(path)
    size = os.path.getsize(path)
    if kind == "pcap":
        snap = struct.unpack_from(e + "I", header, 16)[0]
        with open(path, "rb") as fh:
            fh.seek(first)
            rec = fh.read(16)
        t0 = struct.unpack_from(e + "I", rec, 0)[0] if len(rec) == 16 else 0
    cuts: list[int] = []
    with open(path, "rb") as fh:
        for k in range(1, n):
            target = first + (size - first) * k // n
            if cuts and target <= cuts[-1]:
                continue
            fh.seek(target)
            d = fh.read(WINDOW)
            step = 4 if kind == "pcapng" else 1
            start = (-(target - first)) % step
            for i in range(start, max(0, len(d) - 16), step):
                ok = _pcap_ok(d, i, e, snap, t0) if kind == "pcap" else _pcapng_ok(d, i, e)
                if ok:
                    cuts.append(target + i)
                    break
    return cuts


def write_parts(path: str, n: int, out_dir: str, names: Optional[Sequence[str]] = None) -> list[tuple[str, int, int]]:
    """Cut `path` into up to n parts in out_dir; (part path, first byte, end byte) of each."""
    kind, first, header, _e = layout(path)
    size = os.path.getsize(path)
    bounds = [first, *cut_offsets(path, n), size]
    ext = ".pcapng" if kind == "pcapng" else ".pcap"
    parts = []
    with open(path, "rb") as src:
        for k in range(len(bounds) - 1):
            out = os.path.join(out_dir, names[k] if names else f"part{k:03d}{ext}")
            with open(out, "wb") as dst:
                dst.write(header)
                src.seek(bounds[k])
                left = bounds[k + 1] - bounds[k]
                while left > 0:
                    buf = src.read(min(left, 1 << 22))
                    if not buf:
                        break
                    dst.write(buf)
                    left -= len(buf)
            parts.append((out, bounds[k], bounds[k + 1]))
    return parts


def frame_count(capinfos: str, path: str) -> subprocess.Popen:
    """capinfos counting the packets of `path` (started now; read with `counted`)."""
    return children.spawn([capinfos, "-cMT", "-r", path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True)


def counted(proc: subprocess.Popen) -> int:
    try:
        out, _ = proc.communicate()
    finally:
        children.forget(proc)
    try:
        return int(out.strip().split("\t")[-1])
    except ValueError:
        raise OSError(f"capinfos could not count the packets of {proc.args[-1]}") from None
