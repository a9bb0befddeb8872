"""Column types: raw text cells → typed pandas columns (the contract's column conventions)."""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..gc_pause import gc_paused
from ..tshark.stream import SEP

UTC_TS = "datetime64[ns, UTC]"
# pandas keeps times and durations as int64 nanoseconds: about the years 1677-2262, ±292 years.
NS_LIMIT = (1 << 63) - 1
OUT_OF_RANGE = "timestamp_out_of_range"    # the anomaly of a row whose time or duration became NaT


# -- cell converters -----------------------------------------------------------

def _bool(v: str):
    if not v:
        return pd.NA
    vals = [p.strip().lower() in ("1", "true", "yes") for p in v.split(SEP) if p.strip() != ""]
    return any(vals) if vals else pd.NA


_BOOLS = {v: _bool(v) for v in ("", "0", "1", "True", "False")}     # what tshark and the plugin write


def to_bool(series: pd.Series) -> pd.Series:
    """tshark booleans: 1/0 on 4.0, True/False on 4.4+; several occurrences → any true; '' → <NA>."""
    return pd.Series([_BOOLS[v] if v in _BOOLS else _bool(v) for v in series], index=series.index,
                     dtype="boolean")


def _number(v: object) -> float:
    try:
        return float(v.split(SEP)[0]) if isinstance(v, str) and v else np.nan
    except ValueError:
        return np.nan


def first_numbers(series: pd.Series) -> pd.Series:
    """Each cell's first value as float64 (NaN when empty or not a number), parsed by Python's float(): exactly,
    where pandas' own parser before 3.0 can be one unit in the last place off."""
    cells = series.to_numpy(dtype=object, copy=True)
    if set(map(type, cells)) <= {str}:
        cells[cells == ""] = "nan"
        try:      # numpy calls float() on each cell: the same parse, without a Python call per cell
            return pd.Series(cells.astype(np.float64), index=series.index)
        except ValueError:              # several values, or text: cell by cell
            pass
    return pd.Series([_number(v) for v in series], index=series.index, dtype="float64")


def to_uint(series: pd.Series, dtype: str = "UInt64") -> pd.Series:
    return first_numbers(series).round().astype(dtype)


def to_float(series: pd.Series) -> pd.Series:
    return first_numbers(series).astype("Float64")


def _epoch_ns(v: str):
    """'1254722767.529050' → integer nanoseconds, exactly (no float rounding)."""
    v = v.split(SEP)[0].strip() if v else ""
    if not v:
        return None
    whole, _, frac = v.partition(".")
    try:
        ns = int(whole) * 1_000_000_000 + int((frac + "000000000")[:9] or 0)
    except ValueError:
        return None
    return ns if -NS_LIMIT < ns < NS_LIMIT else None


def to_epoch_utc(series: pd.Series) -> pd.Series:
    ns = series.map(_epoch_ns)
    return pd.to_datetime(pd.array(ns.tolist(), dtype="Int64"), unit="ns", utc=True).astype(UTC_TS) \
        if len(ns) else pd.Series([], dtype=UTC_TS)


def to_timedelta(series: pd.Series) -> pd.Series:
    secs = first_numbers(series)
    secs = secs.where(secs.abs() < NS_LIMIT / 1e9 * 0.999)     # beyond ±292 years: NaT, not OverflowError
    return pd.to_timedelta(secs, unit="s")


def to_str(series: pd.Series) -> pd.Series:
    """First occurrence as a nullable string ('' → <NA>)."""
    return pd.Series([(v if SEP not in v else v.split(SEP, 1)[0]) if v else pd.NA for v in series],
                     index=series.index, dtype="string")


def to_list(series: pd.Series) -> pd.Series:
    """All occurrences as a Python list (an object column)."""
    return pd.Series([([v] if SEP not in v else [p for p in v.split(SEP) if p != ""]) if v else []
                      for v in series], index=series.index, dtype=object)


def to_category(series: pd.Series) -> pd.Series:
    return to_str(series).astype("category")


CONVERTERS: Mapping[str, Callable[[pd.Series], pd.Series]] = {
    "bool": to_bool, "uint": to_uint, "uint16": lambda s: to_uint(s, "UInt16"),
    "uint32": lambda s: to_uint(s, "UInt32"), "float": to_float, "time": to_epoch_utc,
    "timedelta": to_timedelta, "str": to_str, "list": to_list, "category": to_category,
}


@gc_paused
def typed_frame(rows: Sequence[Sequence[str]], columns: Sequence[tuple[str, str, str]]) -> pd.DataFrame:
    """rows of raw cells + [(column, tshark field, kind)] → a typed DataFrame, columns in that order."""
    names = [c[0] for c in columns]
    if rows and all(len(r) == len(names) for r in rows):
        raw = dict(zip(names, zip(*rows)))          # column by column, no intermediate frame
    else:
        frame = pd.DataFrame(rows, columns=names, dtype=object) if rows else \
            pd.DataFrame({n: pd.Series([], dtype=object) for n in names})
        raw = {n: frame[n].tolist() for n in names}
    out = {}
    lost = np.zeros(len(rows), dtype=bool)
    for name, _field, kind in columns:
        col = raw[name]
        cells = pd.Series(col, dtype=object)
        if set(map(type, col)) - {str}:         # None, NaN: empty cells
            cells = cells.fillna("")
        out[name] = CONVERTERS[kind](cells)
        if kind in ("time", "timedelta"):
            lost |= (cells.to_numpy() != "") & np.asarray(pd.isna(out[name]), dtype=bool)
    if lost.any() and "anomalies" in out and out["anomalies"].dtype == object:
        out["anomalies"] = pd.Series([a + [OUT_OF_RANGE] if bad and OUT_OF_RANGE not in a else a
                                      for a, bad in zip(out["anomalies"], lost)], dtype=object)
    return pd.DataFrame(out)


def guess_kind(field_type: str) -> str:
    """Map a tshark -G fields type (FT_UINT32, FT_BOOLEAN, ...) to a converter kind."""
    if field_type in ("FT_BOOLEAN",):
        return "bool"
    if field_type.startswith(("FT_UINT", "FT_INT", "FT_FRAMENUM")):
        return "uint" if field_type.startswith(("FT_UINT", "FT_FRAMENUM")) else "float"
    if field_type in ("FT_FLOAT", "FT_DOUBLE", "FT_RELATIVE_TIME"):
        return "float"
    return "str"
