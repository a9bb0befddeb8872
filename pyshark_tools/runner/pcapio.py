"""pcap and pcapng at the record level, read and written without dissecting anything.

`Reader` walks the packet records of one uncompressed capture (frame numbers as tshark counts
them: every packet record from 1) with their times in nanoseconds; `PcapngWriter` writes a
small pcapng of chosen records (any mix of files and link types); `conversation` finds a
packet's transport 4-tuple on the common link types. The runner uses them to copy the frames
of a few conversations out of large captures (stitch.py) and to cut one capture into parts at
record boundaries (split.py).
"""
from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO, Iterator, Optional

from ..errors import InputError

PCAP_MAGIC = {b"\xd4\xc3\xb2\xa1": ("<", 1000), b"\xa1\xb2\xc3\xd4": (">", 1000),
              b"\x4d\x3c\xb2\xa1": ("<", 1), b"\xa1\xb2\x3c\x4d": (">", 1)}
SHB, IDB, SPB, EPB, OPB, DSB = 0x0A0D0D0A, 1, 3, 6, 2, 0x0A
PACKET_BLOCKS = (EPB, SPB, OPB)
NEVER = 1 << 100              # a time no record reaches (scan().send)
FILLER_LINKTYPE = 147          # LINKTYPE_USER0: zero-length frames tshark dissects as nothing


