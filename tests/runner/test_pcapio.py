"""The record reader and writer the stitching and the cut rest on, checked against Wireshark's own tools."""
from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import FIXTURES

from pyshark_tools.runner.pcapio import Iface, PcapngWriter, Reader, conversation
from pyshark_tools.runner.stitch import Cols, frames_named, map_frames
from pyshark_tools.tables.schema import SUMMARY_FIELDS


def _times(path: Path) -> list[str]:
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def test_reader_sees_the_frames_and_times_tshark_sees(tmp_path):
    ng = tmp_path / "ok_multi.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(FIXTURES / "ok_multi.pcap"), str(ng)], check=True)
    for path in (FIXTURES / "ok_multi.pcap", ng):
        with Reader(str(path)) as rd:
            recs = list(rd.records())
        assert [r.frame for r in recs] == list(range(1, len(_times(path)) + 1))
        assert [f"{r.ts_ns // 10**9}.{r.ts_ns % 10**9:09d}" for r in recs] == _times(path)


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
