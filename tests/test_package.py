"""The package's shape: its imports form no circle and take no private name, its public API is
pinned and documented, old import paths still work (deprecated), the README's layout table is true."""
from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT

import pyshark_tools as pt

PACKAGE = ROOT / "pyshark_tools"
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _modules() -> dict[str, Path]:
    """Dotted module name → file, for every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, list[str], int, dict[str, str]]]:
    """For every import of a package module in the file, at any depth: (module, names taken from it that are
    not modules, line, {local name: module} of the modules it binds)."""
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            parent = base[: len(base) - node.level + 1] if node.level else []
            target = ".".join(parent + ([node.module] if node.module else []))
            if target.split(".")[0] != "pyshark_tools":
                continue
            bound = {a.asname or a.name: f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES}
            found += [(m, [], node.lineno, {k: m}) for k, m in bound.items()]
            names = [a.name for a in node.names if f"{target}.{a.name}" not in MODULES]
            if names:
                found.append((target, names, node.lineno, {}))
        elif isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno, {a.asname: a.name} if a.asname else {})
                      for a in node.names if a.name.split(".")[0] == "pyshark_tools"]
    return found


def _graph() -> dict[str, set[str]]:
    return {name: {target for target, *_ in _imports(name, path) if target != name} for name, path in MODULES.items()}


def test_the_imports_walk_every_module():
    assert {"pyshark_tools", "pyshark_tools.tables.sessions", "pyshark_tools.runner.run",
            "pyshark_tools.tshark.program", "pyshark_tools.report.html"} <= set(MODULES)
    graph = _graph()
    assert "pyshark_tools.runner.plan" in graph["pyshark_tools.runner.run"]     # the walk sees relative imports
    assert all(target in MODULES for targets in graph.values() for target in targets)


def test_no_import_circle():
    graph = _graph()
    circles: list[list[str]] = []
    state: dict[str, int] = {}        # 1 = on the path, 2 = done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert circles == [], "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_no_private_name_crosses_a_module():
    taken = []
    for name, path in MODULES.items():
        modules = {}
        for target, names, line, bound in _imports(name, path):
            taken += [f"{path.relative_to(ROOT)}:{line} takes {n} from {target}" for n in names if _private(n)]
            modules.update(bound)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):    # `from . import stitch`; stitch._x
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in modules and _private(node.attr):
                taken.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {modules[node.value.id]}.{node.attr}")
    assert taken == []


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_import_hides_from_this_walk():
    """importlib and __import__ only in moved.py, whose table names the old paths' new places."""
    hidden = []
    for name, path in MODULES.items():
        if name == "pyshark_tools.moved":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)) \
                    and "importlib" in [getattr(node, "module", None), *[a.name for a in node.names]] \
                    or isinstance(node, ast.Name) and node.id == "__import__":
                hidden.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert hidden == []


PUBLIC = [
    "sessions", "transactions", "sessions_and_transactions", "dns_lookups", "mailbox_sessions", "packets",
    "summary", "session_packets", "latencies", "write_report",
    "Tshark", "find_tshark", "lua_plugin_path", "ReadLog",
    "SmtpdiagError", "TsharkNotFound", "TsharkError", "PluginNotLoaded", "InputError",
    "__version__",
]


def test_public_api_is_pinned_importable_and_documented():
    assert pt.__all__ == PUBLIC
    python_section = README[README.index("## Python"):README.index("## Layout")]
    for name in PUBLIC:
        value = getattr(pt, name)
        if name == "__version__":
            assert re.fullmatch(r"\d+\.\d+\.\d+", value)
            continue
        assert inspect.getdoc(value), f"{name} has no docstring"
        assert f"`{name}" in python_section or f"{name}(" in python_section, f"README's Python section: {name}?"
        assert name in pt.__doc__, f"the package docstring omits {name}"
    folder = importlib.import_module("pyshark_tools.report.folder")
    assert pt.report.write_report_from_tables is folder.write_report_from_tables


