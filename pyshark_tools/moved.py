"""Where the names of the flat layout went, so that old import paths keep working for a while.

The package used to be 23 flat modules (`pyshark_tools.sessions`, `.batch`, `.plots`, ...).
`import pyshark_tools.sessions`, `from pyshark_tools.tshark import plugin_version` or
`pt.RunReport` still give the same objects, with a DeprecationWarning naming the new place;
public keywords that were renamed (`report=` → `read_log=`) are accepted the same way.
Nothing inside the package uses an old path.
"""
from __future__ import annotations

import functools
import importlib
import os
import sys
import types
import warnings
from typing import Any, Callable

PACKAGE = __name__.rpartition(".")[0]
_HERE = os.path.dirname(os.path.abspath(__file__)) + os.sep

# Old module ("" = the package itself) -> {old name: "new.module" or "new.module:new_name"}; "*": any other name.
MOVED: dict[str, dict[str, str]] = {
    "": {"RunReport": "errors:ReadLog"},
    "batch": {"BatchOptions": "runner.options:RunOptions", "JOBS_ENV": "runner.options",
              "SCHEDULER_ENV": "runner.options", "configured": "runner.options", "current_options": "runner.options",
              "RING": "runner.plan", "ring_key": "runner.plan", "order_captures": "runner.plan",
              "plan": "runner.jobs:group_jobs", "Part": "runner.jobs", "Job": "runner.jobs", "identity": "runner.jobs",
              "run_job": "runner.jobs", "run_jobs": "runner.jobs",
              "execute": "runner.executors", "Outcome": "runner.executors", "BatchRows": "runner.run:RunRows",
              "*": "runner.run"},
    "cache": {"*": "runner.cache"},
    "causes": {"*": "report.causes"},
    "drill": {"*": "tables.drill"},
    "inputs": {"*": "runner.plan"},
    "latency": {"*": "tables.latency"},
    "output": {"*": "tables.write"},
    "packets": {"*": "tables.packets"},
    "plots": {"*": "report.plots"},
    "report_html": {"failing_mask": "tables.verdicts:failing", "*": "report.html"},
    "rows": {"SEP": "tshark.stream", "split_line": "tshark.stream", "read_rows": "tshark.stream",
             "*": "tables.columns"},
    "sessions": {"RunReport": "errors:ReadLog", "SESSION_COLUMNS": "tables.schema", "TXN_FIELDS": "tables.schema",
                 "PROTOS": "tables.schema", "DNS_COLUMNS": "tables.schema", "MAILBOX_COLUMNS": "tables.schema",
                 "CATEGORY_COLUMNS": "tables.schema", "transactions": "tables.transactions",
                 "*": "tables.sessions"},
    "stitch": {"*": "runner.stitch"},
    "summary": {"*": "tables.summary"},
    # `tshark` is a package now; these names left it
    "tshark": {"lua_plugin_path": "plugin.file", "plugin_version": "plugin.file", "sniff_capture": "runner.plan",
               "run_summary": "tshark.conversations:conversation_rows"},
}
# Old modules whose name no package or module of the new layout took.
OLD_MODULES = [m for m in MOVED if m and m not in ("tshark",)]


def warn(message: str) -> None:
    """A DeprecationWarning attributed to the first caller outside this package (and the import machinery)."""
    frame = sys._getframe(1)
    while frame.f_back is not None and (frame.f_code.co_filename.startswith(_HERE)
                                        or "importlib" in frame.f_code.co_filename):
        frame = frame.f_back
    g = frame.f_globals
    warnings.warn_explicit(message, DeprecationWarning, frame.f_code.co_filename, frame.f_lineno,
                           module=g.get("__name__", "?"), registry=g.setdefault("__warningregistry__", {}))


def new_place(old_module: str, name: str) -> tuple[str, str]:
    """(new module, new name) of `name` as the old module held it; AttributeError when it never did."""
    table = MOVED.get(old_module, {})
    target = table.get(name) or (table.get("*") if not name.startswith("_") else None)
    if target is None:
        where = f"{PACKAGE}.{old_module}" if old_module else PACKAGE
        raise AttributeError(f"module {where!r} has no attribute {name!r}")
    module, _, new_name = target.partition(":")
    return f"{PACKAGE}.{module}", new_name or name


def old_attribute(old_module: str, name: str) -> Any:
    """`old_module.name` from its new place, with a DeprecationWarning; an old module itself from the package."""
    if not old_module and name in OLD_MODULES:
        return sys.modules[f"{PACKAGE}.{name}"]
    module, new_name = new_place(old_module, name)
    value = getattr(importlib.import_module(module), new_name)
    old = ".".join(p for p in (PACKAGE, old_module, name) if p)
    warn(f"{old} is deprecated: use {module}.{new_name}")
    return value


def register_old_modules() -> None:
    """Put a stand-in for every old module into sys.modules: `import pyshark_tools.sessions` finds it there
    (and does not replace the package's `sessions` function with a module), its names come from old_attribute."""
    for old in OLD_MODULES:
        name = f"{PACKAGE}.{old}"
        if name not in sys.modules:
            module = types.ModuleType(name, f"Deprecated: the names of the old `{name}` live elsewhere now.")
            module.__getattr__ = functools.partial(old_attribute, old)   # type: ignore[method-assign]
            sys.modules[name] = module


def keyword_renamed(**renames: str) -> Callable[[Callable], Callable]:
    """Accept each old keyword (old="new") for a while: a DeprecationWarning, then the call as with the new one."""
    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{fn.__name__}() got both {old}= and {new}=")
                    warn(f"{fn.__name__}({old}=...) is deprecated: use {new}=")
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)
        return call
    return decorate
