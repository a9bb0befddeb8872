"""Drill-down: the packets of one session as pyshark objects, with the plugin's fields."""
from __future__ import annotations

import asyncio
import concurrent.futures
import gc
from typing import Optional

from ..runner.plan import expand_inputs
from ..tshark.program import Tshark


def _load(path: str, display_filter: str, ts: Tshark, limit: Optional[int]) -> list:
    import pyshark

    loop = asyncio.new_event_loop()
    try:
        cap = pyshark.FileCapture(
            path, display_filter=display_filter, tshark_path=ts.path, eventloop=loop,
            custom_parameters=["-2", "-n", *ts.lua_args()], keep_packets=True,
        )
        try:
            cap.load_packets()  # tshark's -c would count frames before the filter
            return list(cap._packets)[:limit] if limit else list(cap._packets)
        finally:
            cap.close()
            gc.collect()
    finally:
        loop.close()


def session_packets(capture: str, stream: int, tshark: Optional[Tshark] = None,
                    limit: Optional[int] = None) -> list:
    """Every packet of TCP stream `stream` in `capture`, dissected with the smtpdiag plugin.

    Each packet has an `smtpdiag` layer (pkt.smtpdiag.failure_cause, .detail, .command ...).
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
        return pool.submit(_load, str(cap.path), display_filter, ts, limit).result()
