"""The commands a sensor runs (tshark and the plugin file, no Python) to write the exports the toolkit reads."""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Sequence

# The summary fields the tables read (tables/schema.py), plus the version of the plugin that wrote them.
VERSION_FIELD = "smtpdiag.version"


@dataclass(frozen=True)
class SensorCommand:
    """One way of exporting: what it writes, and the shell command."""

    kind: str
    what: str
    command: str


def export_field_list(fields: Sequence[str]) -> list[str]:
    """The fields an export must carry: the plugin version first, then `fields` (no duplicates)."""
    return [VERSION_FIELD] + [f for f in fields if f != VERSION_FIELD]


def sensor_commands(fields: Sequence[str], plugin: str = "smtpdiag.lua", capture: str = "CAP",
                    iface: str = "IFACE", anonymise: bool = False) -> list[SensorCommand]:
    """The tshark command lines of every export, for `capture` read with `plugin` (names as given, shell-quoted)."""
    q = shlex.quote
    lua = f"-X lua_script:{q(plugin)}"
    anon = " -o smtpdiag.anonymise:TRUE" if anonymise else ""
    two_pass = f"tshark -n -2 -r {q(capture)} {lua}{anon} -o smtpdiag.summary_only:TRUE -Y smtpdiag.session_end"
    # With -e, tshark writes the plugin's fields only: no other dissector's text (message headers) travels.
    es = " ".join(f"-e {f}" for f in export_field_list(fields))
    return [
        SensorCommand("summary", "the plugin's summary file: one line per conversation",
                      f"tshark -n -q -r {q(capture)} {lua}{anon} -o smtpdiag.summary_file:{q(capture + '.smtpdiag.tsv')}"),
        SensorCommand("summary-live", "the same on a live interface (one file until tshark stops)",
                      f"tshark -n -q -i {q(iface)} {lua}{anon} -o smtpdiag.summary_file:mail.smtpdiag.tsv"),
        SensorCommand("ek", "tshark -T ek (Elasticsearch/OpenSearch bulk format), one record per conversation",
                      f"{two_pass} -T ek {es} > {q(capture + '.smtpdiag.ek.json')}"),
        SensorCommand("json", "tshark -T json, one record per conversation",
                      f"{two_pass} -T json {es} > {q(capture + '.smtpdiag.json')}"),
        SensorCommand("fields", "tshark -T fields with a header, one line per conversation",
                      f"{two_pass} -T fields -E header=y -E separator=/t -E occurrence=a "
                      f"-E aggregator=\"$(printf '\\037')\" -E quote=n {es} > {q(capture + '.smtpdiag.fields.tsv')}"),
    ]
