"""Exports written on a sensor by plain tshark and the plugin, read by the table commands like captures.

Every fixture and corpus capture is exported once per session (the plugin's summary file and a bare
`-T ek` of the session-summary frames, both by tshark itself); the rows read from each export must
equal the rows of the capture's own run.
"""
from __future__ import annotations

import gzip
import io
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import pyshark_tools as pt
from pyshark_tools.cli import cli
from pyshark_tools.exports import capture_named_by, read_export, sniff_export
from pyshark_tools.exports.sensor import sensor_commands
from pyshark_tools.runner.options import configured
from pyshark_tools.tables.schema import SUMMARY_FIELDS

from conftest import CORPUS, FIXTURES, LUA

CAPTURES = sorted(p for p in FIXTURES.iterdir() if p.name.endswith((".pcap", ".pcap.gz", ".pcapng"))) + \
    (sorted(p for p in CORPUS.iterdir() if p.name.endswith((".pcap", ".pcap.gz", ".pcapng"))) if CORPUS.is_dir() else [])
ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def _plain_tshark(ts: pt.Tshark, args: list[str], stdout=subprocess.DEVNULL) -> None:
    subprocess.run(ts.command(["-n", *args]), stdout=stdout, stderr=subprocess.DEVNULL, check=False, timeout=300)


def _export(ts: pt.Tshark, cap: Path, out: Path, anonymise: bool = False) -> None:
    """The two sensor one-liners of docs/exports.md, as written there."""
    anon = ["-o", "smtpdiag.anonymise:TRUE"] if anonymise else []
    _plain_tshark(ts, ["-q", "-r", str(cap), "-X", f"lua_script:{LUA}", *anon,
                       "-o", f"smtpdiag.summary_file:{out / 'summary' / (cap.name + '.smtpdiag.tsv')}"])
    with open(out / "ek" / f"{cap.name}.smtpdiag.ek.json", "wb") as fh:
        _plain_tshark(ts, ["-2", "-r", str(cap), "-X", f"lua_script:{LUA}", *anon,
                           "-Y", "smtpdiag.session_end", "-T", "ek"], stdout=fh)


@pytest.fixture(scope="session")
def exported(tmp_path_factory, tshark) -> Path:
    """Every capture exported by plain tshark: summary/NAME.smtpdiag.tsv and ek/NAME.smtpdiag.ek.json."""
    out = tmp_path_factory.mktemp("sensor")
    (out / "summary").mkdir()
    (out / "ek").mkdir()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda c: _export(tshark, c, out), CAPTURES))
    return out


def _rows(paths: list[Path] | list[str]) -> pd.DataFrame:
    """Each file's own rows (no stitching between unrelated captures), without the folder-dependent column."""
    log = pt.ReadLog()
    with configured(stitch=False):
        df = pt.sessions([str(p) for p in paths], read_log=log)
    assert log.failed == {}
    return df.drop(columns=["source"])


def test_exports_give_the_captures_own_rows(exported):
    assert len(CAPTURES) > 100
    want = _rows(CAPTURES)
    assert len(want) >= 130 and want["pcap_file"].nunique() > 90
    for kind, suffix in (("summary", ".smtpdiag.tsv"), ("ek", ".smtpdiag.ek.json")):
        got = _rows([exported / kind / (c.name + suffix) for c in CAPTURES])
        pd.testing.assert_frame_equal(got, want, obj=f"{kind} export")


def test_cli_sessions_over_exports_prints_the_captures_table(exported):
    picks = [c for c in CAPTURES if c.name in ("ok_multi.pcap", "rejected.pcap", "pop_auth_failed.pcap")]

    def table(paths) -> pd.DataFrame:
        res = CliRunner().invoke(cli, ["sessions", *map(str, paths), "--format", "csv"])
        assert res.exit_code == 0, res.output
        return pd.read_csv(io.StringIO(res.stdout), dtype=str).drop(columns=["source"])
    want = table(picks)
    assert len(want) == 3
    for kind, suffix in (("summary", ".smtpdiag.tsv"), ("ek", ".smtpdiag.ek.json")):
        pd.testing.assert_frame_equal(table([exported / kind / (c.name + suffix) for c in picks]), want)


