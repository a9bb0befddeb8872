"""The field catalogue: a run's plugin check searches the kept catalogue instead of parsing it."""
from __future__ import annotations

import pyshark_tools as pt
from pyshark_tools.tshark.fields import catalogue_has


def test_plugin_check_reads_the_kept_catalogue_without_parsing_it(tshark, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    pt.Tshark(tshark.path).check_plugin()               # lists the fields once and keeps them
    fresh = pt.Tshark(tshark.path)
    fresh.check_plugin()
    assert fresh._fields_cache == {}                     # answered from the kept file
    assert fresh.has_field("tcp.stream") and fresh.has_field("smtpdiag.failure_cause")
    assert not fresh.has_field("smtpdiag.no_such_field")
    assert "smtpdiag.failure_cause" in fresh.field_types()


def test_catalogue_has_matches_whole_names_only(tmp_path):
    kept = tmp_path / "fields.tsv"
    kept.write_text("smtp.req\tFT_NONE\nsmtp.req.command\tFT_STRING\n")
    assert catalogue_has(kept, "smtp.req") and catalogue_has(kept, "smtp.req.command")
    assert not catalogue_has(kept, "smtp.re") and not catalogue_has(kept, "req.command")
    assert catalogue_has(tmp_path / "none.tsv", "smtp.req") is None


def test_version_is_kept_per_binary_and_read_again_only_when_it_changes(tshark, tmp_path, monkeypatch):
    from pyshark_tools.tshark.program import version_file

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    wrapper = tmp_path / "tshark"
    wrapper.write_text(f'#!/bin/sh\nexec {tshark.path} "$@"\n')
    wrapper.chmod(0o755)
    first = pt.Tshark(str(wrapper)).version_string
    assert first.startswith("TShark") and first == tshark.version_string
    kept = version_file(str(wrapper))
    assert kept.read_text().strip() == first
    kept.write_text("TShark (kept) 9.9.9\n")                 # a later run reads the kept line, runs nothing
    assert pt.Tshark(str(wrapper)).version == (9, 9, 9)
    wrapper.write_text(wrapper.read_text() + "# upgraded\n")  # another binary: asked again
    assert version_file(str(wrapper)) != kept
    assert pt.Tshark(str(wrapper)).version_string == first
