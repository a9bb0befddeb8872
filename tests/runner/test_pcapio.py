"""The record reader and writer the stitching and the cut rest on, checked against Wireshark's own tools."""
from __future__ import annotations

import struct
import subprocess
from pathlib import Path

from conftest import FIXTURES

from pyshark_tools.runner.pcapio import NEVER, Iface, PcapngWriter, Reader, conversation
from pyshark_tools.runner.stitch import END, Cols, frames_named, map_frames
from pyshark_tools.tables.schema import SUMMARY_FIELDS


def _times(path: Path) -> list[str]:
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def _pcap_and_pcapng(tmp_path: Path) -> tuple[Path, Path]:
    """ok_multi.pcap, and the same frames as pcapng (editcap)."""
    ng = tmp_path / "ok_multi.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(FIXTURES / "ok_multi.pcap"), str(ng)], check=True)
    return FIXTURES / "ok_multi.pcap", ng


def test_reader_sees_the_frames_and_times_tshark_sees(tmp_path):
    for path in _pcap_and_pcapng(tmp_path):
        with Reader(str(path)) as rd:
            recs = list(rd.records())
        assert [r.frame for r in recs] == list(range(1, len(_times(path)) + 1))
        assert [f"{r.ts_ns // 10**9}.{r.ts_ns % 10**9:09d}" for r in recs] == _times(path)


def test_a_scan_from_a_later_frame_gives_the_same_records_as_the_whole_scan(tmp_path):
    for path in _pcap_and_pcapng(tmp_path):
        with Reader(str(path)) as rd:
            whole = list(rd.scan())
        for first in (1, 2, len(whole) // 2, len(whole), len(whole) + 5):
            with Reader(str(path)) as rd:
                assert list(rd.scan(first)) == whole[max(first, 1) - 1:]
                assert rd.ifaces and rd.ifaces[0].linktype == 1


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) & 3)
    n = struct.pack("<I", 12 + len(body))
    return struct.pack("<I", btype) + n + body + n


def test_a_scan_from_any_frame_keeps_the_times_of_simple_and_obsolete_packet_blocks(tmp_path):
    """Frames walked over before `first` still give the time a later simple packet block takes."""
    pkt = bytes(60)
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = _block(1, struct.pack("<HHI", 1, 0, 65535) + struct.pack("<HHB", 9, 1, 9) + b"\0" * 3 + bytes(4))
    epb = [_block(6, struct.pack("<IIIII", 0, 0, 1000 + k, 60, 60) + pkt) for k in range(3)]
    spb = _block(3, struct.pack("<I", 60) + pkt)
    opb = _block(2, struct.pack("<HHIIII", 0, 0, 0, 5000, 60, 60) + pkt)
    path = tmp_path / "blocks.pcapng"
    path.write_bytes(shb + idb + epb[0] + spb + epb[1] + epb[2] + spb + spb + opb + spb + shb + idb + epb[0] + spb)
    with Reader(str(path)) as rd:
        whole = list(rd.scan())
    assert [r[1] for r in whole] == [1000, 1000, 1001, 1002, 1002, 1002, 5000, 5000, 1000, 1000]
    for first in range(1, len(whole) + 2):
        with Reader(str(path)) as rd:
            assert list(rd.scan(first)) == whole[first - 1:]


def _walked_to(whole: list, k: int, t: int, strict: bool, limit: int):
    """What scan().send((t, strict, limit)) after record k must give: by the definition, from the whole scan."""
    for r in whole[k + 1:]:
        if r[0] >= limit or r[1] > t or (r[1] == t and not strict):
            return r
    return whole[-1] if k + 1 < len(whole) else None