# (old path, name, new module, new name): what users and notebooks imported from the flat layout
OLD_PATHS = [
    ("pyshark_tools", "RunReport", "pyshark_tools.errors", "ReadLog"),
    ("pyshark_tools.sessions", "RunReport", "pyshark_tools.errors", "ReadLog"),
    ("pyshark_tools.sessions", "sessions", "pyshark_tools.tables.sessions", "sessions"),
    ("pyshark_tools.sessions", "transactions", "pyshark_tools.tables.transactions", "transactions"),
    ("pyshark_tools.sessions", "SESSION_COLUMNS", "pyshark_tools.tables.schema", "SESSION_COLUMNS"),
    ("pyshark_tools.batch", "configured", "pyshark_tools.runner.options", "configured"),
    ("pyshark_tools.batch", "BatchOptions", "pyshark_tools.runner.options", "RunOptions"),
    ("pyshark_tools.batch", "ring_key", "pyshark_tools.runner.plan", "ring_key"),
    ("pyshark_tools.batch", "run_captures", "pyshark_tools.runner.run", "run_captures"),
    ("pyshark_tools.inputs", "expand_inputs", "pyshark_tools.runner.plan", "expand_inputs"),
    ("pyshark_tools.cache", "ResultCache", "pyshark_tools.runner.cache", "ResultCache"),
    ("pyshark_tools.stitch", "find_spans", "pyshark_tools.runner.stitch", "find_spans"),
    ("pyshark_tools.rows", "typed_frame", "pyshark_tools.tables.columns", "typed_frame"),
    ("pyshark_tools.rows", "SEP", "pyshark_tools.tshark.stream", "SEP"),
    ("pyshark_tools.packets", "packets", "pyshark_tools.tables.packets", "packets"),
    ("pyshark_tools.latency", "latencies", "pyshark_tools.tables.latency", "latencies"),
    ("pyshark_tools.summary", "summary", "pyshark_tools.tables.summary", "summary"),
    ("pyshark_tools.drill", "session_packets", "pyshark_tools.tables.drill", "session_packets"),
    ("pyshark_tools.output", "write_table", "pyshark_tools.tables.write", "write_table"),
    ("pyshark_tools.plots", "causes_plot", "pyshark_tools.report.plots", "causes_plot"),
    ("pyshark_tools.causes", "describe", "pyshark_tools.report.causes", "describe"),
    ("pyshark_tools.report_html", "render", "pyshark_tools.report.html", "render"),
    ("pyshark_tools.tshark", "plugin_version", "pyshark_tools.plugin.file", "plugin_version"),
    ("pyshark_tools.tshark", "lua_plugin_path", "pyshark_tools.plugin.file", "lua_plugin_path"),
    ("pyshark_tools.tshark", "sniff_capture", "pyshark_tools.runner.plan", "sniff_capture"),
    ("pyshark_tools.tshark", "run_summary", "pyshark_tools.tshark.conversations", "conversation_rows"),
]


@pytest.mark.parametrize("old, name, new, new_name", OLD_PATHS, ids=[f"{o}.{n}" for o, n, _, _ in OLD_PATHS])
def test_old_import_paths_work_with_a_deprecation(old, name, new, new_name):
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=re.escape(f"use {new}.{new_name}")):
        value = getattr(module, name)
    assert value is getattr(importlib.import_module(new), new_name)


def test_every_moved_name_has_a_new_place():
    from pyshark_tools.moved import MOVED, new_place

    for old, table in MOVED.items():
        for name, target in table.items():
            if name != "*":
                module, new_name = new_place(old, name)
                assert hasattr(importlib.import_module(module), new_name), f"{old}.{name} -> {target}"
            else:
                importlib.import_module(f"pyshark_tools.{target}")


def test_names_that_stayed_need_no_shim():
    from pyshark_tools.plugin import install_plugin
    from pyshark_tools.report import write_report
    from pyshark_tools.tshark import Tshark, stream_fields

    assert Tshark is pt.Tshark and callable(install_plugin) and callable(write_report) and callable(stream_fields)


