"""One colour per cause, the same in the report, the figures and the Wireshark profile's colouring rules.

The 28 failure colours were chosen by scripts/palette.py: every two of them stay apart (CIEDE2000
≥ 6.5) in normal vision and under protanopia, deuteranopia and tritanopia, none is green (green
means "fine"), none is too light to see on white or close to the `ok` grey. The tests check
those properties on the list below. Which colour goes to which cause was chosen by hand
(reds for rejections, orange for temporary failures, violets for the DATA phase, browns and
blues for the connection).
"""
from __future__ import annotations

from .causes import CAUSES

OK_COLOUR = "#c8c8c8"
UNKNOWN_COLOUR = "#808080"     # a cause code this version does not know

CAUSE_COLOURS: dict[str, str] = {
    "no_response": "#002d87",
    "connection_refused": "#a50f00",
    "no_banner": "#694ba5",
    "greeting_rejected": "#b41e4b",
    "pregreet": "#d2c378",
    "banner_masked": "#a5963c",
    "command_masked": "#783c3c",
    "starttls_stripped": "#4ba5b4",
    "tls_failed": "#9687ff",
    "auth_failed": "#ff69c3",
    "tempfail": "#ffa500",
    "rejected": "#e11e00",
    "bare_lf_terminator": "#b400ff",
    "smuggling_attempt": "#ff5a78",
    "data_not_terminated": "#c37896",
    "data_timeout": "#3c00e1",
    "data_reset": "#691e0f",
    "bdat_incomplete": "#f0b4a5",
    "mtu_blackhole": "#006978",
    "reset": "#96784b",
    "incomplete": "#6978a5",
    "dns_nxdomain": "#5a2d4b",
    "dns_servfail": "#962d69",
    "dns_refused": "#a55a69",
    "dns_no_response": "#78d2e1",
    "dns_no_answer": "#e1a5ff",
    "pop_auth_failed": "#d22d87",
    "imap_auth_failed": "#a569d2",
}
assert set(CAUSE_COLOURS) == set(CAUSES) - {"ok"}, "every cause has its own colour"


def cause_colour(code: str) -> str:
    """The colour of a cause code: `ok` a light grey, an unknown code a darker grey."""
    if code == "ok":
        return OK_COLOUR
    return CAUSE_COLOURS.get(code, UNKNOWN_COLOUR)


def _channels(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _luminance(hex_colour: str) -> float:
    def lin(v: int) -> float:
        c = v / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = map(lin, _channels(hex_colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def text_colour(background: str) -> str:
    """Black or white, whichever contrasts more with `background` (WCAG contrast ratio)."""
    lum = _luminance(background)
    return "#000000" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "#ffffff"


def wireshark_colour(hex_colour: str) -> str:
    """'#rrggbb' → Wireshark's colorfilters notation '[r,g,b]' with 16-bit channels."""
    return "[" + ",".join(str(v * 257) for v in _channels(hex_colour)) + "]"


def colour_rule(name: str, display_filter: str, background: str, foreground: str = "") -> str:
    """One line of a Wireshark colorfilters file."""
    return (f"@{name}@{display_filter}@{wireshark_colour(background)}"
            f"{wireshark_colour(foreground or text_colour(background))}")


def session_rules() -> list[str]:
    """The profile's per-cause rules: every frame of a session in its cause's colour."""
    rules = [colour_rule("smtpdiag: smuggling session", 'smtpdiag.failure_cause == "smuggling_attempt" || '
                         'smtpdiag.anomalies == "nonstandard_terminator_accepted"', cause_colour("smuggling_attempt"))]
    rules += [colour_rule(f"smtpdiag: {code}", f'smtpdiag.failure_cause == "{code}"', colour)
              for code, colour in CAUSE_COLOURS.items() if code != "smuggling_attempt"]
    return rules


def clean_rule() -> str:
    return colour_rule("smtpdiag: clean session", 'smtpdiag.failure_cause == "ok"', OK_COLOUR)
