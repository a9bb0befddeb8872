#!/usr/bin/env python3
"""Write the per-cause colouring rules of the Wireshark profile from pyshark_tools/report/palette.py.

Each block stands between a `# -- begin GROUP (...) --` line and `# -- end GROUP --` in
lua/profile/smtpdiag/colorfilters; GROUP `sessions` gets a rule per cause (every frame of a
session in its cause's colour, as in the report), `clean` the rule of `ok` sessions.

    .venv/bin/python scripts/colour_rules.py            # rewrite the profile's colorfilters
    .venv/bin/python scripts/colour_rules.py --check    # exit 1 when it differs (the tests run this)
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyshark_tools.report.palette import UNKNOWN_COLOUR, clean_rule, colour_rule, session_rules  # noqa: E402

RULES = ROOT / "lua" / "profile" / "smtpdiag" / "colorfilters"
BLOCK = re.compile(r"(# -- begin (?P<group>\w+) [^\n]*--\n)(?P<rules>.*?)(# -- end (?P=group) --)", re.S)


def rules(group: str) -> str:
    if group == "sessions":
        unknown = colour_rule("smtpdiag: failing session", 'smtpdiag.failure_cause && smtpdiag.failure_cause != "ok"',
                              UNKNOWN_COLOUR)
        return "\n".join([*session_rules(), unknown]) + "\n"
    if group == "clean":
        return clean_rule() + "\n"
    raise SystemExit(f"colour_rules: unknown group {group!r} in {RULES}")


def render(text: str) -> str:
    """The colorfilters text with every generated block written afresh."""
    out, n = BLOCK.subn(lambda m: m.group(1) + rules(m.group("group")) + m.group(4), text)
    if n == 0:
        raise SystemExit(f"colour_rules: no '# -- begin ... --' block in {RULES}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file differs, write nothing")
    parser.add_argument("rules", nargs="?", type=Path, default=RULES, help="the colorfilters file")
    args = parser.parse_args(argv)
    text = args.rules.read_text(encoding="utf-8")
    new = render(text)
    if args.check:
        if new != text:
            print(f"{args.rules}: its generated rules differ from pyshark_tools/report/palette.py; "
                  "run scripts/colour_rules.py", file=sys.stderr)
            return 1
        return 0
    if new != text:
        args.rules.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
