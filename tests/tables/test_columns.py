"""Cell converters (pure functions): numbers parse as Python's float() parses them, cell by cell or at once."""
from __future__ import annotations

import math

import pandas as pd

from pyshark_tools.tables.columns import first_numbers, to_uint
from pyshark_tools.tshark.stream import SEP


def python_float(cell: str) -> float:
    try:
        return float(cell.split(SEP)[0]) if cell else math.nan
    except ValueError:
        return math.nan


def same(got: pd.Series, cells: list[str]) -> bool:
    want = [python_float(c) for c in cells]
    return got.dtype == "float64" and all((math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(got, want))


def test_plain_numbers_parse_exactly_as_float_does():
    cells = ["", "1", "0.1", "2.00219297409058", " 7 ", "-0", "1e400", "nan", "123456789012345678"]
    assert same(first_numbers(pd.Series(cells, dtype=object)), cells)


def test_several_values_or_text_fall_back_cell_by_cell():
    cells = ["3", f"4{SEP}5", "abc", "", "0x10", "6.5"]
    got = first_numbers(pd.Series(cells, dtype=object, index=range(10, 16)))
    assert same(got, cells) and list(got.index) == list(range(10, 16))
    assert to_uint(pd.Series(cells, dtype=object)).tolist() == [3, 4, pd.NA, pd.NA, pd.NA, 6]


def test_cells_that_are_not_text_are_empty_or_not_numbers():
    cells = ["5", None, float("nan"), pd.NA, True, 7]
    got = first_numbers(pd.Series(cells, dtype=object))
    assert got.iloc[0] == 5 and got.iloc[1:].isna().all()


def test_a_table_fills_missing_cells_as_empty_ones():
    from pyshark_tools.tables.columns import typed_frame
    cols = [("n", "x", "uint"), ("s", "y", "str"), ("b", "z", "bool")]
    df = typed_frame([("1", None, "1"), (float("nan"), "a\x1fb", pd.NA), ("", "", "False")], cols)
    assert df["n"].tolist() == [1, pd.NA, pd.NA]
    assert df["s"].tolist() == [pd.NA, "a", pd.NA] and df["b"].tolist() == [True, pd.NA, False]
