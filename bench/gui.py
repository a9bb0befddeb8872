#!/usr/bin/env python3
"""Wireshark GUI timings under Xvfb: load and re-filter, with and without the plugin.

The real `wireshark` (Qt) runs as an unprivileged analyst (bench/gui-setup creates the user
and installs the plugin and profile in its home, the way a user would) on a virtual X
display. Each measured step ends on a completion signal, not a sleep:

- bench/lua/gui_probe.lua, loaded with `-X lua_script:`, is a frame tap: it leaves a marker
  file when a pass over the capture reaches its first frame and its last frame (the load,
  every re-filter), holding the process's CPU time; its mtime is the wall time.
- Then the harness waits until the Wireshark process tree stops using CPU (less than 20 ms
  over 0.5 s, read from /proc): what follows the last frame (the packet list rebuilt, rows
  coloured in idle time) counts too.

"done" is the last frame of the pass (the packet list is complete); "settled" is when the
CPU went quiet. A re-filter is typed into the display filter bar with xdotool and applied
with Return, as an analyst does; between two measured re-filters the filter is cleared (also
a full pass, timed as "clear").

    .venv/bin/python bench/gui.py measure --capture bench/out/mail-50000-port25.pcap
    .venv/bin/python bench/gui.py measure --capture CAP --rounds 3 --json bench/out/gui.json
    .venv/bin/python bench/gui.py shots --capture bench/out/mail-50000-port25.pcap --frame 60

Needs root (it runs bench/gui-setup and starts Wireshark as the analyst with setpriv).
`measure_gui()` is the entry point for bench/run.py.
"""
from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
PLUGIN = ROOT / "lua" / "smtpdiag.lua"
PROFILE = ROOT / "lua" / "profile" / "smtpdiag"
PROBE = HERE / "lua" / "gui_probe.lua"
USER = "smtpdiag-analyst"
SCREEN = (1600, 1000)
PLUGIN_FIELD = "smtpdiag.failure_cause"
# Re-filters of the same shape: a comparison on an SMTP field that shows about a tenth of the
# bench capture's frames (50k packets: 5,311 and 4,902 frames).
FILTER_PLUGIN = 'smtp.failure_cause != "ok"'
FILTER_RAW = "smtp.response.code != 250"


class GuiError(RuntimeError):
    """The GUI did not do what a step expected (with what was seen)."""


# ---------------------------------------------------------------- setup


@dataclass
class Analyst:
    """The unprivileged user Wireshark runs as."""

    name: str
    home: Path

    @property
    def config(self) -> Path:
        return self.home / ".config" / "wireshark"

    @property
    def plugins(self) -> Path:
        return self.home / ".local" / "lib" / "wireshark" / "plugins"

    def argv(self, env: dict[str, str], cmd: Sequence[str]) -> list[str]:
        """`cmd` as this user, with exactly `env` (plus HOME, USER, PATH)."""
        base = {"HOME": str(self.home), "USER": self.name, "LOGNAME": self.name, "PATH": "/usr/bin:/bin",
                "LANG": "C.UTF-8"}
        return ["setpriv", f"--reuid={self.name}", f"--regid={self.name}", "--init-groups", "env", "-i",
                *(f"{k}={v}" for k, v in {**base, **env}.items()), *cmd]

    def write(self, path: Path, text: str) -> None:
        """A file in the analyst's home, owned by the analyst."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        pw = pwd.getpwnam(self.name)
        os.chown(path, pw.pw_uid, pw.pw_gid)

    def installed_plugins(self) -> list[str]:
        return sorted(p.name for p in self.plugins.glob("*.lua")) if self.plugins.is_dir() else []


def setup(plugin: Optional[Path] = PLUGIN, profile: Path = PROFILE, user: str = USER) -> Analyst:
    """Install the GUI packages and the analyst if missing (bench/gui-setup), then put `plugin`
    (any file: the plugin may be generated) in the analyst's plugins folder, or remove it (None)."""
    if os.geteuid() != 0:
        raise SystemExit("gui: needs root (apt-get, useradd, setpriv)")
    args = [str(HERE / "gui-setup"), "--user", user, "--profile", str(profile)]
    args += ["--plugin", str(Path(plugin).resolve())] if plugin else ["--no-plugin"]
    res = subprocess.run(args, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"gui: gui-setup failed: {(res.stderr or res.stdout).strip()[-500:]}")
    pw = pwd.getpwnam(user)
    return Analyst(user, Path(pw.pw_dir))


