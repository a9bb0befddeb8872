"""Writing tables for people: CSV, JSON, Parquet and terminal text, with capture content neutralised."""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import IO, Optional, Union

import pandas as pd

from ..atomic import write_bytes, write_with

FORMATS = ("table", "csv", "json", "jsonl", "parquet")
# The format an output file's name asks for (`-o x.parquet`), unless --format says otherwise.
SUFFIX_FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
                  ".txt": "table"}

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# ... and \udc80-\udcff: the bytes of a file name that is not UTF-8 (os.fsdecode's surrogate escapes).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\udc80-\udcff]")


def neutralise_cell(value: str) -> str:
    """A CSV cell a spreadsheet would run as a formula gets a leading apostrophe."""
    if value and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def strip_control(value: str) -> str:
    """Terminal-safe text: escape sequences and control characters become visible \\xNN escapes."""
    return _CONTROL.sub(lambda m: "".join(f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\x{ord(c) - 0xdc00:02x}"
                                          if 0xdc80 <= ord(c) <= 0xdcff else f"\\u{ord(c):04x}"
                                          for c in m.group(0)), value)


def _text_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns
            if pd.api.types.is_string_dtype(df[c]) or df[c].dtype == object or isinstance(df[c].dtype, pd.CategoricalDtype)]


def _listish_to_text(df: pd.DataFrame, sep: str = ",") -> pd.DataFrame:
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object and out[c].map(lambda v: isinstance(v, (list, tuple))).any():
            out[c] = out[c].map(lambda v: sep.join(map(str, v)) if isinstance(v, (list, tuple)) else v)
    return out


def _stringify(df: pd.DataFrame, cell) -> pd.DataFrame:
    out = _listish_to_text(df)
    for c in _text_columns(out):
        out[c] = out[c].astype("object").map(lambda v: cell(str(v)) if isinstance(v, str) else v)
    return out


def to_csv_text(df: pd.DataFrame) -> str:
    safe = _stringify(df, lambda s: neutralise_cell(strip_control(s)))
    for c in safe.columns:
        if pd.api.types.is_timedelta64_dtype(safe[c]):
            safe[c] = safe[c].dt.total_seconds()
    return safe.to_csv(index=False)


def _json_ready(df: pd.DataFrame) -> pd.DataFrame:
    """Cells JSON can hold; text cells (and list items) with control characters and escape sequences made
    visible as in the other formats (a JSON \\u001b would reach a terminal as ESC again)."""
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_timedelta64_dtype(out[c]):
            out[c] = out[c].dt.total_seconds()
        elif isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].astype("string")
        if out[c].dtype == object or pd.api.types.is_string_dtype(out[c]):
            out[c] = out[c].astype(object).map(
                lambda v: strip_control(v) if isinstance(v, str) else
                [strip_control(x) if isinstance(x, str) else x for x in v] if isinstance(v, (list, tuple)) else v)
    return out


def to_json_text(df: pd.DataFrame) -> str:
    """JSON records, cells neutralised (_json_ready)."""
    return _json_ready(df).to_json(orient="records", date_format="iso", date_unit="us", force_ascii=True,
                                   indent=1) + "\n"


def to_jsonl_text(df: pd.DataFrame) -> str:
    """One JSON object per line (as Zeek's JSON logs and jq expect); no rows, no lines."""
    if df.empty:
        return ""
    text = _json_ready(df).to_json(orient="records", lines=True, date_format="iso", date_unit="us",
                                   force_ascii=True)
    return text.rstrip("\n") + "\n"


def to_terminal_text(df: pd.DataFrame, max_colwidth: int = 160) -> str:
    """A plain left-aligned text table (numbers right-aligned), capture content made terminal-safe."""
    if df.empty:
        return "(no rows)\n"
    safe = _stringify(df, lambda v: strip_control(v).replace("\t", "\\t").replace("\n", "\\n"))
    cols = list(safe.columns)
    numeric = {c: pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in cols}

    def show(v) -> str:
        if v is None or (not isinstance(v, (list, tuple)) and pd.isna(v)):
            return ""
        text = str(v)
        return text if len(text) <= max_colwidth else text[: max_colwidth - 1] + "…"

    cells = [[show(v) for v in safe[c].tolist()] for c in cols]
    widths = [max([len(str(c))] + [len(x) for x in col]) for c, col in zip(cols, cells)]
    def line(values) -> str:
        parts = [v.rjust(w) if numeric[c] else v.ljust(w) for c, v, w in zip(cols, values, widths)]
        return "  ".join(parts).rstrip()
    out = [line([str(c) for c in cols])]
    out += [line([col[i] for col in cells]) for i in range(len(safe))]
    return "\n".join(out) + "\n"


def write_parquet(df: pd.DataFrame, path: Union[str, Path]) -> None:
    """Parquet at `path`, written whole or not at all."""
    write_with(path, lambda tmp: df.to_parquet(tmp, index=False))


def format_for(path: Optional[Union[str, Path]], fmt: Optional[str] = None) -> str:
    """The output format: `fmt` if given, else what the file name ends in (no suffix: the text table)."""
    if fmt:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
        return fmt
    if path is None or str(path) == "-":
        return "table"
    suffix = Path(path).suffix.lower()
    if not suffix:
        return "table"
    if suffix not in SUFFIX_FORMATS:
        raise ValueError(f"{Path(path).name}: cannot tell the format from {suffix!r} "
                         f"(use {', '.join(SUFFIX_FORMATS)} or --format)")
    return SUFFIX_FORMATS[suffix]


def table_bytes(df: pd.DataFrame, fmt: str) -> bytes:
    """`df` in format `fmt`, as the bytes of a file."""
    if fmt == "parquet":
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        return buf.getvalue()
    text = {"table": to_terminal_text, "csv": to_csv_text, "json": to_json_text, "jsonl": to_jsonl_text}[fmt](df)
    return text.encode("utf-8")


def write_table(df: pd.DataFrame, fmt: str, path: Optional[Union[str, Path]] = None,
                stream: Optional[IO] = None) -> None:
    """Write `df` as `fmt` to `path` (atomically) or to `stream` (text, or binary for Parquet)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    if path is not None:
        write_bytes(path, table_bytes(df, fmt))
        return
    stream = stream if stream is not None else io.StringIO()
    if fmt == "parquet":
        binary = getattr(stream, "buffer", stream)
        if getattr(binary, "isatty", lambda: False)():
            raise ValueError("parquet is binary: not written to a terminal; redirect standard output or use -o FILE")
        binary.write(table_bytes(df, fmt))
        binary.flush()
        return
    stream.write(table_bytes(df, fmt).decode("utf-8"))
