"""The investigation notebook shipped with the package: where it is (installed, or in a checkout)."""
from __future__ import annotations

from pathlib import Path

NOTEBOOK_FILE = "investigate.ipynb"
_PACKAGE_DIR = Path(__file__).resolve().parent


def notebook_path() -> Path:
    """The `investigate.ipynb` template (papermill parameters: capture, pcap_file, stream)."""
    for p in (_PACKAGE_DIR / "notebooks" / NOTEBOOK_FILE, _PACKAGE_DIR.parent / "notebooks" / NOTEBOOK_FILE):
        if p.is_file():
            return p
    raise FileNotFoundError(f"{NOTEBOOK_FILE} is missing (looked in {_PACKAGE_DIR / 'notebooks'})")
