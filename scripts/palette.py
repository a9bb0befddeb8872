#!/usr/bin/env python3
"""How the report's cause colours were chosen, and the colour science the palette test uses.

Colours are compared as people see them: CIEDE2000 distance in CIELAB, for normal vision and
for protanopia, deuteranopia and tritanopia (Machado, Oliveira & Fernandes 2009, severity 1).
`choose()` picks colours one at a time from a grid of sRGB candidates, each time the one
farthest from those already chosen, starting from the page's white, the `ok` grey and black
text. "Farthest" is the smaller of the distance in normal vision and CVD_WEIGHT times the
smallest distance under the three colour-vision deficiencies: every vision keeps the colours
apart, and normal vision gets more variety than the deficiencies allow. Candidates with a
green hue, too light to see on white or too close to grey are left out. The result is pasted into
pyshark_tools/report/palette.py (`FAILURE_COLOURS`), so the palette never changes by accident.

    .venv/bin/python scripts/palette.py          # print the chosen colours and their distances
"""
from __future__ import annotations

import colorsys
import itertools
import sys
from typing import Iterable, Sequence

import numpy as np

# Machado et al. 2009, severity 1.0, applied to linear RGB.
CVD = {
    "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                            [-0.003882, -0.048116, 1.051998]]),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                              [-0.011820, 0.042940, 0.968881]]),
    "tritanopia": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                            [0.004733, 0.691367, 0.303900]]),
}
VISIONS = ("normal", *CVD)
GREEN_HUES = (55.0, 185.0)     # degrees (HSV hue) counted as green
WHITE, OK_GREY, TEXT = "#ffffff", "#c8c8c8", "#222222"
CVD_WEIGHT = 1.6


def rgb(hex_colour: str) -> np.ndarray:
    h = hex_colour.lstrip("#")
    return np.array([int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)])


def to_hex(c: Iterable[float]) -> str:
    return "#" + "".join(f"{int(round(min(1.0, max(0.0, float(v))) * 255)):02x}" for v in c)


def _linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _gamma(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 0, 1)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


def seen_as(c: np.ndarray, vision: str) -> np.ndarray:
    """The sRGB colour (0..1) a person with `vision` perceives in its place."""
    if vision == "normal":
        return c
    return _gamma(_linear(c) @ CVD[vision].T)


def lab(c: np.ndarray) -> np.ndarray:
    """sRGB (0..1, last axis) → CIELAB (D65)."""
    m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = _linear(c) @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def delta_e(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (broadcasts over leading axes)."""
    L1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    L2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_bar ** 7 / (c_bar ** 7 + 25 ** 7)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p, h2p = np.degrees(np.arctan2(b1, a1p)) % 360, np.degrees(np.arctan2(b2, a2p)) % 360
    dL, dC = L2 - L1, c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0, dh)
    dH = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    L_bar, c_bar_p = (L1 + L2) / 2, (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_bar = np.where(c1p * c2p == 0, h_sum,
                     np.where(np.abs(h1p - h2p) <= 180, h_sum / 2,
                              np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2)))
    t = (1 - 0.17 * np.cos(np.radians(h_bar - 30)) + 0.24 * np.cos(np.radians(2 * h_bar))
         + 0.32 * np.cos(np.radians(3 * h_bar + 6)) - 0.20 * np.cos(np.radians(4 * h_bar - 63)))
    sl = 1 + 0.015 * (L_bar - 50) ** 2 / np.sqrt(20 + (L_bar - 50) ** 2)
    sc, sh = 1 + 0.045 * c_bar_p, 1 + 0.015 * c_bar_p * t
    rt = (-2 * np.sqrt(c_bar_p ** 7 / (c_bar_p ** 7 + 25 ** 7))
          * np.sin(np.radians(60 * np.exp(-(((h_bar - 275) / 25) ** 2)))))
    return np.sqrt((dL / sl) ** 2 + (dC / sc) ** 2 + (dH / sh) ** 2 + rt * (dC / sc) * (dH / sh))


def hue(hex_colour: str) -> tuple[float, float, float]:
    """(HSV hue in degrees, saturation, value)."""
    h, s, v = colorsys.rgb_to_hsv(*rgb(hex_colour))
    return h * 360, s, v


def is_green(hex_colour: str) -> bool:
    """A visibly green colour: its hue lies in GREEN_HUES and it is not a grey."""
    h, s, _ = hue(hex_colour)
    return s > 0.12 and GREEN_HUES[0] <= h <= GREEN_HUES[1]


def min_distance(colours: Sequence[str], visions: Sequence[str] = VISIONS) -> tuple[float, str, str, str]:
    """The smallest CIEDE2000 distance between two of `colours` under any of `visions`: (distance, vision, a, b)."""
    best = (float("inf"), "", "", "")
    c = np.array([rgb(x) for x in colours])
    for vision in visions:
        labs = lab(seen_as(c, vision))
        d = delta_e(labs[:, None, :], labs[None, :, :])
        np.fill_diagonal(d, np.inf)
        i, j = np.unravel_index(np.argmin(d), d.shape)
        if d[i, j] < best[0]:
            best = (float(d[i, j]), vision, colours[i], colours[j])
    return best


def _candidates(step: int = 15) -> list[str]:
    out = []
    for r, g, b in itertools.product(range(0, 256, step), repeat=3):
        c = to_hex((r / 255, g / 255, b / 255))
        L, a, bb = lab(rgb(c))
        if is_green(c) or L > 82 or L < 22 or np.hypot(a, bb) < 25:
            continue
        out.append(c)
    return out


def choose(n: int, fixed: Sequence[str] = (WHITE, OK_GREY, TEXT)) -> list[str]:
    """`n` colours, each the candidate farthest (see the module's docstring) from every colour before it."""
    cands = _candidates()
    c_rgb = np.array([rgb(c) for c in cands])
    c_lab = {v: lab(seen_as(c_rgb, v)) for v in VISIONS}
    nearest = {v: np.full(len(cands), np.inf) for v in VISIONS}

    def take(colour: str) -> None:
        x = rgb(colour)
        for v in VISIONS:
            np.minimum(nearest[v], delta_e(c_lab[v], lab(seen_as(x, v))), out=nearest[v])

    for c in fixed:
        take(c)
    chosen: list[str] = []
    for _ in range(n):
        cvd = np.minimum.reduce([nearest[v] for v in CVD])
        k = int(np.argmax(np.minimum(nearest["normal"], CVD_WEIGHT * cvd)))
        chosen.append(cands[k])
        take(cands[k])
    return chosen


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 28
    colours = choose(n)
    print(colours)
    for vision in VISIONS:
        d, _, a, b = min_distance(colours, (vision,))
        print(f"{vision:13s} closest pair {a} {b}: CIEDE2000 {d:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
