"""Shared fixtures: the real tshark, the real plugin, the real captures."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = (ROOT.parent / "shared" / "corpus" / "zeek").resolve()
FIXTURES = ROOT / "fixtures" / "captures"
LUA = ROOT / "lua" / "smtpdiag.lua"


def corpus_file(name: str) -> Path:
    p = CORPUS / name
    if not p.exists():
        pytest.skip(f"corpus capture {name} not present at {CORPUS}")
    return p


@pytest.fixture(scope="session")
def tshark():
    from pyshark_tools import Tshark

    return Tshark.discover()


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"no corpus at {CORPUS}")
    return CORPUS
