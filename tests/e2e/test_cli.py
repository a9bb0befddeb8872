"""The smtpdiag CLI, run in-process with click's CliRunner and as a real subprocess, on real captures."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import click
import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import corpus_file

from pyshark_tools.cli import cli


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def all_commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from all_commands(cmd, prefix + (name,))


@pytest.mark.parametrize("path", [p for p, _ in all_commands(cli)], ids=lambda p: " ".join(p))
def test_every_command_has_help_with_an_example(path):
    res = run(*path, "--help")
    assert res.exit_code == 0
    assert "Example" in res.output, res.output
    assert "smtpdiag" in res.output.split("Example", 1)[1]


def test_sessions_table():
    res = run("sessions", str(corpus_file("smtp.pcap")))
    assert res.exit_code == 0, res.output
    assert "1 message accepted" in res.output and "74.53.140.153" in res.output


def test_sessions_csv_json_parquet(tmp_path):
    cap = str(corpus_file("smtp-bdat-cmd-invalid.pcapng"))
    res = run("sessions", cap, "--format", "csv")
    df = pd.read_csv(io.StringIO(res.output))
    assert list(df.failure_cause) == ["rejected"] * 3
    res = run("sessions", cap, "--format", "json")
    assert [r["failure_cause"] for r in json.loads(res.output)] == ["rejected"] * 3
    out = tmp_path / "s.parquet"
    res = run("sessions", cap, "--format", "parquet", "-o", str(out))
    assert res.exit_code == 0
    back = pd.read_parquet(out)
    assert len(back) == 3 and str(back.ts.dtype) == "datetime64[ns, UTC]"


def test_filter_and_fail_on():
    cap = str(corpus_file("smtp.pcap"))
    bad = str(corpus_file("smtp-bdat-cmd-negative-chunk-size.pcap"))
    assert run("sessions", cap, "--fail-on", "any").exit_code == 0
    res = run("sessions", cap, bad, "--fail-on", "any", "--format", "csv")
    assert res.exit_code == 3
    assert run("sessions", cap, bad, "--fail-on", "data_timeout").exit_code == 0
    res = run("sessions", cap, bad, "--filter", "rejected", "--format", "csv")
    assert len(pd.read_csv(io.StringIO(res.stdout))) == 1


def test_transactions_and_summary():
    cap = str(corpus_file("smtp.pcap"))
    res = run("transactions", cap, "--format", "json")
    rows = json.loads(res.output)
    assert [r["mailfrom"] for r in rows] == ["gurpartap@patriots.in", "albert@example.com"]
    res = run("summary", cap, "--format", "csv")
    df = pd.read_csv(io.StringIO(res.output))
    assert int(df[(df.dimension == "failure_cause") & (df.value == "ok")].sessions.iloc[0]) == 2


def test_packets_unknown_field_is_a_clear_error():
    res = CliRunner().invoke(cli, ["packets", str(corpus_file("smtp.pcap")), "-e", "smtp.no_such_field"])
    assert res.exit_code == 1
    assert "no field(s) smtp.no_such_field" in res.output
    assert "Traceback" not in res.output


def test_packets_fields():
    res = run("packets", str(corpus_file("smtp.pcap")), "-Y", "smtpdiag.reply_code >= 300",
              "-e", "frame.number", "-e", "smtpdiag.reply_code", "-e", "smtpdiag.reply_to", "--format", "csv")
    df = pd.read_csv(io.StringIO(res.output))
    assert {"AUTH", "DATA"} <= set(df["smtpdiag.reply_to"])


def _file(name: str, data: bytes):
    def make(d):
        (d / name).write_bytes(data)
        return d / name
    return make


@pytest.mark.parametrize("make,needle", [
    (lambda d: d / "missing.pcap", "no such file"),
    (lambda d: d, "directory holds no capture files"),
    (_file("empty.pcap", b""), "empty file"),
    (_file("notes.pcap", b"hello\n"), "not a capture file"),
    (_file("fake.pcap.gz", b"\x1f\x8bnot gzip at all"), "gzip"),
])
def test_bad_inputs_one_line_error(tmp_path, make, needle):
    res = CliRunner().invoke(cli, ["sessions", str(make(tmp_path))])
    assert res.exit_code == 1
    assert needle in res.output
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output


def test_cut_capture_keeps_rows_and_exits_4(tmp_path):
    data = corpus_file("smtp.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: int(len(data) * 0.97)])
    res = CliRunner().invoke(cli, ["sessions", str(cut), "--format", "csv"])
    assert res.exit_code == 4
    assert "cut short" in res.stderr
    df = pd.read_csv(io.StringIO(res.stdout))
    assert len(df) >= 1


def test_one_bad_file_among_good_ones_keeps_the_good_rows(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_text("not a capture")
    res = CliRunner().invoke(cli, ["sessions", str(corpus_file("smtp.pcap")), str(bad), "--format", "csv"])
    assert res.exit_code == 4
    assert len(pd.read_csv(io.StringIO(res.stdout))) == 2
    assert "not a capture file" in res.stderr


def test_missing_tshark_is_one_line(tmp_path):
    res = CliRunner().invoke(cli, ["--tshark", str(tmp_path / "nope"), "sessions", str(corpus_file("smtp.pcap"))])
    assert res.exit_code == 1 and "tshark not found" in res.output


def test_python_dash_m_and_version():
    out = subprocess.run([sys.executable, "-m", "pyshark_tools", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "smtpdiag" in out.stdout


def test_packets_redact_credentials_unless_asked():
    cap = str(corpus_file("smtp.pcap"))
    args = ["packets", cap, "-Y", "smtp.auth.password or smtp.auth.username", "-e", "frame.number",
            "-e", "smtp.auth.password", "-e", "tcp.payload", "--format", "csv"]
    hidden = run(*args).output
    assert "cHVuamFiQDEyMw==" not in hidden and "[redacted]" in hidden
    assert "cHVuamFiQDEyMw" not in hidden.replace(",", "")
    shown = run(*args, "--show-credentials").output
    assert "cHVuamFiQDEyMw==" in shown


def test_corrupt_record_in_the_middle_keeps_earlier_rows(tmp_path):
    import struct

    data = bytearray(corpus_file("smtp.pcap").read_bytes())
    off, n = 24, 0
    while n < 70:  # walk to the 70th record header and give it an impossible length
        caplen = struct.unpack_from("<I", data, off + 8)[0]
        off += 16 + caplen
        n += 1
    struct.pack_into("<II", data, off + 8, 0x7FFFFFFF, 0x7FFFFFFF)
    bad = tmp_path / "corrupt.pcap"
    bad.write_bytes(bytes(data))
    res = CliRunner().invoke(cli, ["sessions", str(bad), "--format", "csv"])
    assert res.exit_code == 4, res.output
    assert "damaged" in res.stderr and "corrupt" in res.stderr
    df = pd.read_csv(io.StringIO(res.stdout))
    # both sessions seen before the damaged record (the 2nd one only partly), the 1st with its verdict
    assert list(df.stream) == [0, 2]
    assert df.failure_cause.iloc[0] == "ok" and df.messages.iloc[0] == 1