def displayed(capture: Path, text: str, plugin: Optional[Path]) -> int:
    """Frames `text` shows after the load (two-pass tshark, so the plugin has decided every session)."""
    cmd = ["tshark", "-n", "-2", "-r", str(capture), "-Y", text, "-T", "fields", "-e", "frame.number"]
    if plugin:
        cmd[1:1] = ["-X", f"lua_script:{plugin}"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise GuiError(f"tshark -Y {text!r}: {res.stderr.strip()[-300:]}")
    return len(res.stdout.split())


def wireshark_version() -> str:
    out = subprocess.run(["wireshark", "--version"], capture_output=True, text=True,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}).stdout
    return out.splitlines()[0].rstrip(".") if out else ""


def frame_count(capture: Path) -> int:
    out = subprocess.run(["capinfos", "-c", "-M", "-T", "-r", str(capture)], capture_output=True, text=True,
                         check=True).stdout
    return int(out.strip().split("\t")[-1])


# ---------------------------------------------------------------- X display


class Xvfb:
    """A private virtual X display (context manager); `shot()` saves the screen as PNG."""

    def __init__(self, size: tuple[int, int] = SCREEN):
        self.size = size
        self.proc: Optional[subprocess.Popen] = None
        self.display = ""

    def __enter__(self) -> "Xvfb":
        for n in range(90, 190):
            if Path(f"/tmp/.X{n}-lock").exists() or Path(f"/tmp/.X11-unix/X{n}").exists():
                continue
            proc = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", f"{self.size[0]}x{self.size[1]}x24",
                                     "-nolisten", "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(100):
                if Path(f"/tmp/.X11-unix/X{n}").exists() or proc.poll() is not None:
                    break
                time.sleep(0.05)
            if proc.poll() is None:
                self.proc, self.display = proc, f":{n}"
                return self
        raise GuiError("no free X display between :90 and :189")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def env(self) -> dict[str, str]:
        return {**os.environ, "DISPLAY": self.display}

    def xdotool(self, *args: str) -> str:
        res = subprocess.run(["xdotool", *args], env=self.env(), capture_output=True, text=True)
        if res.returncode != 0:
            raise GuiError(f"xdotool {' '.join(args)}: {res.stderr.strip()}")
        return res.stdout

    def shot(self, path: Path) -> Path:
        """The whole screen as a PNG (ImageMagick's import)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["import", "-display", self.display, "-window", "root", str(path)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return path


# ---------------------------------------------------------------- one Wireshark


@dataclass
class Step:
    """One timed step: seconds from its start (launch or Return) to the pass's last frame
    ("done") and to CPU quiet ("settled"); the process tree's CPU seconds over the step; the
    dissection pass alone (its first to its last frame: wall, Wireshark's CPU)."""

    name: str
    done: float
    settled: float
    cpu_done: float
    cpu: float
    frames: int
    pass_wall: float = 0.0
    pass_cpu: float = 0.0


class Wireshark:
    """The Wireshark GUI as the analyst on `capture`, with the completion probe loaded."""

    def __init__(self, x: Xvfb, analyst: Analyst, capture: Path, profile: Optional[str] = None,
                 extra: Sequence[str] = (), timeout: float = 600.0, recent: Optional[dict[str, str]] = None,
                 cpus: Optional[Sequence[int]] = None):
        """`recent`: lines added to the profile's `recent` file (pane sizes, hidden panes) for this
        start; `cpus`: pin Wireshark to these CPUs."""
        self.x, self.analyst, self.capture = x, analyst, Path(capture).resolve()
        self.profile, self.extra, self.timeout = profile, list(extra), timeout
        self.recent, self.cpus = dict(recent or {}), list(cpus or [])
        self.frames = frame_count(self.capture)
        self.markers = Path(tempfile.mkdtemp(prefix="gui-probe-"))
        os.chmod(self.markers, 0o777)
        self.proc: Optional[subprocess.Popen] = None
        self.ps: Optional[psutil.Process] = None
        self.passes = 0
        self.window = ""
        self.fields: set[str] = set()

    # -- process
    def start(self) -> float:
        """Launch; returns the wall-clock launch time."""
        a = self.analyst
        runtime = Path(f"/tmp/runtime-{a.name}")
        runtime.mkdir(mode=0o700, exist_ok=True)
        pw = pwd.getpwnam(a.name)
        os.chown(runtime, pw.pw_uid, pw.pw_gid)
        # Same window and no remembered filter or file on every start.
        a.write(a.config / "recent_common", "".join(f"{k}: {v}\n" for k, v in {
            "gui.geometry_main_x": 0, "gui.geometry_main_y": 0, "gui.geometry_main_width": self.x.size[0],
            "gui.geometry_main_height": self.x.size[1], "gui.geometry_main_maximized": "FALSE",
            "privs.warn_if_elevated": "FALSE", "sys.warn_if_no_capture": "FALSE"}.items()))
        (a.config / "recent").unlink(missing_ok=True)
        if self.recent:
            rf = (a.config / "profiles" / self.profile / "recent") if self.profile else a.config / "recent"
            old = rf.read_text() if rf.exists() else ""
            a.write(rf, old + "".join(f"{k}: {v}\n" for k, v in self.recent.items()))
        env = {"DISPLAY": self.x.display, "XDG_RUNTIME_DIR": str(runtime), "SMTPDIAG_GUI_PROBE": str(self.markers),
               "SMTPDIAG_GUI_FRAMES": str(self.frames), "SMTPDIAG_GUI_FIELDS": PLUGIN_FIELD}
        cmd = ["wireshark", "-r", str(self.capture), "-X", f"lua_script:{PROBE}", *self.extra]
        if self.profile:
            cmd += ["-C", self.profile]
        argv = a.argv(env, cmd)
        if self.cpus:
            argv = ["taskset", "-c", ",".join(map(str, self.cpus)), *argv]
        self.log = (self.markers / "stderr").open("wb")   # a file: a full pipe would stall the GUI
        t0 = time.time()
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.log)
        self.ps = psutil.Process(self.proc.pid)
        return t0

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.markers, ignore_errors=True)

    def __enter__(self) -> "Wireshark":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def cpu(self, children: bool = True) -> float:
        """CPU seconds of Wireshark (what the probe's os.clock() counts) and its children (live and
        reaped: dumpcap lists the interfaces at start)."""
        assert self.ps is not None
        try:
            t = self.ps.cpu_times()
            if not children:
                return t.user + t.system
            total = t.user + t.system + t.children_user + t.children_system
            for c in self.ps.children(recursive=True):
                try:
                    ct = c.cpu_times()
                    total += ct.user + ct.system
                except psutil.Error:
                    pass
            return total
        except psutil.Error as e:
            raise GuiError(f"wireshark exited ({self._stderr()})") from e

    def _stderr(self) -> str:
        p = self.markers / "stderr"
        return p.read_text("utf-8", "replace").strip()[-300:] if p.exists() else ""

    # -- completion signals
    def _marker(self, name: str) -> Optional[tuple[float, float]]:
        """(wall time, process CPU s) the probe wrote into marker `name`, if it is there."""
        p = self.markers / name
        try:
            text = p.read_text().split()
            return p.stat().st_mtime, float(text[0])
        except (OSError, IndexError, ValueError):
            return None

    def wait_marker(self, name: str, timeout: float) -> tuple[float, float]:
        end = time.time() + timeout
        while time.time() < end:
            m = self._marker(name)
            if m:
                return m
            if self.proc and self.proc.poll() is not None:
                raise GuiError(f"wireshark exited before {name}: {self._stderr()}")
            time.sleep(0.02)
        raise GuiError(f"no {name} within {timeout:.0f} s")

    def wait_idle(self, quiet: float = 0.5, eps: float = 0.02, timeout: Optional[float] = None) -> tuple[float, float]:
        """Wait until the tree's CPU rises by at most `eps` s over `quiet` s; returns (wall time
        when it went quiet, CPU then)."""
        samples: list[tuple[float, float]] = []
        end = time.time() + (timeout or self.timeout)
        while time.time() < end:
            now, c = time.time(), self.cpu()
            samples.append((now, c))
            old = [s for s in samples if s[0] <= now - quiet]
            if old and c - old[-1][1] <= eps:
                # it went quiet at the first sample after which CPU rose by at most eps
                t_q, c_q = next(s for s in samples if c - s[1] <= eps)
                return t_q, c_q
            time.sleep(0.05)
        raise GuiError(f"wireshark never went idle within {timeout or self.timeout:.0f} s")

    def wait_pass(self, t0: float, cpu0: tuple[float, float], name: str, start_timeout: float = 30.0) -> Step:
        """The next pass over the capture, from `t0` (wall) and `cpu0` (CPU of the tree, of
        Wireshark alone) to its last frame and on to CPU quiet."""
        k = self.passes + 1
        t_start, cpu_start = self.wait_marker(f"pass{k}.start", start_timeout)
        t_end, cpu_end = self.wait_marker(f"pass{k}.end", self.timeout)
        self.passes = k
        frames = int((self.markers / f"pass{k}.end").read_text().split()[1])
        if frames != self.frames:
            raise GuiError(f"{name}: pass {k} saw {frames} frames, the capture has {self.frames}")
        t_q, c_q = self.wait_idle()
        t_q = max(t_q, t_end)
        return Step(name, t_end - t0, t_q - t0, cpu_end - cpu0[1], c_q - cpu0[0], frames, t_end - t_start,
                    cpu_end - cpu_start)

    # -- steps
    def load(self) -> Step:
        """Launch with -r and wait for the packet list to be complete and the CPU quiet."""
        t0 = self.start()
        step = self.wait_pass(t0, (0.0, 0.0), "load", start_timeout=120.0)
        self.fields = set((self.markers / "fields").read_text().split()) if (self.markers / "fields").exists() else set()
        ids = self.x.xdotool("search", "--onlyvisible", "--class", "wireshark").split()
        if not ids:
            raise GuiError("no visible Wireshark window")
        self.window = ids[-1]
        return step

    def type_filter(self, text: str) -> None:
        """Put `text` into the display filter bar (not applied yet)."""
        self.x.xdotool("windowfocus", "--sync", self.window)
        self.x.xdotool("key", "--clearmodifiers", "ctrl+slash")
        self.x.xdotool("key", "--clearmodifiers", "ctrl+a")
        if text:
            self.x.xdotool("type", "--delay", "2", text)
        else:
            self.x.xdotool("key", "BackSpace")

    def refilter(self, text: str, name: str = "refilter") -> Step:
        """Type `text` into the filter bar, then time Return until the re-dissection is complete."""
        self.type_filter(text)
        self.wait_idle()               # the filter bar's syntax check and completer settle first
        t0, cpu0 = time.time(), (self.cpu(), self.cpu(children=False))
        self.x.xdotool("key", "--clearmodifiers", "Return")
        try:
            return self.wait_pass(t0, cpu0, name, start_timeout=15.0)
        except GuiError as e:
            raise GuiError(f"filter {text!r} did not start a pass (invalid in this configuration?): {e}") from e

    def expand_diagnosis(self) -> None:
        """Select the last top-level item of the details tree (a post-dissector's tree, the
        plugin's, comes last) and expand it with its subtrees."""
        self.x.xdotool("windowfocus", "--sync", self.window)
        w, h = self.x.size
        # the first row of the details pane, below the packet list (Wireshark's default layout)
        upper = int(self.recent.get("gui.geometry_main_upper_pane", 442))
        self.x.xdotool("mousemove", "--sync", str(w // 8), str(upper + 100), "click", "1")
        self.wait_idle(quiet=0.3)
        self.x.xdotool("key", "--clearmodifiers", "End")
        self.x.xdotool("key", "--clearmodifiers", "shift+Right")
        self.x.xdotool("mousemove", str(w - 2), str(h - 2))   # no hover highlight in the picture
        self.wait_idle(quiet=0.3)

    def goto(self, frame: int) -> None:
        """Go → Go to Packet (Ctrl+G), frame number, Return."""
        self.x.xdotool("windowfocus", "--sync", self.window)
        self.x.xdotool("key", "--clearmodifiers", "ctrl+g")
        self.wait_idle(quiet=0.3)
        self.x.xdotool("type", "--delay", "2", str(frame))
        self.x.xdotool("key", "--clearmodifiers", "Return")
        self.wait_idle(quiet=0.3)


# ---------------------------------------------------------------- measurement


@dataclass
class Config:
    """One GUI configuration to time."""

    key: str
    label: str
    plugin: bool
    profile: Optional[str]
    filter: str


CONFIGS = {
    "raw": Config("raw", "no plugin, Default profile", False, None, FILTER_RAW),
    "plugin": Config("plugin", "plugin, Default profile", True, None, FILTER_PLUGIN),
    "profile": Config("profile", "plugin, smtpdiag profile", True, "smtpdiag", FILTER_PLUGIN),
}


@dataclass
class GuiRun:
    """Every step of every round of each configuration."""

    capture: str
    frames: int
    rounds: int
    steps: dict[str, list[dict]] = field(default_factory=dict)   # config key -> [Step as dict]
    filters: dict[str, str] = field(default_factory=dict)
    displayed: dict[str, int] = field(default_factory=dict)      # config key -> frames its filter shows
    wireshark: str = ""


def measure_gui(capture: Path, plugin: Path = PLUGIN, rounds: int = 3, refilters: int = 2,
                configs: Sequence[str] = ("raw", "plugin", "profile"), profile_dir: Path = PROFILE,
                filters: Optional[dict[str, str]] = None, cpus: Optional[Sequence[int]] = None,
                log=print) -> GuiRun:
    """Time the GUI's load and re-filters on `capture` for each configuration, interleaved round
    by round (the machine's speed drifts); each round is a fresh Wireshark. `filters` overrides
    a configuration's re-filter text; `cpus` pins Wireshark. Checks that the plugin's fields
    exist exactly where the plugin is meant to be loaded."""
    capture = Path(capture).resolve()
    run = GuiRun(str(capture), frame_count(capture), rounds)
    setup(None, profile_dir)
    run.wireshark = wireshark_version()
    with Xvfb() as x:
        for r in range(rounds):
            order = list(configs) if r % 2 == 0 else list(reversed(configs))
            for key in order:
                cfg = CONFIGS[key]
                text = (filters or {}).get(key, cfg.filter)
                run.filters[key] = text
                if key not in run.displayed:
                    run.displayed[key] = displayed(capture, text, plugin if cfg.plugin else None)
                analyst = setup(plugin if cfg.plugin else None, profile_dir)
                with Wireshark(x, analyst, capture, cfg.profile, cpus=cpus) as ws:
                    steps = [ws.load()]
                    loaded = PLUGIN_FIELD in ws.fields
                    if loaded != cfg.plugin:
                        raise GuiError(f"{key}: plugin field {PLUGIN_FIELD} {'missing' if cfg.plugin else 'present'} "
                                       f"(plugins folder: {analyst.installed_plugins()})")
                    for _ in range(refilters):
                        steps.append(ws.refilter(text))
                        steps.append(ws.refilter("", "clear"))
                run.steps.setdefault(key, []).extend(asdict(s) for s in steps)
                log(f"  round {r + 1} {cfg.label:<28} " + "  ".join(
                    f"{s.name} {s.done:.2f}/{s.settled:.2f} s ({s.cpu:.2f} CPU s)" for s in steps))
    return run


def summarize(run: GuiRun) -> dict[str, dict[str, list[float]]]:
    """config -> "STEP.done"/"STEP.settled"/"STEP.cpu"/"STEP.pass_wall" -> every measurement."""
    out: dict[str, dict[str, list[float]]] = {}
    for key, steps in run.steps.items():
        for s in steps:
            d = out.setdefault(key, {})
            for m in ("done", "settled", "cpu", "pass_wall"):
                d.setdefault(f"{s['name']}.{m}", []).append(s[m])
    return out


def table(run: GuiRun, base: str = "raw") -> str:
    """Markdown: median (min–max) per configuration and step, and ratios to `base` by medians."""
    summ = summarize(run)

    def cell(v: list[float]) -> str:
        return f"{statistics.median(v):.2f} ({min(v):.2f}–{max(v):.2f})" if v else "–"

    lines = ["| configuration | step | n | list complete s | settled s | CPU s | dissection pass s "
             "| CPU ratio to no plugin | settled ratio |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for key, d in summ.items():
        for step in ("load", "refilter", "clear"):
            if f"{step}.cpu" not in d:
                continue
            cpu, settled = d[f"{step}.cpu"], d[f"{step}.settled"]
            ratio = rs = "–"
            if key != base and base in summ and f"{step}.cpu" in summ[base]:
                ratio = f"{statistics.median(cpu) / statistics.median(summ[base][f'{step}.cpu']):.2f}×"
                rs = f"{statistics.median(settled) / statistics.median(summ[base][f'{step}.settled']):.2f}×"
            lines.append(f"| {CONFIGS[key].label} | {step} | {len(cpu)} | {cell(d[f'{step}.done'])} | {cell(settled)} "
                         f"| {cell(cpu)} | {cell(d[f'{step}.pass_wall'])} | {ratio} | {rs} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- screenshots


def screenshots(capture: Path, out_dir: Path, plugin: Optional[Path] = PLUGIN, profile: Optional[str] = "smtpdiag",
                filter_text: str = FILTER_PLUGIN, frame: Optional[int] = None, profile_dir: Path = PROFILE,
                prefix: str = "gui") -> list[Path]:
    """PNGs of the GUI on `capture`: after the load, after applying `filter_text`, and with the
    details tree of `frame` (default: the first frame the filter shows) expanded at the plugin's
    subtree."""
    analyst = setup(plugin, profile_dir)
    shots: list[Path] = []
    # the packet bytes pane hidden and a shorter packet list, so the details tree gets more room
    recent = {"gui.byte_view_show": "FALSE", "gui.geometry_main_upper_pane": "380"}
    with Xvfb() as x, Wireshark(x, analyst, capture, profile, recent=recent) as ws:
        ws.load()
        shots.append(x.shot(out_dir / f"{prefix}-load.png"))
        if filter_text:
            ws.refilter(filter_text)
            shots.append(x.shot(out_dir / f"{prefix}-filter.png"))
        if frame:
            ws.goto(frame)
        ws.expand_diagnosis()
        shots.append(x.shot(out_dir / f"{prefix}-tree.png"))
    return shots


# ---------------------------------------------------------------- CLI


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure", help="time load and re-filters; print a markdown table")
    m.add_argument("--capture", type=Path, required=True)
    m.add_argument("--plugin", type=Path, default=PLUGIN, help="the plugin file to install (default lua/smtpdiag.lua)")
    m.add_argument("--profile-dir", type=Path, default=PROFILE)
    m.add_argument("--rounds", type=int, default=3, help="fresh Wireshark starts per configuration")
    m.add_argument("--refilters", type=int, default=2, help="re-filters (each followed by a clear) per start")
    m.add_argument("--configs", default="raw,plugin,profile", help=f"of {','.join(CONFIGS)}")
    m.add_argument("--json", type=Path, help="also save every step here")
    m.add_argument("--cpus", help="pin Wireshark to these CPUs (taskset list, e.g. 1)")
    s = sub.add_parser("shots", help="screenshots after load, filter, and with the plugin's tree expanded")
    s.add_argument("--capture", type=Path, required=True)
    s.add_argument("--out", type=Path, default=OUT / "shots")
    s.add_argument("--plugin", type=Path, default=PLUGIN)
    s.add_argument("--profile", default="smtpdiag", help="profile name, '' for Default")
    s.add_argument("--filter", default=FILTER_PLUGIN)
    s.add_argument("--frame", type=int, help="the frame whose tree to show (default: the first shown)")
    s.add_argument("--prefix", default="gui")
    a = ap.parse_args(argv)
    if a.cmd == "measure":
        cpus = [int(c) for c in a.cpus.split(",")] if a.cpus else None
        run = measure_gui(a.capture, a.plugin, a.rounds, a.refilters, a.configs.split(","), a.profile_dir, cpus=cpus)
        if a.json:
            a.json.parent.mkdir(parents=True, exist_ok=True)
            a.json.write_text(json.dumps(asdict(run), indent=1))
        print(f"\n{run.wireshark}; {run.capture}: {run.frames:,} frames; filters: "
              + "; ".join(f"{CONFIGS[k].label}: `{v}` ({run.displayed[k]:,} frames)" for k, v in run.filters.items())
              + "\n")
        print(table(run))
    else:
        for p in screenshots(a.capture, a.out, a.plugin, a.profile or None, a.filter, a.frame, prefix=a.prefix):
            print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
