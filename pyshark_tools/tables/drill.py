"""Drill-down: the packets of one session as pyshark objects, with the plugin's fields."""
from __future__ import annotations

import asyncio
import concurrent.futures
import gc
from typing import Optional

from ..runner.plan import expand_inputs
from ..tshark.program import Tshark
from .secrets import DETECT_FIELDS, FRAME_NUMBER, REASSEMBLED_IN, REDACTED, carries_credentials, must_blank, \
    spread_to_segments


def _cells(pkt, names) -> dict[str, str]:
    """The text of each of `names` in one pyshark packet ('' when absent; several occurrences joined by ',')."""
    out = dict.fromkeys(names, "")
    for layer in pkt.layers:
        fields = getattr(layer, "_all_fields", {})
        for n in names:
            if n in fields:
                out[n] = ",".join(str(f.get_default_value() or "") for f in fields[n].all_fields)
    return out


def _blank(layer, flagged: bool) -> None:
    from pyshark.packet.fields import LayerField, LayerFieldsContainer

    fields = getattr(layer, "_all_fields", None)
    if not fields:
        return
    for name, container in list(fields.items()):
        if must_blank(name, flagged):
            main = container.main_field
            fields[name] = LayerFieldsContainer(LayerField(
                name=name, showname=f"{(main.showname_key or name)}: {REDACTED}", value=REDACTED,
                show=REDACTED, pos=main.pos, size=main.size))


def redact_packets(packets: list) -> list:
    """Blank the raw and credential fields of the packets that carry credentials (tables/secrets.py),
    and password-like fields of every packet, in place."""
    cells = [_cells(p, DETECT_FIELDS) for p in packets]
    nums = [int(c[FRAME_NUMBER]) if c[FRAME_NUMBER].isdigit() else -1 for c in cells]
    own = {n for n, c in zip(nums, cells) if carries_credentials(c)}
    flagged = spread_to_segments(own, ((n, c[REASSEMBLED_IN]) for n, c in zip(nums, cells)))
    for pkt, n in zip(packets, nums):
        for layer in pkt.layers:
            _blank(layer, n in flagged)
    return packets


def _load(path: str, display_filter: str, ts: Tshark, limit: Optional[int], show_secrets: bool) -> list:
    import pyshark

    loop = asyncio.new_event_loop()
    try:
        cap = pyshark.FileCapture(
            path, display_filter=display_filter, tshark_path=ts.path, eventloop=loop,
            custom_parameters=["-2", "-n", *ts.lua_args()], keep_packets=True,
        )
        try:
            cap.load_packets()  # tshark's -c would count frames before the filter
            packets = [cap[i] for i in range(len(cap))]
            got = packets if show_secrets else redact_packets(packets)
            return got[:limit] if limit else got
        finally:
            cap.close()
            gc.collect()
    finally:
        loop.close()


def session_packets(capture: str, stream: int, tshark: Optional[Tshark] = None,
                    limit: Optional[int] = None, show_secrets: bool = False) -> list:
    """Every packet of TCP stream `stream` in `capture`, dissected with the smtpdiag plugin.

    Each packet has an `smtpdiag` layer (pkt.smtpdiag.failure_cause, .detail, .command ...).
    Packets that carry credentials have their payload and protocol fields shown as "[redacted]",
    and password-like fields always are (tables/secrets.py), unless `show_secrets` is true.
    Runs pyshark on its own event loop in a worker thread, so it also works inside
    Jupyter, whose event loop is already running.
    """
    ts = tshark or Tshark.discover()
    if ts.run_as:
        raise ValueError("session_packets cannot drop privileges; run it as an ordinary user")
    ts.check_plugin()
    cap = expand_inputs(capture)[0]
    display_filter = f"tcp.stream == {int(stream)}"
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_load, str(cap.path), display_filter, ts, limit, show_secrets).result()
