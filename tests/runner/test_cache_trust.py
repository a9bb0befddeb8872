"""The result cache is not trusted blindly: in-place rewrites, Wireshark preferences, corrupt entries,
a foreign or symlinked cache folder."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from conftest import FIXTURES
from test_parallel_runs import calls  # noqa: F401  (the fixture counting per-file tshark runs)

import pyshark_tools as pt
from pyshark_tools.cli import cli
from pyshark_tools.errors import SmtpdiagError
from pyshark_tools.runner import cache
from pyshark_tools.runner.options import configured




@pytest.fixture
def ok(tmp_path) -> Path:
    p = tmp_path / "caps" / "ok.pcap"
    p.parent.mkdir()
    shutil.copy(FIXTURES / "ok.pcap", p)
    return p


def causes(path) -> list[str]:
    return pt.sessions(str(path))["failure_cause"].astype(str).tolist()


def test_rewritten_in_place_with_size_and_mtime_restored(tmp_path, ok, calls, monkeypatch):
    monkeypatch.setattr(cache, "SMALL_FILE", 0)         # big-file identity: stat, not content
    with configured(cache_dir=tmp_path / "cache"):
        assert causes(ok) == ["ok"]
        st = os.stat(ok)
        data = ok.read_bytes()
        at = data.index(b"250 2.0.0 Ok: queued")
        ok.write_bytes(data[:at] + b"550" + data[at + 3:])   # same size: the message is now refused
        os.utime(ok, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert os.stat(ok).st_size == st.st_size and os.stat(ok).st_mtime_ns == st.st_mtime_ns
        assert causes(ok) != ["ok"]
    assert len(calls) == 2


def test_personal_wireshark_preferences_change_no_toolkit_run(tmp_path, ok, calls, monkeypatch):
    """Each toolkit run has its own empty configuration (tshark/program.py): preferences or decode-as
    entries in the user's config never change its rows, so they need not be in the cache key."""
    with configured(cache_dir=tmp_path / "cache"):
        assert causes(ok) == ["ok"]
        conf = tmp_path / "wireshark"
        conf.mkdir()
        (conf / "preferences").write_text("smtpdiag.ports: 25\nsmtpdiag.heuristic: FALSE\n")
        monkeypatch.setenv("WIRESHARK_CONFIG_DIR", str(conf))
        assert causes(ok) == ["ok"]
    with configured(cache_dir=tmp_path / "cache2"):
        assert causes(ok) == ["ok"]                      # a fresh run, not the cache, says so too


def test_corrupt_entries_are_misses(tmp_path, ok, calls):
    root = tmp_path / "cache"
    with configured(cache_dir=root):
        assert causes(ok) == ["ok"]
        (entry,) = root.rglob("*.parquet")
        table = pq.read_table(entry)
        pq.write_table(table.replace_schema_metadata({"smtpdiag": "{not json"}), entry)
        assert causes(ok) == ["ok"]
        entry.write_bytes(b"PAR1 garbage")
        assert causes(ok) == ["ok"]
        assert causes(ok) == ["ok"]                      # rewritten whole the time before: a hit
    assert len(calls) == 3


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_cache_owned_by_another_user_is_refused(tmp_path, ok):
    root = tmp_path / "cache"
    root.mkdir()
    os.chown(root, 65534, 65534)
    with configured(cache_dir=root), pytest.raises(SmtpdiagError, match="owned by uid 65534"):
        causes(ok)
    res = CliRunner().invoke(cli, ["sessions", str(ok), "--cache-dir", str(root)])
    assert res.exit_code == 1 and "owned by uid 65534" in res.stderr and "Traceback" not in res.output
    assert list(root.iterdir()) == []
    assert CliRunner().invoke(cli, ["sessions", str(ok), "--cache-dir", str(root), "--no-cache"]).exit_code == 0


def test_world_writable_cache_is_refused(tmp_path, ok):
    root = tmp_path / "cache"
    root.mkdir()
    root.chmod(0o777)
    with configured(cache_dir=root), pytest.raises(SmtpdiagError, match="writable by everyone"):
        causes(ok)


def test_symlinks_inside_the_cache_are_not_followed(tmp_path, ok, calls):
    root, elsewhere = tmp_path / "cache", tmp_path / "elsewhere"
    with configured(cache_dir=root):
        assert causes(ok) == ["ok"]
        (top,) = root.iterdir()                              # tshark=<version>
        shutil.copytree(top, elsewhere)
        for entry in elsewhere.rglob("*.parquet"):           # planted rows
            t = pq.read_table(entry)
            cols = {n: [("planted" if v == "ok" else v) for v in t.column(n).to_pylist()] for n in t.column_names}
            pq.write_table(t.from_pydict(cols).replace_schema_metadata(t.schema.metadata), entry)
        shutil.rmtree(top)
        top.symlink_to(elsewhere, target_is_directory=True)
        before = sorted((p, p.stat().st_mtime_ns) for p in elsewhere.rglob("*"))
        assert causes(ok) == ["ok"]                          # read again, not the planted rows
        assert sorted((p, p.stat().st_mtime_ns) for p in elsewhere.rglob("*")) == before   # nothing written there
        top.unlink()
        assert causes(ok) == ["ok"]                          # a real folder again: written
        (entry,) = root.rglob("*.parquet")
        (planted,) = elsewhere.rglob("*.parquet")
        entry.unlink()
        entry.symlink_to(planted)                            # the file itself a symlink: not opened
        assert causes(ok) == ["ok"]
        assert not entry.is_symlink() and planted.stat().st_mtime_ns == dict(before)[planted]
    assert len(calls) == 4


def test_big_file_identity_has_device_inode_and_ctime(tmp_path, ok, monkeypatch):
    monkeypatch.setattr(cache, "SMALL_FILE", 0)
    st = os.stat(ok)
    ident = cache.file_identity(str(ok))
    assert f":{st.st_dev}:{st.st_ino}:" in ident and ident.endswith(f":{st.st_ctime_ns}")


def test_a_key_log_rewritten_in_place_is_read_again(tmp_path, calls):
    """The key log's path is in tshark's options; what it holds must be in the cache key too."""
    cap = FIXTURES / "tls_keylog_starttls_auth_failed.pcap"
    keys = tmp_path / "keys.log"
    shutil.copy(FIXTURES / "tls_keylog_starttls_auth_failed.keys", keys)
    with configured(cache_dir=tmp_path / "cache"):
        first = pt.sessions(str(cap), tls_keylog=str(keys))["failure_cause"].astype(str).tolist()
        keys.write_text("# no keys any more\n")
        second = pt.sessions(str(cap), tls_keylog=str(keys))["failure_cause"].astype(str).tolist()
    assert first == ["auth_failed"]          # decrypted: the failed AUTH inside TLS
    assert second == ["ok"]                  # no keys: STARTTLS seen, nothing inside it
    assert len(calls) == 2
