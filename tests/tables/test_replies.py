"""Every server reply from a cached one-pass run: the same values as `tshark -2`, a second call runs no tshark,
several replies in one frame are kept, and each session's worst reply is what the server really said."""
from __future__ import annotations

import pandas as pd
import pytest

from conftest import FIXTURES

import pyshark_tools as pt
from pyshark_tools.runner import jobs
from pyshark_tools.runner.options import configured
from pyshark_tools.tables.latency import latencies_from_packets
from pyshark_tools.tables.replies import (REPLY_FIELDS, REPLY_FILTER, code_class, replies_from_frames, reply_frames,
                                          worst_replies)


def _cell(v: object) -> tuple:
    """A per-frame cell as a tuple of values, numbers as floats (the two runs type them differently)."""
    vals = list(v) if isinstance(v, (list, tuple)) else ([] if pd.isna(v) else str(v).split("\x1f"))
    out = []
    for x in vals:
        try:
            out.append(float(x))
        except (TypeError, ValueError):
            out.append(str(x))
    return tuple(out)


def _frames_of(df: pd.DataFrame) -> list[tuple]:
    """A per-frame table as sorted rows of plain values: comparable across the two runs."""
    rows = zip(df["pcap_file"].astype(str), *(df[f].map(_cell) for f in REPLY_FIELDS))
    return sorted(rows)


# The corpus and fixtures with pipelined replies, greetings, DATA, BDAT, POP3/IMAP, DNS and nothing at all.
SAME_AS_TWO_PASS = ["ok.pcap", "ok_pipelined.pcap", "starttls_stripped_pipelined.pcap", "rejected_data_503.pcap",
                    "bdat_ok.pcap", "data_timeout.pcap", "bare_lf_terminator.pcap", "pop_auth_failed.pcap",
                    "imap_ok.pcap", "dns_mx_ok.pcap", "no_response.pcap", "greeting_rejected.pcap"]


# A reply the plugin could only place once later frames showed what the client had sent: in one pass
# the frame was already written when its reply was read (reply_frames' documented limit).
# smtp-bdat-gap.pcap: the 250 in frame 24 waits until frame 25 shows the client's BDAT bytes missing.
PLACED_LATE = {("smtp-bdat-gap.pcap", 24.0)}


@pytest.mark.parametrize("where", ["fixtures", "corpus"])
def test_one_pass_gives_what_two_passes_give(where, tshark, tmp_path, request):
    captures = [str(FIXTURES / n) for n in SAME_AS_TWO_PASS] if where == "fixtures" \
        else str(request.getfixturevalue("corpus_dir"))
    with configured(cache_dir=tmp_path / "cache"):
        one = reply_frames(captures, tshark=tshark)
    two = pt.packets(captures, REPLY_FIELDS, display_filter=REPLY_FILTER, tshark=tshark)   # tshark -2
    assert len(one) > 50
    two_rows = _frames_of(two)
    late = [r for r in two_rows if (r[0], r[1][0]) in PLACED_LATE]
    assert len(late) == (len(PLACED_LATE) if where == "corpus" else 0)
    assert _frames_of(one) == [r for r in two_rows if r not in late]


def test_a_second_call_runs_no_tshark(tshark, tmp_path, monkeypatch):
    caps = [str(FIXTURES / n) for n in ("rejected.pcap", "starttls_stripped_pipelined.pcap", "tempfail.pcap")]
    with configured(cache_dir=tmp_path / "cache"):
        first = reply_frames(caps, tshark=tshark)

        def no_tshark(*args, **kwargs):
            raise AssertionError("tshark ran although the cache holds these files")
        monkeypatch.setattr(jobs, "read_frames", no_tshark)
        again = reply_frames(caps, tshark=tshark)
        lat = pt.latencies(caps, tshark=tshark)
    assert _frames_of(first) == _frames_of(again)
    assert len(lat) and set(lat["pcap_file"].astype(str)) == {"rejected.pcap", "starttls_stripped_pipelined.pcap", "tempfail.pcap"}