def test_importing_an_old_module_keeps_the_public_function():
    import pyshark_tools.sessions  # noqa: F401

    assert callable(pt.sessions) and pt.sessions.__module__ == "pyshark_tools.tables.sessions"
    with pytest.raises(AttributeError):
        pt.no_such_name


def test_renamed_keyword_still_works_with_a_deprecation(tshark):
    log = pt.ReadLog()
    with pytest.warns(DeprecationWarning, match=r"sessions\(report=\.\.\.\) is deprecated: use read_log="):
        df = pt.sessions(str(FIXTURES / "ok.pcap"), tshark=tshark, report=log)
    assert len(df) == 1 and log.files == [str(FIXTURES / "ok.pcap")]
    with pytest.raises(TypeError, match="both report= and read_log="):
        pt.sessions(str(FIXTURES / "ok.pcap"), report=log, read_log=log)


RENAMED_KEYWORDS = [("sessions", "report"), ("transactions", "report"), ("dns_lookups", "report"),
                    ("mailbox_sessions", "report"), ("sessions_and_transactions", "report"), ("packets", "report"),
                    ("latencies", "report"), ("write_report", "report"),
                    ("report.write_report_from_tables", "run_report"), ("report.plots.plot", "report"),
                    ("report.plots.write_plot", "report")]


@pytest.mark.parametrize("name, old", RENAMED_KEYWORDS, ids=[n for n, _ in RENAMED_KEYWORDS])
def test_every_renamed_keyword_is_still_accepted(name, old):
    *module, attr = f"pyshark_tools.{name}".split(".")
    fn = getattr(importlib.import_module(".".join(module)), attr)
    assert "read_log" in inspect.signature(fn).parameters
    with pytest.raises(TypeError, match=f"both {old}= and read_log="):    # checked before any work is done
        fn("unused.pcap", **{old: pt.ReadLog(), "read_log": pt.ReadLog()})


# -- the README's layout table ------------------------------------------------------

def _layout_rows() -> list[tuple[list[str], str]]:
    """(paths, what it holds) of each row; paths after the first may be relative to the first's folder."""
    section = README[README.index("## Layout"):]
    section = section[: section.find("\n## ", 4)] if "\n## " in section[4:] else section
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([^`]+)`", cells[0])
        first = names[0]
        folder = first if first.endswith("/") else first.rpartition("/")[0] + "/" if "/" in first else ""
        paths = [first] + [n if "/" in n.rstrip("/") else folder + n for n in names[1:]]
        rows.append((paths, cells[1]))
    return rows


def test_every_path_in_the_layout_table_exists():
    rows = _layout_rows()
    assert len(rows) >= 10
    missing = [p for paths, _ in rows for p in paths if not (ROOT / p).exists()]
    assert missing == []


def test_every_folder_and_module_of_the_package_is_in_the_layout_table():
    rows = _layout_rows()
    listed = {p.rstrip("/") for paths, _ in rows for p in paths}
    folders = {str(p.parent.relative_to(ROOT)) for p in PACKAGE.glob("*/__init__.py")}
    modules = {str(p.relative_to(ROOT)) for p in PACKAGE.glob("*.py") if not p.name.startswith("__")}
    ignored = {line.strip().strip("/") for line in (ROOT / ".gitignore").read_text().splitlines()}
    top = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
           and p.name not in ignored and not p.name.endswith(".egg-info")}
    top_missing = {t for t in top if not any(p == t or p.startswith(t + "/") for p in listed)}
    assert folders - listed == set() and modules - listed == set() and top_missing == set()
    for paths, holds in rows:     # a package folder's row names each of its modules
        if paths[0] in {f + "/" for f in folders}:
            inside = {p.name for p in (ROOT / paths[0]).glob("*.py") if not p.name.startswith("__")}
            named = set(re.findall(r"`([\w]+\.py)`", holds))
            assert inside - named == set(), f"{paths[0]}: the README's row does not name {sorted(inside - named)}"
