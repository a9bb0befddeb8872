#!/usr/bin/env python3
"""Write the generated parts of docs/fields.md from the plugin's own lists.

    python lua/fields_doc.py [--check] [--tshark PATH]

The field and expert table and the preference table come from lua/smtpdiag/fields.lua and
lua/smtpdiag/prefs.lua (read by tshark running lua/tools/dump_specs.lua); the prose around them
is kept. --check writes nothing and exits 1 when docs/fields.md differs. Standard library only.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "fields.md"
DUMP = HERE / "tools" / "dump_specs.lua"
# An empty pcap: tshark runs the script, then reads no packet.
EMPTY_PCAP = bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000")
SOURCE = "lua/smtpdiag/fields.lua and lua/smtpdiag/prefs.lua by `python lua/fields_doc.py`"


@dataclass
class Specs:
    """The plugin's fields and expert infos (name, type, label, description) and preferences."""

    fields: list[tuple[str, str, str, str]] = field(default_factory=list)
    prefs: list[tuple[str, str, str, str]] = field(default_factory=list)


def read_specs(tshark: str | None = None) -> Specs:
    """The lists, as the modules declare them (tshark runs lua/tools/dump_specs.lua)."""
    exe = tshark or os.environ.get("SMTPDIAG_TSHARK") or shutil.which("tshark")
    if not exe:
        raise RuntimeError("no tshark found (PATH, $SMTPDIAG_TSHARK or --tshark)")
    with tempfile.TemporaryDirectory(prefix="smtpdiag-doc-") as tmp:
        pcap = Path(tmp) / "empty.pcap"
        pcap.write_bytes(EMPTY_PCAP)
        env = dict(os.environ, HOME=tmp, XDG_CONFIG_HOME=tmp)  # no personal plugin loads
        res = subprocess.run([exe, "-q", "-r", str(pcap), "-X", f"lua_script:{DUMP}"],
                             capture_output=True, text=True, env=env)
    specs = Specs()
    for line in res.stdout.splitlines():
        kind, *cells = line.split("\t")
        if kind in ("F", "E") and len(cells) == 4:
            specs.fields.append(tuple(cells))
        elif kind == "P" and len(cells) == 4:
            specs.prefs.append(tuple(cells))
    if not specs.fields or not specs.prefs:
        err = [l for l in res.stderr.splitlines() if l.strip() and not l.startswith("Running as user")]
        raise RuntimeError(f"{exe} printed no field list from {DUMP.name}"
                           + (f": {err[-1]}" if err else " (tshark 4.4+ run as root skips Lua scripts)"))
    return specs


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def fields_table(specs: Specs) -> str:
    rows = ["| field | type | name | description |", "|---|---|---|---|"]
    for name, ftype, label, desc in sorted(specs.fields):
        rows.append(f"| `{name}` | {ftype} | {_cell(label)} | {_cell(desc)} |")
    return "\n".join(rows)


def prefs_table(specs: Specs) -> str:
    rows = ["| preference | default | meaning |", "|---|---|---|"]
    for name, _type, default, desc in specs.prefs:
        rows.append(f"| `{name}` | `{default}` | {_cell(desc)} |")
    return "\n".join(rows)


def _block(name: str, body: str) -> str:
    return f"<!-- {name}: generated from {SOURCE} -->\n{body}\n<!-- end {name} -->"


def render(doc: str, specs: Specs) -> str:
    """doc with its generated blocks (fields, preferences) rewritten from specs."""
    for name, body in (("fields", fields_table(specs)), ("preferences", prefs_table(specs))):
        pattern = re.compile(rf"<!-- {name}: generated from .*? -->\n.*?\n<!-- end {name} -->", re.S)
        if not pattern.search(doc):
            raise ValueError(f"docs/fields.md has no generated '{name}' block")
        doc = pattern.sub(lambda _m, n=name, b=body: _block(n, b), doc, count=1)
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/fields.md is not up to date")
    ap.add_argument("--tshark", help="tshark to run (default: $SMTPDIAG_TSHARK or PATH)")
    a = ap.parse_args(argv)
    try:
        current = DOC.read_text(encoding="utf-8")
        fresh = render(current, read_specs(a.tshark))
    except (OSError, RuntimeError, ValueError) as e:
        print(f"fields_doc: {e}", file=sys.stderr)
        return 1
    if a.check:
        if fresh != current:
            print("fields_doc: docs/fields.md is out of date: run python lua/fields_doc.py", file=sys.stderr)
            return 1
        return 0
    if fresh != current:
        DOC.write_text(fresh, encoding="utf-8")
    print(DOC)
    return 0


if __name__ == "__main__":
    sys.exit(main())
