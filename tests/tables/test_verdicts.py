"""The one definition of "failing", the cause filter and what `--fail-on` finds (pure functions)."""
from __future__ import annotations

import pandas as pd

from pyshark_tools.tables.summary import summary
from pyshark_tools.tables.verdicts import causes_found, failing, with_causes


def _table(causes: list) -> pd.DataFrame:
    return pd.DataFrame({"failure_cause": pd.Series(causes, dtype="category"),
                         "last_reply": pd.Series(["250 OK"] * len(causes), dtype="string"),
                         "server_ip": "192.0.2.1", "server_port": pd.Series([25] * len(causes), dtype="UInt16")})


def test_failing_counts_a_missing_cause_as_failing():
    assert list(failing(_table(["ok", "reset", None, "ok"]))) == [False, True, True, False]


def test_with_causes_keeps_those_rows_renumbered():
    df = with_causes(_table(["ok", "reset", "tempfail", "reset"]), ["reset"])
    assert list(df["failure_cause"]) == ["reset", "reset"] and list(df.index) == [0, 1]


def test_causes_found_for_fail_on():
    df = _table(["ok", "reset", "tempfail"])
    assert causes_found(df, ["any"]) == ["reset", "tempfail"]
    assert causes_found(df, ["tempfail", "data_timeout"]) == ["tempfail"]
    assert causes_found(df, ["ok"]) == ["ok"]
    assert causes_found(_table(["ok"]), ["any"]) == [] and causes_found(df.iloc[0:0], ["any"]) == []


def test_summary_counts_failing_by_the_same_rule():
    s = summary(_table(["ok", "reset", None]))
    by_cause = s[s["dimension"] == "reply_class"]
    assert list(by_cause["sessions"]) == [3] and list(by_cause["failing"]) == [2]
