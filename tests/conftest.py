"""Shared fixtures: the real tshark, the real plugin, the real captures."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = (ROOT.parent / "shared" / "corpus" / "zeek").resolve()
FIXTURES = ROOT / "fixtures" / "captures"
LUA = ROOT / "lua" / "smtpdiag.lua"


def pytest_sessionstart(session):
    """Build lua/smtpdiag.lua from lua/smtpdiag/ first: no test runs a stale plugin."""
    spec = importlib.util.spec_from_file_location("smtpdiag_lua_build", ROOT / "lua" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    build.build(LUA)


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