@dataclass(frozen=True)
class Iface:
    """A capture interface: link type, snapshot length and how its timestamps count."""

    linktype: int
    snaplen: int = 262144
    tsresol: int = 6           # pcapng if_tsresol byte: 10^-n seconds, or 2^-n with the top bit set
    tsoffset: int = 0          # seconds added to every timestamp
    fcslen: Optional[int] = None

    def ns(self, ticks: int) -> int:
        r = self.tsresol
        if r & 0x80:
            return (ticks * 1_000_000_000 >> (r & 0x7F)) + self.tsoffset * 1_000_000_000
        return (ticks * 10 ** (9 - r) if r <= 9 else ticks // 10 ** (r - 9)) + self.tsoffset * 1_000_000_000


@dataclass
class Record:
    """One packet record: its frame number, time, interface, where its bytes are in the file."""

    frame: int
    ts_ns: int
    iface: int
    offset: int                # of the packet bytes
    caplen: int
    origlen: int
    block: tuple[int, int]     # (start, end) of the whole record or block in the file


class Reader:
    """The packet records of one pcap or pcapng file, in file order (memory-mapped)."""

    def __init__(self, path: str):
        self.path = path
        self._fh = open(path, "rb")
        size = os.fstat(self._fh.fileno()).st_size
        if size < 24:
            self._fh.close()
            raise InputError(f"{path}: too short for a capture")
        self.data = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
        self.size = size
        head = self.data[:4]
        if head in PCAP_MAGIC:
            self.kind = "pcap"
            self.endian, mult = PCAP_MAGIC[head]
            snap, lt = struct.unpack_from(self.endian + "II", self.data, 16)
            self.ifaces = [Iface(lt & 0x0FFFFFFF, snap, 6 if mult == 1000 else 9)]
        elif head == b"\x0a\x0d\x0d\x0a":
            self.kind = "pcapng"
            self.endian = "<" if self.data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
            self.ifaces = []
        else:
            self.close()
            raise InputError(f"{path}: not an uncompressed pcap or pcapng file")
        self.secrets: list[tuple[int, bytes]] = []     # pcapng decryption secrets blocks (type, data)

    def close(self) -> None:
        try:
            self.data.close()
        finally:
            self._fh.close()

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def records(self) -> Iterator[Record]:
        """Every packet record, numbered from 1."""
        for frame, ts, iface, off, cap, orig, start, end in self.scan():
            yield Record(frame, ts, iface, off, cap, orig, (start, end))

    def scan(self, first: int = 1) -> Iterator[tuple[int, int, int, int, int, int, int, int]]:
        """(frame, time ns, interface, packet offset, captured length, original length, record start,
        record end) of every packet record from frame `first` on (the ones before are only walked
        over): the fast form of `records()`.

        `send((t_ns, strict, limit))` instead of `next()` walks over the records before the first
        one at or after `t_ns` (after it, if `strict`) or numbered `limit`, and returns that one;
        the file's last record if the file ends first.
        """
        return self._pcap(first) if self.kind == "pcap" else self._pcapng(first)

    def _pcap(self, first: int = 1) -> Iterator[tuple[int, int, int, int, int, int, int, int]]:
        d, size = self.data, self.size
        hdr = struct.Struct(self.endian + "IIII").unpack_from
        incl_at = struct.Struct(self.endian + "I").unpack_from
        mult = 1000 if self.ifaces[0].tsresol == 6 else 1
        off, frame = 24, 1
        while frame < first and off + 16 <= size:
            end = off + 16 + incl_at(d, off + 8)[0]
            if end > size:
                break
            frame += 1
            off = end
        while off + 16 <= size:
            sec, frac, incl, orig = hdr(d, off)
            end = off + 16 + incl
            if end > size:
                break
            wait = yield frame, sec * 1_000_000_000 + frac * mult, 0, off + 16, incl, orig, off, end
            frame += 1
            off = end
            if wait is None:
                continue
            t, strict, limit = wait
            last = -1
            while frame < limit and off + 16 <= size:
                sec, frac, incl, orig = hdr(d, off)
                end = off + 16 + incl
                ts = sec * 1_000_000_000 + frac * mult
                if end > size or ts > t or (ts == t and not strict):
                    break
                last, frame, off = off, frame + 1, end
            if last >= 0 and (off + 16 > size or off + 16 + incl_at(d, off + 8)[0] > size):
                sec, frac, incl, orig = hdr(d, last)         # the file ends: its last record
                yield frame - 1, sec * 1_000_000_000 + frac * mult, 0, last + 16, incl, orig, last, last + 16 + incl
                return

    def _pcapng(self, first: int = 1) -> Iterator[tuple[int, int, int, int, int, int, int, int]]:
        d, size, e = self.data, self.size, self.endian
        head = struct.Struct(e + "II").unpack_from
        epb = struct.Struct(e + "IIIII").unpack_from
        off, frame, last_ts = 0, 1, 0
        scale: list[int] = []                # ns per tick of each interface (0: see Iface.ns)
        base: list[int] = []                 # its time offset in ns
        t, strict, limit, keep = NEVER, False, first, False   # walking over records (see scan)
        stamped = -1                         # the last timestamped block walked over, its time not read yet
        walked = (0, -1)                     # (frame, block) of the last record walked over
        while off + 12 <= size:
            btype, blen = head(d, off)
            if frame < limit and (btype == EPB or btype == SPB or btype == OPB) and 12 <= blen <= size - off:
                if t == NEVER:
                    if btype != SPB:
                        stamped = off
                    walked = (frame, off)
                    frame += 1
                    off += blen
                    continue
                if btype == EPB:
                    iface, hi, lo = epb(d, off + 8)[:3]
                    m = scale[iface] if iface < len(scale) else 0
                    ts = (hi << 32 | lo) * m + base[iface] if m else self._stamp(off, scale, last_ts)
                else:
                    ts = last_ts if btype == SPB else self._stamp(off, scale, last_ts)
                if ts < t or (ts == t and strict):
                    last_ts, walked = ts, (frame, off)
                    frame += 1
                    off += blen
                    continue
            if stamped >= 0:                 # a simple packet block takes the time of the one before
                last_ts = self._stamp(stamped, scale, last_ts)
                stamped = -1
            if btype == SHB:
                e = self.endian = "<" if d[off + 8: off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
                head, epb = struct.Struct(e + "II").unpack_from, struct.Struct(e + "IIIII").unpack_from
                btype, blen = head(d, off)
                self.ifaces, scale, base = [], [], []
            if blen < 12 or off + blen > size:
                break
            body = off + 8
            wait = None
            if btype == EPB:
                iface, hi, lo, cap, orig = epb(d, body)
                if iface < len(scale):
                    m = scale[iface]
                    last_ts = (hi << 32 | lo) * m + base[iface] if m else self.ifaces[iface].ns(hi << 32 | lo)
                if frame >= first:
                    wait = yield frame, last_ts, iface, body + 20, cap, orig, off, off + blen
                frame += 1
            elif btype == SPB:
                orig = head(d, body)[0]
                cap = self._spb_caplen(blen, orig)
                if frame >= first:
                    wait = yield frame, last_ts, 0, body + 4, cap, orig, off, off + blen
                frame += 1
            elif btype == OPB:
                iface, _drops, hi, lo, cap, orig = struct.unpack_from(e + "HHIIII", d, body)
                if iface < len(self.ifaces):
                    last_ts = self.ifaces[iface].ns(hi << 32 | lo)
                if frame >= first:
                    wait = yield frame, last_ts, iface, body + 20, cap, orig, off, off + blen
                frame += 1
            elif btype == IDB:
                i = self._idb(body, off + blen - 4)
                self.ifaces.append(i)
                scale.append(10 ** (9 - i.tsresol) if not i.tsresol & 0x80 and i.tsresol <= 9 else 0)
                base.append(i.tsoffset * 1_000_000_000)
            elif btype == DSB:
                kind, n = head(d, body)
                self.secrets.append((kind, bytes(d[body + 8: body + 8 + n])))
            if btype in PACKET_BLOCKS:
                if wait is not None:
                    (t, strict, limit), keep = wait, True
                else:
                    t, strict, limit, keep = NEVER, False, first, False
                walked = (0, -1)
            off += blen
        if keep and walked[1] >= 0:          # the file ends while walking over records: its last one
            n, at = walked
            if stamped >= 0:
                last_ts = self._stamp(stamped, scale, last_ts)
            btype, blen = head(d, at)
            if btype == SPB:
                orig = head(d, at + 8)[0]
                yield n, last_ts, 0, at + 12, self._spb_caplen(blen, orig), orig, at, at + blen
            elif btype == EPB:
                iface, _hi, _lo, cap, orig = epb(d, at + 8)
                yield n, last_ts, iface, at + 28, cap, orig, at, at + blen
            else:
                iface, _drops, _hi, _lo, cap, orig = struct.unpack_from(e + "HHIIII", d, at + 8)
                yield n, last_ts, iface, at + 28, cap, orig, at, at + blen

    def _spb_caplen(self, blen: int, orig: int) -> int:
        """The captured length of a simple packet block: its original length, cut to the block and the snaplen."""
        snap = self.ifaces[0].snaplen if self.ifaces else 0
        return min(orig, blen - 16, snap or orig)

    def _stamp(self, off: int, scale: list[int], last_ts: int) -> int:
        """The time in ns of the enhanced or obsolete packet block at `off` (last_ts if its interface is unknown)."""
        e, d = self.endian, self.data
        if struct.unpack_from(e + "I", d, off)[0] == EPB:
            iface, hi, lo = struct.unpack_from(e + "III", d, off + 8)
        else:
            iface, _drops, hi, lo = struct.unpack_from(e + "HHII", d, off + 8)
        if iface >= len(self.ifaces):
            return last_ts
        m = scale[iface] if iface < len(scale) else 0
        return (hi << 32 | lo) * m + self.ifaces[iface].tsoffset * 1_000_000_000 if m \
            else self.ifaces[iface].ns(hi << 32 | lo)

    def _idb(self, body: int, end: int) -> Iface:
        e, d = self.endian, self.data
        lt, _res, snap = struct.unpack_from(e + "HHI", d, body)
        tsresol, tsoffset, fcslen = 6, 0, None
        p = body + 8
        while p + 4 <= end:
            code, n = struct.unpack_from(e + "HH", d, p)
            if code == 0:
                break
            v = d[p + 4: p + 4 + n]
            if code == 9 and n >= 1:
                tsresol = v[0]
            elif code == 14 and n == 8:
                tsoffset = struct.unpack(e + "q", v)[0]
            elif code == 13 and n >= 1:
                fcslen = v[0]
            p += 4 + ((n + 3) & ~3)
        return Iface(lt, snap, tsresol, tsoffset, fcslen)

    def packet(self, r: Record) -> bytes:
        return self.data[r.offset: r.offset + r.caplen]


def _pad(n: int) -> bytes:
    return b"\0" * (-n & 3)


class PcapngWriter:
    """A little-endian pcapng of records copied from other files, plus zero-length filler frames."""

    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self.ifaces: dict[object, int] = {}
        fh.write(struct.pack("<IIIHHqI", SHB, 28, 0x1A2B3C4D, 1, 0, -1, 28))

    def iface(self, key: object, i: Iface) -> int:
        """The output interface id for source interface `key` (an IDB is written the first time)."""
        if key not in self.ifaces:
            opts = struct.pack("<HHB3x", 9, 1, i.tsresol)
            if i.tsoffset:
                opts += struct.pack("<HHq", 14, 8, i.tsoffset)
            if i.fcslen is not None:
                opts += struct.pack("<HHB3x", 13, 1, i.fcslen)
            opts += struct.pack("<HH", 0, 0)
            n = 20 + len(opts)
            self.fh.write(struct.pack("<IIHHI", IDB, n, i.linktype, 0, i.snaplen) + opts + struct.pack("<I", n))
            self.ifaces[key] = len(self.ifaces)
        return self.ifaces[key]

    def packet(self, iface: int, ticks: int, data: bytes, origlen: int) -> None:
        n = 32 + len(data) + (-len(data) & 3)
        self.fh.write(struct.pack("<IIIIIII", EPB, n, iface, ticks >> 32 & 0xFFFFFFFF, ticks & 0xFFFFFFFF,
                                  len(data), origlen) + data + _pad(len(data)) + struct.pack("<I", n))

    def filler(self, ts_ns: int) -> None:
        """A frame with no bytes at time ts_ns: it only moves the dissectors' clock."""
        self.packet(self.iface("filler", Iface(FILLER_LINKTYPE, 0, 9)), ts_ns, b"", 0)

    def secrets(self, kind: int, data: bytes) -> None:
        n = 20 + len(data) + (-len(data) & 3)
        self.fh.write(struct.pack("<IIII", DSB, n, kind, len(data)) + data + _pad(len(data)) + struct.pack("<I", n))


# --- conversations --------------------------------------------------------------------------

Endpoint = tuple[bytes, int]


def _l3(linktype: int, p: bytes) -> tuple[int, int]:
    """(ethertype-like version 4/6 or 0, offset of the IP header)."""
    if linktype == 1:
        off, et = 14, p[12:14]
        while et in (b"\x81\x00", b"\x88\xa8", b"\x91\x00") and len(p) >= off + 4:
            et, off = p[off + 2: off + 4], off + 4
        return (4 if et == b"\x08\x00" else 6 if et == b"\x86\xdd" else 0), off
    if linktype in (101, 12, 14, 228, 229):
        return (p[0] >> 4 if p else 0), 0
    if linktype == 113:
        et = p[14:16]
        return (4 if et == b"\x08\x00" else 6 if et == b"\x86\xdd" else 0), 16
    if linktype == 276:
        et = p[0:2]
        return (4 if et == b"\x08\x00" else 6 if et == b"\x86\xdd" else 0), 20
    if linktype in (0, 108):
        if len(p) < 4:
            return 0, 0
        fam = struct.unpack("<I" if linktype == 0 and p[0] else ">I", p[:4])[0]
        return (4 if fam == 2 else 6 if fam in (10, 24, 28, 30) else 0), 4
    return 0, 0


def conversation(linktype: int, p: bytes) -> Optional[tuple[int, Endpoint, Endpoint, Optional[tuple]]]:
    """(IP protocol, source, destination, fragment id) of a TCP/UDP packet; ports are -1 in a
    non-first fragment; the fragment id is None when the packet is not a fragment. None: no IP."""
    ver, off = _l3(linktype, p)
    if ver == 4 and len(p) >= off + 20:
        ihl = (p[off] & 0x0F) * 4
        proto = p[off + 9]
        src, dst = p[off + 12: off + 16], p[off + 16: off + 20]
        fl = struct.unpack_from("!H", p, off + 6)[0]
        frag = (src, dst, proto, p[off + 4: off + 6]) if fl & 0x3FFF else None
        l4 = off + ihl
        first = not fl & 0x1FFF
    elif ver == 6 and len(p) >= off + 40:
        proto = p[off + 6]
        src, dst = p[off + 8: off + 24], p[off + 24: off + 40]
        l4, frag, first = off + 40, None, True
        while proto in (0, 43, 60, 44, 51) and len(p) >= l4 + 8:
            if proto == 44:
                fo = struct.unpack_from("!H", p, l4 + 2)[0]
                frag, first = (src, dst, p[l4], p[l4 + 4: l4 + 8]), not fo & 0xFFF8
                proto, l4 = p[l4], l4 + 8
            elif proto == 51:
                proto, l4 = p[l4], l4 + (p[l4 + 1] + 2) * 4
            else:
                proto, l4 = p[l4], l4 + (p[l4 + 1] + 1) * 8
    else:
        return None
    if proto not in (6, 17):
        return None
    if first and len(p) >= l4 + 4:
        sp, dp = struct.unpack_from("!HH", p, l4)
    else:
        sp = dp = -1
    return proto, (bytes(src), sp), (bytes(dst), dp), frag
