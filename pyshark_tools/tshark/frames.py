"""One row per frame: one pass of tshark -T fields with the plugin's per-frame fields, for the toolkit's tables.

The plugin adds its per-frame fields (reply codes, latencies) on the first pass, where it
decides them, so one pass gives the same values as `tshark -2` at about half the cost; the
batch run's speed preferences apply (the plugin reassembles TCP itself).
"""
from __future__ import annotations

from typing import Optional, Sequence

from .conversations import FAST_PREFS
from .program import Tshark
from .stream import StreamResult, read_rows, stream_fields


def frame_rows(ts: Tshark, capture: str, fields: Sequence[str], display_filter: str, extra: Sequence[str] = (),
               result: Optional[StreamResult] = None, stdin: Optional[int] = None) -> list[list[str]]:
    """The frames of `capture` that match `display_filter`, cells in `fields` order (several values joined by SEP)."""
    lines = stream_fields(ts, capture, fields, display_filter, extra=[*FAST_PREFS, *extra], two_pass=False,
                          result=result, stdin=stdin)
    return read_rows(lines, fields)
