"""Sections of bench/RESULTS.md that other scripts than bench/run.py write, between HTML-comment
markers: each script replaces its own, and bench/run.py keeps them when it rewrites the file."""
from __future__ import annotations

from pathlib import Path

# (begin, end) markers of each section, in the order they are kept.
CORES = ("<!-- cores: bench/cores.py -->", "<!-- /cores -->")
PER_FRAME = ("<!-- per-frame: bench/per_frame.py -->", "<!-- /per-frame -->")
ALL = (CORES, PER_FRAME)


def with_section(old: str, section: str, markers: tuple[str, str]) -> str:
    """RESULTS.md text with one section put in (replacing the one there)."""
    begin, end = markers
    if begin in old and end in old:
        return old[:old.index(begin)] + section + old[old.index(end) + len(end):]
    return old.rstrip("\n") + "\n\n" + section + "\n"


def kept_section(path: Path, markers: tuple[str, str]) -> str:
    """One section of the RESULTS.md at path ('' when none)."""
    begin, end = markers
    old = path.read_text() if path.exists() else ""
    return old[old.index(begin): old.index(end) + len(end)] if begin in old and end in old else ""


def keep_sections(path: Path, text: str) -> str:
    """The new RESULTS.md text, with every other script's section of the old one kept."""
    for markers in ALL:
        section = kept_section(path, markers)
        if section:
            text = with_section(text, section, markers)
    return text
