"""The report for people: what each cause means and what to check, figures, the self-contained HTML page and
its folder."""
from __future__ import annotations

__all__ = ["TABLE_FILES", "write_report", "write_report_from_tables"]


def __getattr__(name: str):
    """The page and its figures load matplotlib: imported on first use, so that `causes` alone stays light."""
    if name in __all__:
        from . import folder
        return getattr(folder, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
