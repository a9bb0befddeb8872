"""The plugin file: where smtpdiag.lua is (beside the package, in a checkout, or $SMTPDIAG_LUA) and its version."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Optional

from ..errors import PluginNotLoaded

LUA_ENV = "SMTPDIAG_LUA"
PLUGIN_FILE = "smtpdiag.lua"
PACKAGE_DIR = Path(__file__).resolve().parent.parent


def lua_plugin_path() -> Path:
    """The smtpdiag Lua plugin shipped with this package (or $SMTPDIAG_LUA)."""
    env = os.environ.get(LUA_ENV)
    if env:
        return Path(env)
    for p in (PACKAGE_DIR / "lua" / PLUGIN_FILE, PACKAGE_DIR.parent / "lua" / PLUGIN_FILE):
        if p.is_file():
            return p
    raise PluginNotLoaded(f"{PLUGIN_FILE} not found next to {PACKAGE_DIR}; set ${LUA_ENV}")


def plugin_build(path: Optional[Path] = None) -> str:
    """The build id the plugin file declares (a hash of its modules; "source" if unbuilt)."""
    m = re.search(rb'SMTPDIAG_BUILD = "([^"]+)"', (path or lua_plugin_path()).read_bytes())
    return m.group(1).decode() if m else "source"


def plugin_version(path: Optional[Path] = None) -> str:
    """The version string declared in the Lua plugin plus a short content hash."""
    path = path or lua_plugin_path()
    data = path.read_bytes()
    m = re.search(rb'SMTPDIAG_VERSION = "([^"]+)"', data)
    version = m.group(1).decode() if m else "unknown"
    return f"{version}+{hashlib.sha256(data).hexdigest()[:12]}"
