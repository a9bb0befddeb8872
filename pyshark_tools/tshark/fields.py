"""The field catalogue: every display-filter field name a tshark knows and its type, from `tshark -G fields`.

Listing the fields takes tshark a second or two, so the catalogue of each (tshark, user, plugin
version) is kept on disk, in $XDG_CACHE_HOME/smtpdiag (~/.cache/smtpdiag).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional, Sequence

from ..atomic import write_text


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/smtpdiag (default ~/.cache/smtpdiag): the field catalogues, and results/ for the result cache."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "smtpdiag"


def parse_field_list(text: str) -> dict[str, str]:
    """`tshark -G fields` output → field name → type (FT_UINT32, FT_STRING, ...; protocols are 'FT_PROTOCOL')."""
    types: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if parts[0] == "F" and len(parts) >= 4:
            types[parts[2]] = parts[3]
        elif parts[0] == "P" and len(parts) >= 3:
            types[parts[2]] = "FT_PROTOCOL"
    return types


def catalogue_file(key: Sequence[str], tshark_path: str) -> Path:
    """Where the catalogue of this tshark with `key` (version, user, plugin version) is kept."""
    digest = hashlib.sha256("|".join(key).encode() + tshark_path.encode()).hexdigest()[:16]
    return user_cache_dir() / f"fields-{digest}.tsv"


def read_catalogue(path: Path) -> Optional[dict[str, str]]:
    """A kept catalogue, or None."""
    if not path.is_file():
        return None
    types = {}
    for line in path.read_text().splitlines():
        name, _, ftype = line.partition("\t")
        if name:
            types[name] = ftype
    return types or None


def catalogue_has(path: Path, name: str) -> Optional[bool]:
    """Whether a kept catalogue lists `name` (None when none is kept), without parsing all of it."""
    try:
        text = path.read_text()
    except OSError:
        return None
    return text.startswith(name + "\t") or f"\n{name}\t" in text


def keep_catalogue(path: Path, types: dict[str, str]) -> None:
    """Write the catalogue for next time; a cache that cannot be written is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, "\n".join(f"{k}\t{v}" for k, v in sorted(types.items())), durable=False)
    except OSError:
        pass
