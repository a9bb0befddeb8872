"""transactions() agrees with Zeek's own smtp.log baselines on every transaction."""
from __future__ import annotations

import pytest

from conftest import CORPUS
from zeek_logs import baseline_captures, read_zeek_log

import pyshark_tools as pt

# Baselines produced with a non-default Zeek configuration: they do not describe the traffic alone.
CONFIG_DEPENDENT = {
    "scripts.base.protocols.smtp.mail-transactions-invalid-disable-analyzer":
        "Zeek ran with max_invalid_mail_transactions=2 and disabled its SMTP analyzer mid-session, so it "
        "never logged the last (valid) transaction; with the default setting the same capture gives the "
        "4 rows of the mail-transactions-invalid baseline, which we match",
}

PAIRS = baseline_captures()


def _zeek_value(v: str):
    return None if v in ("-", "(empty)") else v


@pytest.mark.parametrize("baseline,capture", PAIRS, ids=[b for b, _ in PAIRS])
def test_transactions_match_zeek(tshark, baseline, capture):
    if baseline in CONFIG_DEPENDENT:
        pytest.skip(CONFIG_DEPENDENT[baseline])
    zeek = read_zeek_log(CORPUS / "baselines" / baseline / "smtp.log")
    ours = pt.transactions(str(CORPUS / capture), tshark=tshark)
    assert len(ours) == len(zeek), ours[["trans_depth", "mailfrom", "rcptto", "last_reply"]]
    # Zeek writes a record when it is done with it; compare connection by connection, in order within each.
    zeek = sorted(zeek, key=lambda z: int(z["id.orig_p"]))  # stable: keeps Zeek's order within a connection
    ours = ours.assign(_p=ours.client_port.astype(int)).sort_values("_p", kind="stable")
    for (_, row), z in zip(ours.iterrows(), zeek):
        assert str(row.trans_depth) == z["trans_depth"]
        assert (row.helo if row.helo is not pd_na() else None) == _zeek_value(z["helo"])
        assert (None if row.mailfrom is pd_na() else row.mailfrom) == _zeek_value(z["mailfrom"])
        zr = _zeek_value(z["rcptto"])
        assert set(row.rcptto) == (set(zr.split(",")) if zr else set())  # a set in Zeek: order is arbitrary
        assert (None if row.last_reply is pd_na() else row.last_reply) == _zeek_value(z["last_reply"])
        assert bool(row.tls) == (z["tls"] == "T")
        assert row.client_ip == z["id.orig_h"] and int(row.client_port) == int(z["id.orig_p"])
        assert row.server_ip == z["id.resp_h"] and int(row.server_port) == int(z["id.resp_p"])


def pd_na():
    import pandas as pd

    return pd.NA


def test_every_smtp_baseline_is_covered():
    names = {b for b, _ in PAIRS}
    assert "scripts.base.protocols.smtp.basic" in names
    assert len(PAIRS) >= 15
