"""lua/build.py: the one plugin file tshark loads is built from lua/smtpdiag/, deterministically."""
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
BUILD_PY = ROOT / "lua" / "build.py"


def _load_build():
    spec = importlib.util.spec_from_file_location("smtpdiag_lua_build_test", BUILD_PY)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


build = _load_build()


def test_loaded_plugin_is_a_fresh_build():
    """What tshark loads in the tests is what the committed modules build to."""
    loaded = Path(os.environ.get("SMTPDIAG_LUA") or ROOT / "lua" / "smtpdiag.lua")
    assert loaded.is_file(), f"{loaded} missing: run python lua/build.py"
    assert loaded.read_text(encoding="utf-8") == build.render(), \
        f"{loaded} differs from a fresh build of lua/smtpdiag/: run python lua/build.py"


def test_same_sources_same_bytes(tmp_path):
    a, b = build.build(tmp_path / "a.lua"), build.build(tmp_path / "b.lua")
    assert a.read_bytes() == b.read_bytes()
    assert a.stat().st_mode & 0o777 == 0o644


def test_version_and_build_id(tmp_path):
    data = build.build(tmp_path / "p.lua").read_bytes()
    declared = re.search(r'version = "([^"]+)"', (ROOT / "lua" / "smtpdiag" / "version.lua").read_text()).group(1)
    # The toolkit reads the version with this very expression.
    assert re.search(rb'SMTPDIAG_VERSION = "([^"]+)"', data).group(1).decode() == declared
    build_id = re.search(rb'\nlocal SMTPDIAG_BUILD = "([0-9a-f]{12})"\n', data).group(1).decode()
    assert build_id == build.build_id(build.modules())


def test_build_id_follows_every_module(tmp_path):
    src = tmp_path / "smtpdiag"
    shutil.copytree(ROOT / "lua" / "smtpdiag", src)
    before = build.build_id(build.modules(src))
    for path in sorted(src.glob("*.lua")):
        text = path.read_text()
        path.write_text(text + "-- changed\n")
        assert build.build_id(build.modules(src)) != before, path.name
        path.write_text(text)
    assert build.build_id(build.modules(src)) == before


def test_every_module_is_embedded_under_its_name(tmp_path):
    text = build.render()
    names = sorted(p.stem for p in (ROOT / "lua" / "smtpdiag").glob("*.lua"))
    embedded = re.findall(r'^module\("(\w+)", \[(=*)\[\n', text, re.M)
    assert sorted(n for n, _ in embedded) == [n for n in names if n != "version"]
    assert text.rstrip().endswith('require("smtpdiag.main")')


def test_long_string_never_closes_early():
    tricky = 'a = x[y[1]]\ns = [[ ]] .. [=[ ]=]\n'
    lit = build.long_string(tricky)
    assert lit.startswith("[==[\n") and lit.endswith("]==]")


def test_cli(tmp_path):
    out = tmp_path / "cli.lua"
    res = subprocess.run([sys.executable, str(BUILD_PY), "-o", str(out)], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == str(out)
    assert out.read_text() == build.render()
    bad = subprocess.run([sys.executable, str(BUILD_PY), "-o", str(tmp_path / "no" / "dir" / "x.lua")],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.startswith("build: ") and len(bad.stderr.splitlines()) == 1


def test_luacheck_clean():
    if not shutil.which("luacheck"):
        pytest.skip("luacheck not installed (scripts/setup installs lua-check)")
    res = subprocess.run(["luacheck", "--no-color", "lua/smtpdiag", "lua/tools", "tests/lua"], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:]
