"""One row per conversation: one pass of tshark with the plugin writing its summary file."""
from __future__ import annotations

import os
import subprocess
import tempfile
from typing import Optional, Sequence

from ..errors import PluginMismatch, PluginNotLoaded
from ..plugin.file import lua_plugin_path, plugin_build
from ..plugin.summary_file import read_summary_file, read_summary_writer, summary_file_option
from . import children
from .program import Tshark
from .stream import StreamResult

# The plugin scans TCP payload itself: Wireshark's own reassembly of SMTP/POP3 message data
# only costs time and memory (15 s and 400 MB on one 50 MB message). It also tracks sequence
# numbers itself and reads no tcp.analysis.* or tcp.time_* field, so Wireshark's TCP analysis
# is off too: about 6 % of the CPU and most of tshark's memory (730 → 255 MB on the 1M-packet
# bench capture); tcp.stream does not depend on it.
FAST_PREFS = ("-o", "smtp.desegment_data:FALSE", "-o", "smtp.desegment_lines:FALSE",
              "-o", "pop.desegment_data:FALSE",
              "-o", "tcp.analyze_sequence_numbers:FALSE", "-o", "tcp.calculate_timestamps:FALSE")


def conversation_rows(ts: Tshark, capture: str, fields: Sequence[str], extra: Sequence[str] = (),
                      result: Optional[StreamResult] = None, stdin: Optional[int] = None) -> list[list[str]]:
    """One pass of tshark with the plugin in batch mode: one row per conversation, cells in `fields` order.

    The plugin writes its summary file as sessions end and at the end of the capture, so memory
    (tshark's and ours) is bounded by the conversations, not the packets. A damaged capture still
    yields every row read before the damage (`result.damaged` says so).
    `capture` "-" with `stdin` (a descriptor): tshark reads the capture from that pipe or file.
    """
    result = result if result is not None else StreamResult()
    plugin = ts.lua or lua_plugin_path()
    expected = plugin_build(plugin)
    args = ["-n", "-q", "-r", capture, *ts.lua_args(), *FAST_PREFS, *extra, "-Y", "frame"]
    with ts.private_run(args) as run, tempfile.TemporaryFile() as err:
        out = os.path.join(run.work, "summary.tsv")
        command = [*run.command, *summary_file_option(out)]
        proc = children.run(command, env=run.env, stdin=stdin, stdout=subprocess.DEVNULL, stderr=err)
        err.seek(0)
        result.record(proc.returncode, err.read())
        if not os.path.exists(out):
            if proc.returncode == 0:
                raise PluginNotLoaded(f"the smtpdiag plugin wrote no summary for {capture}; run `smtpdiag doctor`")
            return []
        writer = read_summary_writer(out)
        if writer is None or writer.build != expected:
            who = f"version {writer.version} build {writer.build}" if writer else "a plugin that does not name itself"
            raise PluginMismatch(
                f"tshark ran another smtpdiag plugin ({who}) instead of {plugin} (build {expected}): "
                "another smtpdiag.lua is installed where tshark loads it; run `smtpdiag doctor`")
        return read_summary_file(out, fields)
