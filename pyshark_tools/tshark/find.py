"""Finding tshark: an explicit path, $SMTPDIAG_TSHARK, PATH, then the usual install folders."""
from __future__ import annotations

import os
import platform
import shutil
from typing import Optional

from ..errors import TsharkNotFound

TSHARK_ENV = "SMTPDIAG_TSHARK"

_WINDOWS_PATHS = [
    r"C:\Program Files\Wireshark\tshark.exe",
    r"C:\Program Files (x86)\Wireshark\tshark.exe",
]
_MACOS_PATHS = [
    "/Applications/Wireshark.app/Contents/MacOS/tshark",
    "/opt/homebrew/bin/tshark",
    "/usr/local/bin/tshark",
]


def find_tshark(explicit: Optional[str] = None) -> str:
    """Return the tshark executable: `explicit`, $SMTPDIAG_TSHARK, PATH, then the usual install paths."""
    candidates: list[str] = []
    if explicit:
        candidates.append(explicit)
    elif os.environ.get(TSHARK_ENV):
        candidates.append(os.environ[TSHARK_ENV])
    else:
        found = shutil.which("tshark")
        if found:
            return found
        system = platform.system()
        candidates += _WINDOWS_PATHS if system == "Windows" else _MACOS_PATHS if system == "Darwin" else []
    for c in candidates:
        resolved = shutil.which(c) if os.sep not in c and "/" not in c else c
        if resolved and os.path.isfile(resolved) and os.access(resolved, os.X_OK):
            return resolved
    where = candidates[0] if candidates else "PATH"
    raise TsharkNotFound(
        f"tshark not found ({where}); install Wireshark's tshark (Debian/Ubuntu: apt-get install tshark) "
        f"or point --tshark / ${TSHARK_ENV} at it"
    )
