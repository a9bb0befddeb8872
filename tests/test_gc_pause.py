"""Cyclic collection is paused inside a run and restored after it, whatever happened inside."""
from __future__ import annotations

import gc

import pytest

from conftest import FIXTURES

from pyshark_tools.gc_pause import gc_paused, paused_gc


def test_paused_inside_and_restored_after_nesting_and_errors():
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()          # the inner pause does not end the outer one
    assert gc.isenabled()

    @gc_paused
    def boom():
        assert not gc.isenabled()
        raise ValueError("x")

    with pytest.raises(ValueError):
        boom()
    assert gc.isenabled()


def test_a_caller_that_disabled_collection_keeps_it_disabled():
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_run_and_tables_pause_collection(tshark, monkeypatch):
    import pyshark_tools as pt
    from pyshark_tools.runner import stitch
    from pyshark_tools.tables import columns

    seen: dict[str, list[bool]] = {"stitch": [], "table": []}
    real_apply, real_str = stitch.apply, columns.CONVERTERS["str"]
    monkeypatch.setattr(stitch, "apply", lambda *a: (seen["stitch"].append(gc.isenabled()), real_apply(*a))[1])
    monkeypatch.setitem(columns.CONVERTERS, "str", lambda s: (seen["table"].append(gc.isenabled()), real_str(s))[1])
    df = pt.sessions(str(FIXTURES / "ok.pcap"), tshark=tshark)
    assert len(df) and seen["stitch"] and seen["table"]
    assert not any(seen["stitch"]) and not any(seen["table"]) and gc.isenabled()