def test_walking_to_a_time_or_a_frame_gives_the_record_the_whole_scan_has_there(tmp_path):
    blocks = tmp_path / "blocks.pcapng"
    test_a_scan_from_any_frame_keeps_the_times_of_simple_and_obsolete_packet_blocks(tmp_path)
    for path in (*_pcap_and_pcapng(tmp_path), blocks):
        with Reader(str(path)) as rd:
            whole = list(rd.scan())
        times = sorted({r[1] for r in whole})
        for k in range(len(whole)):
            for t in (times[0] - 1, *times[:: max(1, len(times) // 7)], times[-1], NEVER):
                for strict in (False, True):
                    for limit in (k + 2, len(whole) // 2, END):
                        with Reader(str(path)) as rd:
                            it = rd.scan(k + 1)
                            assert next(it) == whole[k]
                            try:
                                got = it.send((t, strict, limit))
                            except StopIteration:
                                got = None
                            assert got == _walked_to(whole, k, t, strict, limit), (path.name, k, t, strict, limit)
                            if got is not None and got[0] < len(whole):
                                assert next(it, None) == whole[got[0]]


def test_written_copy_reads_back_in_tshark_with_its_fillers(tmp_path):
    src = FIXTURES / "ok_ip_fragments.pcap"
    out = tmp_path / "copy.pcapng"
    with Reader(str(src)) as rd, open(out, "wb") as fh:
        w = PcapngWriter(fh)
        recs = list(rd.records())
        for r in recs[:5]:
            i = rd.ifaces[r.iface]
            w.packet(w.iface((0, r.iface), Iface(i.linktype, i.snaplen, 9)), r.ts_ns, rd.packet(r), r.origlen)
        w.filler(recs[-1].ts_ns)
        convs = [conversation(rd.ifaces[0].linktype, rd.packet(r)) for r in recs]
    assert _times(out) == _times(src)[:5] + [_times(src)[-1]]
    assert any(c and c[3] is not None and c[1][1] == -1 for c in convs)      # a fragment without ports
    assert all(c is None or c[0] in (6, 17) for c in convs)


def test_frame_numbers_move_but_quoted_capture_text_does_not():
    c = Cols(SUMMARY_FIELDS)
    row = [""] * len(SUMMARY_FIELDS)
    row[c.first], row[c.last] = "12", "40"
    row[c.detail] = "client sent 'frame 7' (frame 12) before the server's greeting (frames 14-15)"
    moved = map_frames(row, c, lambda n: n + 100)
    assert (moved[c.first], moved[c.last]) == ("112", "140")
    assert moved[c.detail] == "client sent 'frame 7' (frame 112) before the server's greeting (frames 114-115)"
    assert frames_named(moved, c) == [112, 140, 112, 114, 115]


def _row(c: Cols, start: float, first: int, last: int, anomalies: str = "") -> list[str]:
    row = [""] * len(SUMMARY_FIELDS)
    row[c.proto], row[c.cli], row[c.cport], row[c.srv], row[c.sport] = "smtp", "10.0.0.1", "40000", "10.0.0.2", "25"
    row[c.start], row[c.first], row[c.last], row[c.anom] = f"{start:.6f}", str(first), str(last), anomalies
    return row


def test_only_members_of_one_ring_buffer_set_are_stitched():
    c = Cols(SUMMARY_FIELDS)
    from pyshark_tools.runner.stitch import find_spans
    near = [[_row(c, 1000.0, 5, 9, "open_at_capture_end")], [_row(c, 1010.0, 1, 4, "midstream")]]
    far = [[_row(c, 1000.0, 5, 9, "open_at_capture_end")], [_row(c, 90000.0, 1, 4, "midstream")]]
    assert find_spans(near, SUMMARY_FIELDS, [False]) == []          # loose files, however close in time
    spans = find_spans(near, SUMMARY_FIELDS, [True])
    assert [(s.start, s.end, sorted(s.rows)) for s in spans] == [((0, 5), (1, 4), [(0, 0), (1, 0)])]
    assert find_spans(far, SUMMARY_FIELDS, [False]) == []
    backwards = [[_row(c, 1000.0, 5, 9)], [_row(c, 900.0, 1, 4, "midstream")]]
    assert find_spans(backwards, SUMMARY_FIELDS, [True]) == []
