"""Builds the plugin into the package: `lua/build.py` joins lua/smtpdiag/*.lua into one smtpdiag.lua at wheel
(and sdist → wheel) build time; it lands in pyshark_tools/lua/ with the Wireshark profile, the notebook beside
the package in pyshark_tools/notebooks/. Everything else is in pyproject.toml."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildWithPlugin(build_py):
    """build_py, plus the built plugin, the profile and the notebook as package data (not in editable installs,
    which find them in the checkout)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "pyshark_tools"
        spec = importlib.util.spec_from_file_location("smtpdiag_lua_build", HERE / "lua" / "build.py")
        build = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(build)
        (target / "lua").mkdir(parents=True, exist_ok=True)
        build.build(target / "lua" / "smtpdiag.lua", HERE / "lua" / "smtpdiag")
        shutil.copytree(HERE / "lua" / "profile", target / "lua" / "profile", dirs_exist_ok=True)
        (target / "notebooks").mkdir(exist_ok=True)
        shutil.copyfile(HERE / "notebooks" / "investigate.ipynb", target / "notebooks" / "investigate.ipynb")


setup(cmdclass={"build_py": BuildWithPlugin})
