"""Installing for the Wireshark GUI: where Wireshark looks for personal plugins and profiles, and putting ours there.

The path functions mirror Wireshark's own rules (wsutil/filesystem.c, checked against
`tshark -G folders` 4.0, 4.4 and 4.6) and take `system` (as `platform.system()` names
it) and `env` so they can be tested for every OS anywhere. On the running OS they
return a `Path`; for another OS a `PurePosixPath` / `PureWindowsPath`.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Mapping, Optional

from ..atomic import copy_file
from ..errors import PluginNotLoaded
from .file import PACKAGE_DIR, PLUGIN_FILE, lua_plugin_path

PROFILE_NAME = "smtpdiag"


def _is_windows(system: str) -> bool:
    return system.lower().startswith("win")


def _path(system: str, *parts: str | PurePath) -> PurePath:
    """A concrete Path when `system` is the running OS's family, else the matching pure path."""
    if _is_windows(system) == (os.name == "nt"):
        return Path(*parts)
    return PureWindowsPath(*parts) if _is_windows(system) else PurePosixPath(*parts)


def _resolve(system: Optional[str], env: Optional[Mapping[str, str]]) -> tuple[str, Mapping[str, str]]:
    return system or platform.system(), os.environ if env is None else env


def _home(system: str, env: Mapping[str, str]) -> str:
    key = "USERPROFILE" if _is_windows(system) else "HOME"
    return env.get(key) or str(Path.home())


def personal_config_dir(system: Optional[str] = None, env: Optional[Mapping[str, str]] = None) -> PurePath:
    """Wireshark's personal configuration folder.

    $WIRESHARK_CONFIG_DIR if set; Windows: %APPDATA%\\Wireshark; Linux and macOS:
    $XDG_CONFIG_HOME/wireshark (default ~/.config/wireshark), except that Wireshark keeps
    using a legacy ~/.wireshark when that exists and the XDG folder does not.
    """
    system, env = _resolve(system, env)
    if env.get("WIRESHARK_CONFIG_DIR"):
        return _path(system, env["WIRESHARK_CONFIG_DIR"])
    if _is_windows(system):
        appdata = env.get("APPDATA") or str(_path(system, _home(system, env), "AppData", "Roaming"))
        return _path(system, appdata, "Wireshark")
    home = _home(system, env)
    xdg = _path(system, env.get("XDG_CONFIG_HOME") or _path(system, home, ".config"), "wireshark")
    legacy = _path(system, home, ".wireshark")
    if isinstance(xdg, Path) and not xdg.is_dir() and Path(legacy).is_dir():
        return legacy
    return xdg


def personal_plugins_dir(system: Optional[str] = None, env: Optional[Mapping[str, str]] = None) -> PurePath:
    """The personal (Lua) plugins folder: ~/.local/lib/wireshark/plugins; Windows: <config>\\plugins."""
    system, env = _resolve(system, env)
    if _is_windows(system):
        return personal_config_dir(system, env) / "plugins"
    return _path(system, _home(system, env), ".local", "lib", "wireshark", "plugins")


def personal_profiles_dir(system: Optional[str] = None, env: Optional[Mapping[str, str]] = None) -> PurePath:
    """Where Wireshark keeps configuration profiles: <personal config>/profiles."""
    return personal_config_dir(system, env) / "profiles"


def profile_source_dir() -> Path:
    """The shipped `smtpdiag` profile folder (lua/profile/smtpdiag, beside the Lua plugin)."""
    candidates = [PACKAGE_DIR / "lua" / "profile" / PROFILE_NAME, PACKAGE_DIR.parent / "lua" / "profile" / PROFILE_NAME]
    try:
        candidates.insert(0, lua_plugin_path().resolve().parent / "profile" / PROFILE_NAME)
    except PluginNotLoaded:  # no plugin found: the package-relative candidates may still exist
        pass
    for c in candidates:
        if (c / "preferences").is_file():
            return c
    raise FileNotFoundError(f"the smtpdiag profile folder is missing (looked in {candidates[-1]})")


def install_plugin(dest_dir: Optional[Path] = None, symlink: bool = False) -> Path:
    """Copy (or symlink) smtpdiag.lua into `dest_dir` (default: the personal plugins folder); returns the file."""
    src = lua_plugin_path().resolve()
    dest = Path(dest_dir if dest_dir is not None else personal_plugins_dir())
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / PLUGIN_FILE
    if target.is_symlink() or (symlink and target.exists()):
        target.unlink()  # never write through an old link into the source file
    if symlink:
        target.symlink_to(src)
    else:
        copy_file(src, target)
    return target


def install_profile(dest_dir: Optional[Path] = None) -> Path:
    """Copy the `smtpdiag` profile into `dest_dir` (default: the personal profiles folder); returns its folder.

    Our files (preferences, colorfilters, dfilter_buttons) are replaced whole (a symbolic link in
    their place is replaced too, its target left alone); other files Wireshark keeps in the
    profile (recent: column widths, ...) are left alone.
    """
    dest = Path(dest_dir if dest_dir is not None else personal_profiles_dir()) / PROFILE_NAME
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(profile_source_dir().iterdir()):
        if f.name == RECENT:
            merge_recent(f.read_text(), dest / RECENT)
        elif f.is_file():
            target = dest / f.name
            if target.is_symlink():
                target.unlink()   # the link itself is replaced, its target never written
            copy_file(f, target)
    return dest


RECENT = "recent"


def _without_key(text: str, key: str) -> str:
    """A recent file's text without the setting `key` (its line and its indented continuation lines)."""
    out: list[str] = []
    skipping = False
    for line in text.splitlines(True):
        if line.startswith(key + ":"):
            skipping = True
            continue
        if skipping and line[:1] in (" ", "\t") and line.strip():
            continue
        skipping = False
        out.append(line)
    return "".join(out)


def merge_recent(ours: str, target: Path) -> None:
    """Put the shipped settings (column widths) into the profile's recent file, keeping the others there."""
    keys = [line.split(":", 1)[0] for line in ours.splitlines() if line and not line[0] in "# \t" and ":" in line]
    old = target.read_text(errors="replace") if target.exists() else ""
    for key in keys:
        old = _without_key(old, key)
    body = "".join(line + "\n" for line in ours.splitlines() if not line.startswith("#"))
    target.write_text(old.rstrip("\n") + ("\n\n" if old.strip() else "") + body)
