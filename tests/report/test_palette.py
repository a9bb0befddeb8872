"""One colour per cause: distinct for every vision, never green for a failure, the same in the report, the
figures and the Wireshark profile's colouring rules."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import ROOT

from pyshark_tools.report import plots
from pyshark_tools.report.causes import CAUSES
from pyshark_tools.report.markup import CSS
from pyshark_tools.report.palette import CAUSE_COLOURS, OK_COLOUR, UNKNOWN_COLOUR, cause_colour, text_colour

sys.path.insert(0, str(ROOT / "scripts"))
import palette as science  # noqa: E402  (scripts/palette.py: the colour science)

FAILURES = [c for c in CAUSES if c != "ok"]
MIN_DISTANCE = 6.5        # CIEDE2000; about 2 is "just noticeable" side by side
PROFILE_RULES = ROOT / "lua" / "profile" / "smtpdiag" / "colorfilters"


def test_every_failure_cause_has_its_own_colour():
    colours = [cause_colour(c) for c in FAILURES]
    assert set(CAUSE_COLOURS) == set(FAILURES)
    assert len(set(colours)) == len(colours)
    assert OK_COLOUR not in colours and UNKNOWN_COLOUR not in colours
    assert cause_colour("ok") == OK_COLOUR and cause_colour("no_such_code") == UNKNOWN_COLOUR


@pytest.mark.parametrize("vision", science.VISIONS)
def test_colours_stay_apart_for_every_vision(vision):
    """Every two failure colours, the ok grey and the page's white stay apart in normal vision and under
    protanopia, deuteranopia and tritanopia."""
    colours = [*(cause_colour(c) for c in FAILURES), OK_COLOUR, science.WHITE]
    distance, _, a, b = science.min_distance(colours, (vision,))
    assert distance >= MIN_DISTANCE, f"{a} and {b} look alike under {vision}: CIEDE2000 {distance:.1f}"


def test_the_distance_check_catches_lookalikes():
    """Control for the check above: two near-identical reds, and a red with its deuteranopic twin, fail it."""
    assert science.min_distance(["#e11e00", "#e32200"])[0] < 2
    assert science.min_distance(["#d62728", "#8c8c00"], ("deuteranopia",))[0] < MIN_DISTANCE


def test_no_failure_is_green():
    greens = {c: cause_colour(c) for c in FAILURES if science.is_green(cause_colour(c))}
    assert greens == {}
    assert not science.is_green(UNKNOWN_COLOUR)
    # the check itself sees green where it is
    assert all(science.is_green(g) for g in ("#27ae60", "#16a085", "#00ff00", "#218c74", "#8fbc8f"))
    assert not any(science.is_green(c) for c in ("#ff0000", "#0000ff", "#ffa500", "#c8c8c8"))


def test_palette_is_deterministic():
    """The same code gives the same colour in another process (no hash seeds, no dict-order luck)."""
    code = ("from pyshark_tools.report.palette import cause_colour as c; from pyshark_tools.report.causes import "
            "CAUSES; print(','.join(c(k) for k in CAUSES))")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout for seed in ("1", "2")}
    assert runs == {",".join(cause_colour(k) for k in CAUSES) + "\n"}


def test_report_css_and_figures_use_the_palette():
    for c in CAUSES:
        assert f".sw-{c}{{background:{cause_colour(c)}}}" in CSS
    import pandas as pd
    s = pd.DataFrame({"failure_cause": pd.Series(["rejected", "tempfail", "tempfail", "ok"], dtype="category")})
    fig = plots.causes_plot(s)
    bars = {t.get_text(): p.get_facecolor() for t, p in zip(fig.axes[0].get_yticklabels(), fig.axes[0].patches)}
    from matplotlib.colors import to_hex
    assert {k: to_hex(v) for k, v in bars.items()} == {k: cause_colour(k) for k in ("rejected", "tempfail", "ok")}


def test_wireshark_profile_colours_sessions_like_the_report():
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "colour_rules.py"), "--check"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    rules = {}
    for line in PROFILE_RULES.read_text().splitlines():
        m = re.match(r"^@([^@]+)@(.+)@\[(\d+),(\d+),(\d+)\]\[(\d+),(\d+),(\d+)\]$", line)
        if m:
            bg = "#" + "".join(f"{int(v) >> 8:02x}" for v in m.groups()[2:5])
            fg = "#" + "".join(f"{int(v) >> 8:02x}" for v in m.groups()[5:8])
            rules[m.group(1)] = (m.group(2), bg, fg)
    for code in FAILURES:
        name = "smtpdiag: smuggling session" if code == "smuggling_attempt" else f"smtpdiag: {code}"
        flt, bg, fg = rules[name]
        assert f'smtpdiag.failure_cause == "{code}"' in flt
        assert bg == cause_colour(code) and fg == text_colour(bg)
    assert rules["smtpdiag: clean session"][1] == OK_COLOUR
    # a frame that proves a finding stays apart from every session colour
    assert rules["smtpdiag: failure evidence"][1] not in CAUSE_COLOURS.values()
    assert rules["smtpdiag: warning evidence"][1] not in CAUSE_COLOURS.values()


def test_a_drifted_profile_is_caught_and_rewritten(tmp_path):
    drifted = tmp_path / "colorfilters"
    original = PROFILE_RULES.read_text()
    drifted.write_text(original.replace("[65535,42405,0][0,0,0]", "[0,65535,0][0,0,0]", 1))
    script = [sys.executable, str(ROOT / "scripts" / "colour_rules.py")]
    assert subprocess.run([*script, "--check", str(drifted)], capture_output=True).returncode == 1
    assert subprocess.run([*script, str(drifted)]).returncode == 0
    assert drifted.read_text() == original