@pytest.mark.parametrize("kind", ["ek", "json", "fields", "summary"])
def test_the_printed_sensor_commands_write_what_the_tables_read(tmp_path, tshark, kind):
    """`smtpdiag export-fields` commands, run by a shell, gzip-compressed afterwards: the capture's rows."""
    caps = [c for c in CAPTURES if c.name in ("ok_multi.pcap", "dns_mx_ok.pcap", "imap_auth_failed.pcap",
                                               "smuggling_attempt.pcap", "bdat_incomplete.pcap")]
    paths = []
    for cap in caps:
        shutil.copy(cap, tmp_path / cap.name)      # the commands write beside the capture
        cmd = next(c.command for c in sensor_commands(SUMMARY_FIELDS, str(LUA), str(tmp_path / cap.name))
                   if c.kind == kind)
        assert cmd.startswith("tshark ")
        subprocess.run(["bash", "-c", shlex.join(tshark.command([])) + cmd[len("tshark"):]],
                       check=True, capture_output=True, timeout=300)
        out = max(tmp_path.glob(cap.name + ".smtpdiag.*"), key=lambda p: p.stat().st_mtime_ns)
        zipped = out.with_name(out.name + ".gz")
        zipped.write_bytes(gzip.compress(out.read_bytes()))
        out.unlink()
        assert sniff_export(zipped, gzip.decompress(zipped.read_bytes())[:65536], gzipped=True).kind == kind
        paths.append(zipped)
    pd.testing.assert_frame_equal(_rows(paths), _rows(caps))


def test_report_over_two_sensors_folders(tmp_path, exported):
    """Two sensors exported captures of the same name: one report, both kept apart by `source`."""
    names = ["ok_multi.pcap", "rejected.pcap", "tempfail.pcap"]
    for sensor, kind, suffix, picks in (("sensor-a", "summary", ".smtpdiag.tsv", names[:2]),
                                        ("sensor-b", "ek", ".smtpdiag.ek.json", names[1:])):
        (tmp_path / sensor).mkdir()
        for n in picks:
            data = (exported / kind / (n + suffix)).read_bytes()
            (tmp_path / sensor / (n + suffix + ".gz")).write_bytes(gzip.compress(data))
    res = CliRunner().invoke(cli, ["report", str(tmp_path / "sensor-a"), str(tmp_path / "sensor-b"),
                                   "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    s = pd.read_parquet(tmp_path / "out" / "sessions.parquet")
    assert sorted(s.groupby("source", observed=True)["pcap_file"].apply(lambda x: sorted(set(x))).items()) == \
        [("sensor-a", names[:2]), ("sensor-b", names[1:])]
    assert set(s.loc[s.pcap_file == "rejected.pcap", "source"]) == {"sensor-a", "sensor-b"}
    assert "rejected" in set(s["failure_cause"]) and "tempfail" in set(s["failure_cause"])
    html = (tmp_path / "out" / "index.html").read_text()
    assert "Relay access denied" in html and "tempfail" in html
    t = pd.read_parquet(tmp_path / "out" / "transactions.parquet")
    assert set(t["source"]) == {"sensor-a", "sensor-b"}


def _names_in(df: pd.DataFrame) -> set[str]:
    """Every address, HELO name and mailbox user a sessions table shows."""
    names: set[str] = set()
    for col in ("helo", "user"):
        names |= {v for v in df[col].dropna() if len(v) >= 2}
    t_cols = ("detail", "last_reply")
    for col in t_cols:
        for v in df[col].dropna():
            names |= set(ADDRESS.findall(v))
    return names


def test_anonymised_exports_hold_no_address_of_the_capture(tmp_path, tshark, exported):
    (tmp_path / "summary").mkdir()
    (tmp_path / "ek").mkdir()
    caps = [c for c in CAPTURES if c.name.endswith(".pcap")]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda c: _export(tshark, c, tmp_path, anonymise=True), caps))
    clear = _rows([exported / "summary" / (c.name + ".smtpdiag.tsv") for c in caps])
    txn = pt.transactions([str(exported / "summary" / (c.name + ".smtpdiag.tsv")) for c in caps])
    names = _names_in(clear) | {v for v in txn["mailfrom"].dropna() if v} | {a for r in txn["rcptto"] for a in r}
    assert {"alice@example.test", "bob@example.test", "client.example.test", "alice"} <= names
    assert len([n for n in names if "@" in n]) >= 8
    for c in caps:
        summary = (tmp_path / "summary" / (c.name + ".smtpdiag.tsv")).read_text(errors="replace")
        # tshark -T ek with the plugin's fields only (-e), as `smtpdiag export-fields --anonymise` prints it
        cmd = next(x.command for x in sensor_commands(SUMMARY_FIELDS, str(LUA), str(c), anonymise=True)
                   if x.kind == "ek").split(" > ")[0]
        ek = subprocess.run(tshark.command(shlex.split(cmd)[1:]), capture_output=True, timeout=300).stdout.decode()
        for text, what in ((summary, "summary file"), (ek, "-T ek -e")):
            leaked = sorted(n for n in names if re.search(r"(?<![\w.-])" + re.escape(n) + r"(?![\w-])", text))
            assert leaked == [], f"{c.name} {what}: {leaked}"
    anon = _rows([tmp_path / "summary" / (c.name + ".smtpdiag.tsv") for c in caps])
    # The diagnosis stays: same sessions, causes, endpoints; names become stable pseudonyms.
    keep = ["pcap_file", "stream", "proto", "client_ip", "server_ip", "failure_cause", "anomalies", "messages"]
    pd.testing.assert_frame_equal(anon[keep], clear[keep])
    helos = anon.loc[clear["helo"] == "client.example.test", "helo"]
    assert helos.nunique() == 1 and re.fullmatch(r"anon-[0-9a-f]{16}", helos.iloc[0])


