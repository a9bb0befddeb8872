"""The report for people: what each cause means and what to check, figures, the self-contained HTML page and
its folder."""
from .folder import TABLE_FILES, write_report, write_report_from_tables

__all__ = ["TABLE_FILES", "write_report", "write_report_from_tables"]
