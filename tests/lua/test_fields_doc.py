"""docs/fields.md cannot drift: its tables are what lua/fields_doc.py generates from the plugin's
lists, and those lists are what the built plugin registers in tshark."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIELDS_DOC = ROOT / "lua" / "fields_doc.py"
PLUGIN = Path(os.environ.get("SMTPDIAG_LUA") or ROOT / "lua" / "smtpdiag.lua")


def _load():
    spec = importlib.util.spec_from_file_location("smtpdiag_fields_doc_test", FIELDS_DOC)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


fields_doc = _load()


@pytest.fixture(scope="module")
def specs():
    if not shutil.which("tshark"):
        pytest.skip("no tshark on PATH")
    return fields_doc.read_specs()


def test_docs_fields_md_is_generated(specs):
    current = fields_doc.DOC.read_text(encoding="utf-8")
    assert fields_doc.render(current, specs) == current, "docs/fields.md is out of date: run python lua/fields_doc.py"


def test_check_mode(specs, tmp_path):
    res = subprocess.run([sys.executable, str(FIELDS_DOC), "--check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_every_registered_field_is_listed(specs):
    """The lists give what tshark -G fields reports for the built plugin: names and types."""
    res = subprocess.run(["tshark", "-G", "fields", "-X", f"lua_script:{PLUGIN}"], capture_output=True, text=True)
    registered = set()
    for line in res.stdout.splitlines():
        parts = line.split("\t")
        if parts[0] == "F" and (parts[4] == "smtpdiag" or parts[2].startswith("smtpdiag.")):
            registered.add((parts[2], parts[3]))
    assert registered == {(name, ftype) for name, ftype, _label, _desc in specs.fields}


def test_every_preference_is_listed(specs):
    res = subprocess.run(["tshark", "-G", "defaultprefs", "-X", f"lua_script:{PLUGIN}"],
                         capture_output=True, text=True)
    registered = dict(re.findall(r"^#(smtpdiag\.\w+): ?(.*)$", res.stdout, re.M))
    assert registered == {name: default for name, _type, default, _desc in specs.prefs}


def test_a_missing_block_is_a_clear_error(specs):
    with pytest.raises(ValueError, match="preferences"):
        fields_doc.render("<!-- fields: generated from x -->\n|x|\n<!-- end fields -->\n", specs)
