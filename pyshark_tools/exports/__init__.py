"""Exports written on a sensor (tshark and the plugin, no Python) read as rows, in place of the capture.

formats.py tells an export from its first bytes (the plugin's summary file, tshark -T
ek/json/fields of the session-summary frames, each optionally gzip-compressed) and checks the
plugin version it names; read.py turns it into the rows a capture's own run gives
(runner/jobs.read_conversations); sensor.py prints the commands a sensor runs to write them.
"""
from .formats import ExportKind, is_export_name, sniff_export
from .read import ExportRows, capture_named_by, read_export

__all__ = ["ExportKind", "ExportRows", "capture_named_by", "is_export_name", "read_export", "sniff_export"]