def test_an_unknown_plugin_version_is_a_clear_error(tmp_path, exported):
    src = (exported / "summary" / "ok.pcap.smtpdiag.tsv").read_text()
    assert src.startswith("#smtpdiag\t0.1.0\t")
    bad = tmp_path / "future.tsv"
    bad.write_text(src.replace("#smtpdiag\t0.1.0", "#smtpdiag\t7.2.0", 1))
    res = CliRunner().invoke(cli, ["sessions", str(bad)])
    assert res.exit_code == 1
    assert res.stderr.count("\n") == 1 and "plugin '7.2.0'" in res.stderr and "0.1.x" in res.stderr
    ek = (exported / "ek" / "ok.pcap.smtpdiag.ek.json").read_text()
    assert '"smtpdiag_smtpdiag_version":"0.1.0"' in ek
    (tmp_path / "future.ek.json").write_text(ek.replace('_version":"0.1.0"', '_version":"1.0.0"'))
    res = CliRunner().invoke(cli, ["sessions", str(tmp_path / "future.ek.json"), str(exported / "ek")])
    assert res.exit_code == 4 and "plugin '1.0.0'" in res.stderr and res.stdout.count("ok.pcap") >= 1


@pytest.mark.parametrize("kind,suffix", [("summary", ".smtpdiag.tsv"), ("ek", ".smtpdiag.ek.json")])
def test_a_cut_export_keeps_every_complete_row(tmp_path, exported, kind, suffix):
    one = (exported / kind / ("ok_multi.pcap" + suffix)).read_bytes()
    records = one.split(b"\n", 2)[2] if kind == "summary" else one     # the rows alone, or index+record lines
    whole = one + records
    full = tmp_path / ("two.pcap" + suffix)
    full.write_bytes(whole)
    assert len(_rows([full])) == 2
    cut = tmp_path / ("cut.pcap" + suffix)
    cut.write_bytes(whole[:-40])
    zipped = tmp_path / ("zipped.pcap" + suffix + ".gz")
    zipped.write_bytes(gzip.compress(whole, compresslevel=0)[:-30])   # stored: the cut falls in the last row
    for path in (cut, zipped):
        out = tmp_path / "out.csv"
        res = CliRunner().invoke(cli, ["sessions", str(path), "--format", "csv", "-o", str(out)])
        assert res.exit_code == 4, res.output
        assert "cut short" in res.stderr and "1 complete rows kept" in res.stderr
        rows = pd.read_csv(out)
        assert len(rows) == 1 and rows["detail"].tolist() == ["2 messages accepted"]


def test_exports_mix_with_captures_in_input_order(exported):
    ok = FIXTURES / "ok.pcap"
    export = exported / "ek" / "rejected.pcap.smtpdiag.ek.json"
    with configured(stitch=False):
        df = pt.sessions([str(ok), str(export), str(FIXTURES / "tempfail.pcap")])
    assert list(df["pcap_file"]) == ["ok.pcap", "rejected.pcap", "tempfail.pcap"]
    assert list(df["source"]) == ["captures", "ek", "captures"]
    assert list(df["failure_cause"]) == ["ok", "rejected", "tempfail"]


