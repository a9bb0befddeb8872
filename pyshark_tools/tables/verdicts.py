"""The `failure_cause` column: which rows fail, which have given causes (the one definition of "failing")."""
from __future__ import annotations

from typing import Sequence

import pandas as pd

ANY = "any"   # --fail-on any: every cause but ok


def failing(df: pd.DataFrame) -> pd.Series:
    """True for rows whose cause is not `ok` (a missing cause counts as failing)."""
    return df["failure_cause"].astype("string").fillna("(none)") != "ok"


def with_causes(df: pd.DataFrame, causes: Sequence[str]) -> pd.DataFrame:
    """The rows whose failure_cause is one of `causes` ('any': every failing row), renumbered."""
    keep = df["failure_cause"].astype(str).isin(list(causes))
    if ANY in causes:
        keep |= failing(df)
    return df[keep].reset_index(drop=True)


def causes_found(df: pd.DataFrame, wanted: Sequence[str]) -> list[str]:
    """The causes of `wanted` that occur in `df` ('any' stands for every failing cause), sorted."""
    if not len(df):
        return []
    causes = df["failure_cause"].astype("string").fillna("(none)")
    if ANY in wanted:
        return sorted(set(causes[failing(df)]))
    return sorted(set(causes) & set(wanted))
