#!/usr/bin/env python3
"""Write the cause tables of docs/wireshark.md from pyshark_tools/report/causes.py (the one source of that advice).

Each table stands between a `<!-- cause table: GROUP ... -->` line and `<!-- end of cause table -->`;
GROUP `smtp` holds every code but the DNS/POP3/IMAP ones, GROUP `dns-pop-imap` those.

    .venv/bin/python scripts/cause_table.py            # rewrite the doc
    .venv/bin/python scripts/cause_table.py --check    # exit 1 when the doc differs (the tests run this)
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyshark_tools.report.causes import CAUSES  # noqa: E402

DOC = ROOT / "docs" / "wireshark.md"
BLOCK = re.compile(r"(<!-- cause table: (?P<group>[\w-]+)[^\n]*-->\n)(?P<table>.*?)(<!-- end of cause table -->)", re.S)
OTHER_PROTOCOLS = ("dns", "pop", "imap")


def codes_of(group: str) -> list[str]:
    other = [c for c in CAUSES if c.split("_", 1)[0] in OTHER_PROTOCOLS]
    if group == "smtp":
        return [c for c in CAUSES if c not in other]
    if group == "dns-pop-imap":
        return other
    raise SystemExit(f"cause_table: unknown group {group!r} in {DOC}")


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(group: str) -> str:
    rows = [f"| `{c}` | {cell(CAUSES[c].meaning)} | {cell(CAUSES[c].check)} |" for c in codes_of(group)]
    return "\n".join(["| code | meaning | what to check |", "|---|---|---|", *rows]) + "\n"


def render(doc: str) -> str:
    """The doc with every cause table written afresh."""
    out, n = BLOCK.subn(lambda m: m.group(1) + table(m.group("group")) + m.group(4), doc)
    if n == 0:
        raise SystemExit(f"cause_table: no '<!-- cause table: ... -->' block in {DOC}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the doc differs, write nothing")
    parser.add_argument("doc", nargs="?", type=Path, default=DOC, help="the doc (default: docs/wireshark.md)")
    args = parser.parse_args(argv)
    text = args.doc.read_text(encoding="utf-8")
    new = render(text)
    if args.check:
        if new != text:
            print(f"{args.doc}: its cause tables differ from pyshark_tools/report/causes.py; "
                  "run scripts/cause_table.py", file=sys.stderr)
            return 1
        return 0
    if new != text:
        args.doc.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