def test_a_folder_reads_its_exports_and_skips_other_text(tmp_path, exported):
    (tmp_path / "MANIFEST.tsv").write_text("file\tbytes\nx.pcap\t3\n")
    (tmp_path / "notes.json").write_text('{"a": 1}\n')
    (tmp_path / "quiet.ek.json").write_bytes(b"")          # a capture with no conversation
    (tmp_path / "ok.pcap.smtpdiag.tsv").write_bytes((exported / "summary" / "ok.pcap.smtpdiag.tsv").read_bytes())
    log = pt.ReadLog()
    df = pt.sessions(str(tmp_path), read_log=log)
    assert log.ok and list(df["pcap_file"]) == ["ok.pcap"]
    assert sorted(Path(f).name for f in log.files) == ["ok.pcap.smtpdiag.tsv", "quiet.ek.json"]


def test_the_export_names_its_capture():
    assert capture_named_by("/s/mail.pcapng.smtpdiag.ek.json.gz") == "mail.pcapng"
    assert capture_named_by("ring_00001_20260101000000.pcap.gz.smtpdiag.tsv") == "ring_00001_20260101000000.pcap.gz"
    assert capture_named_by("sensor-a/today.tsv") == "today.tsv"
    assert capture_named_by("x.pcap") == "x.pcap"


def test_a_summary_file_from_before_the_version_line_is_read(tmp_path, exported):
    src = (exported / "summary" / "ok.pcap.smtpdiag.tsv").read_bytes()
    old = tmp_path / "old.pcap.tsv"
    old.write_bytes(src.split(b"\n", 1)[1])
    kind = sniff_export(old)
    assert kind is not None and kind.kind == "summary"
    assert read_export(old, kind, SUMMARY_FIELDS).rows == read_export(
        exported / "summary" / "ok.pcap.smtpdiag.tsv", sniff_export(exported / "summary" / "ok.pcap.smtpdiag.tsv"),
        SUMMARY_FIELDS).rows


def _release(version: str) -> pt.Tshark:
    exe = Path(os.environ.get("SMTPDIAG_RELEASES", Path(__file__).resolve().parents[2] / ".tshark-releases")) \
        / version / "bin" / "tshark"
    if not exe.exists():
        pytest.skip(f"tshark {version} not unpacked at {exe} (scripts/test fetches it)")
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if is_root and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: cannot run tshark 4.4+ unprivileged")
    return pt.Tshark(str(exe), run_as="nobody" if is_root else None)


@pytest.mark.parametrize("version", ["4.4", "4.6"])
def test_lua_54_writes_the_same_exports_and_pseudonyms(tmp_path, tshark, version):
    """tshark 4.4/4.6 (Lua 5.4, integer arithmetic) export what 4.0 (Lua 5.2) does, pseudonyms included."""
    new = _release(version)
    tmp_path = Path(tempfile.mkdtemp(prefix="smtpdiag-export-matrix-"))   # pytest's folders are not nobody's
    tmp_path.chmod(0o777)
    caps = [FIXTURES / n for n in ("rejected.pcap", "pop_auth_failed.pcap", "smuggling_attempt.pcap", "dns_mx_ok.pcap")]
    out = {}
    for name, ts in (("4.0", tshark), (version, new)):
        for anonymise in (False, True):
            d = tmp_path / f"{name}-{anonymise}"
            (d / "summary").mkdir(parents=True)
            (d / "ek").mkdir()
            for sub in (d, d / "summary", d / "ek"):
                sub.chmod(0o777)
            for cap in caps:
                _export(ts, cap, d, anonymise)
            out[name, anonymise] = {k: _rows([d / k / (c.name + s) for c in caps])
                                    for k, s in (("summary", ".smtpdiag.tsv"), ("ek", ".smtpdiag.ek.json"))}
    cols = ["pcap_file", "proto", "first_frame", "failure_cause", "detail", "helo", "last_reply", "user", "messages"]
    for anonymise in (False, True):
        for kind in ("summary", "ek"):
            pd.testing.assert_frame_equal(out[version, anonymise][kind][cols], out["4.0", anonymise]["summary"][cols])
    assert out[version, True]["ek"]["helo"].str.startswith("anon-").any()
    shutil.rmtree(tmp_path, ignore_errors=True)