def test_pipelined_replies_in_one_frame_each_count(tshark, tmp_path):
    with configured(cache_dir=tmp_path / "cache"):
        frames = reply_frames(str(FIXTURES / "starttls_stripped_pipelined.pcap"), tshark=tshark)
    several = frames[frames["smtpdiag.reply_code"].map(len) > 1]
    assert len(several), "the server answers EHLO, MAIL and RCPT in one segment there"
    replies = replies_from_frames(frames)
    assert len(replies) == int(frames["smtpdiag.reply_code"].map(len).sum())
    row = several.iloc[0]
    mine = replies[replies["frame"] == row["frame.number"]]
    assert list(mine["reply_code"].astype(int)) == [int(c) for c in row["smtpdiag.reply_code"]]
    assert list(mine["reply_to"]) == list(row["smtpdiag.reply_to"])


def test_latencies_accept_list_cells():
    """The crash of `smtpdiag report` on main: a latency field with several values in one frame came as a list."""
    p = pd.DataFrame({"pcap_file": ["a.pcap", "a.pcap"], "frame.number": [4, 9], "tcp.stream": [0, 0],
                      "smtpdiag.reply_to": [["<greeting>"], ["MAIL", "RCPT", "DATA"]],
                      "smtpdiag.reply_code": [["220"], ["250", "250", "354"]],
                      "smtpdiag.reply_latency": [[], ["0.002", "0.002", "0.003"]],
                      "smtpdiag.greeting_latency": [0.5, None], "smtpdiag.final_reply_latency": [None, None]})
    lat = latencies_from_packets(p)
    assert list(lat["phase"].astype(str)) == ["greeting", "DATA → 354"]
    assert list(lat["latency"].dt.total_seconds()) == [0.5, 0.003]
    assert list(lat["reply_code"]) == [220, 354]


EXPECTED_WORST = {   # fixture: (its last reply's code, the worst reply the server gave)
    "rejected.pcap": (221, 550), "rejected_data_503.pcap": (221, 550), "greeting_rejected.pcap": (221, 554),
    "auth_failed.pcap": (221, 535), "tempfail.pcap": (221, 450), "command_masked.pcap": (221, 500),
    "ok.pcap": (221, 221), "data_timeout.pcap": (421, 421), "no_response.pcap": (None, None),
}


def test_worst_reply_is_not_hidden_by_quit(tshark, tmp_path):
    caps = [str(FIXTURES / n) for n in EXPECTED_WORST]
    with configured(cache_dir=tmp_path / "cache"):
        s, t = pt.sessions_and_transactions(caps, tshark=tshark)
        r = replies_from_frames(reply_frames(caps, tshark=tshark))
    w = worst_replies(s, r, t)
    got = {}
    for (name, last), worst in zip(zip(s["pcap_file"].astype(str), s["last_reply"]), w["worst_reply"]):
        code = None if pd.isna(last) else int(str(last)[:3])
        got[name] = (code, None if pd.isna(worst) else int(worst))
    assert got == EXPECTED_WORST
    assert list(code_class(w["worst_reply"])) == [
        "none" if v[1] is None else f"{v[1] // 100}xx" for v in (got[n] for n in s["pcap_file"].astype(str))]
    refused = s["pcap_file"].astype(str).isin(["rejected.pcap", "greeting_rejected.pcap"])
    assert (w.loc[refused, "first_failing_reply"] >= 500).all()
    assert w.loc[s["pcap_file"].astype(str) == "ok.pcap", "first_failing_reply"].isna().all()


def test_worst_reply_of_other_protocols_is_missing(tshark):
    s = pt.sessions([str(FIXTURES / "pop_auth_failed.pcap"), str(FIXTURES / "dns_mx_ok.pcap")], tshark=tshark)
    w = worst_replies(s, replies_from_frames(reply_frames([str(FIXTURES / "pop_auth_failed.pcap")], tshark=tshark)))
    assert w["worst_reply"].isna().all() and (w["replies_seen"] == 0).all()
