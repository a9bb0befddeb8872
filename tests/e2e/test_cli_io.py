"""The CLI's inputs and outputs, run as real subprocesses: pipes, FIFOs and /dev/stdin as captures;
-o - and the format from the suffix; cause names checked; global options after the command;
the progress display on a terminal; outputs written whole, never through a symbolic link."""
from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import select
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, corpus_file

SMTPDIAG = [sys.executable, "-m", "pyshark_tools"]
PROVENANCE = ["pcap_file", "pcap_files", "source"]   # the capture's name ("stdin") and folder (none for a pipe)


def _env(tmp: Path) -> dict[str, str]:
    tmpdir = tmp / "tmpdir"
    tmpdir.mkdir(exist_ok=True)
    tmpdir.chmod(0o755)             # --run-as: tshark's HOME is the temporary folder
    return {**os.environ, "SMTPDIAG_NO_CACHE": "1", "TMPDIR": str(tmpdir), "PYTHONPATH": str(ROOT)}


def sh(cmd: str, tmp: Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a bash command line (real pipes, FIFOs, <(...)); `smtpdiag` is this checkout's CLI."""
    prog = " ".join(map(shlex.quote, SMTPDIAG))
    return subprocess.run(["bash", "-c", f"smtpdiag() {{ {prog} \"$@\"; }}\n{cmd}"], capture_output=True,
                          env=_env(tmp), cwd=cwd or tmp, timeout=300)


def table(out: bytes) -> pd.DataFrame:
    df = pd.read_csv(io.BytesIO(out))
    return df.drop(columns=[c for c in PROVENANCE if c in df])


@pytest.fixture(scope="module")
def cap() -> Path:
    return corpus_file("smtp.pcap")          # two sessions, two transactions


@pytest.fixture(scope="module")
def other() -> Path:
    return corpus_file("smtp-bdat-cmd-invalid.pcapng")   # three rejected sessions


# -- 14.3: pipes -------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["sessions", "transactions", "packets", "summary"])
def test_a_pipe_gives_the_same_table_as_the_file(tmp_path, cap, command):
    q = shlex.quote(str(cap))
    from_file = sh(f"smtpdiag {command} {q} --format csv", tmp_path)
    from_pipe = sh(f"cat {q} | smtpdiag {command} - --format csv", tmp_path)
    assert from_file.returncode == 0 and from_pipe.returncode == 0, from_pipe.stderr
    want = table(from_file.stdout)
    assert len(want) > 0
    pd.testing.assert_frame_equal(table(from_pipe.stdout), want)
    if "pcap_file" in pd.read_csv(io.BytesIO(from_pipe.stdout)):
        assert set(pd.read_csv(io.BytesIO(from_pipe.stdout)).pcap_file) == {"stdin"}


@pytest.mark.parametrize("form", [
    "gzip -c {cap} | smtpdiag sessions - --format csv",             # compressed stream on stdin
    "gzip -dc {gz} | smtpdiag sessions - --format csv",             # decompressed on the way
    "cat {cap} | smtpdiag sessions /dev/stdin --format csv",
    "smtpdiag sessions <(cat {cap}) --format csv",
    "mkfifo f.pcap && (cat {cap} > f.pcap &) && smtpdiag sessions f.pcap --format csv",
])
def test_every_kind_of_pipe(tmp_path, cap, form):
    gz = tmp_path / "c.pcap.gz"
    gz.write_bytes(subprocess.run(["gzip", "-c", str(cap)], capture_output=True, check=True).stdout)
    res = sh(form.format(cap=shlex.quote(str(cap)), gz=shlex.quote(str(gz))), tmp_path)
    assert res.returncode == 0, res.stderr
    want = table(sh(f"smtpdiag sessions {shlex.quote(str(cap))} --format csv", tmp_path).stdout)
    pd.testing.assert_frame_equal(table(res.stdout), want)


def test_a_pipe_beside_files(tmp_path, cap, other):
    res = sh(f"cat {shlex.quote(str(cap))} | smtpdiag sessions {shlex.quote(str(other))} - --format csv", tmp_path)
    assert res.returncode == 0, res.stderr
    df = pd.read_csv(io.BytesIO(res.stdout))
    assert list(df.pcap_file) == [other.name] * 3 + ["stdin"] * 2
    assert list(df.failure_cause) == ["rejected"] * 3 + ["ok"] * 2


def test_report_and_plot_read_a_pipe_twice(tmp_path, cap):
    q = shlex.quote(str(cap))
    assert sh(f"smtpdiag report {q} -o from_file", tmp_path).returncode == 0
    res = sh(f"cat {q} | smtpdiag report - -o from_pipe", tmp_path)
    assert res.returncode == 0, res.stderr
    for name in ("sessions.csv", "transactions.csv"):
        pd.testing.assert_frame_equal(table((tmp_path / "from_pipe" / name).read_bytes()),
                                      table((tmp_path / "from_file" / name).read_bytes()))
    # the reply chart needs the second (per-frame) pass: it counts the same replies
    html = (tmp_path / "from_pipe" / "index.html").read_text()
    assert re.findall(r"\b(?:250|354|221)\b", html) == \
        re.findall(r"\b(?:250|354|221)\b", (tmp_path / "from_file" / "index.html").read_text())
    for kind in ("replies", "causes"):
        assert sh(f"smtpdiag plot {kind} {q} -o f.svg", tmp_path).returncode == 0
        res = sh(f"cat {q} | smtpdiag plot {kind} - -o p.svg", tmp_path)
        assert res.returncode == 0, res.stderr
        assert (tmp_path / "p.svg").read_bytes() == (tmp_path / "f.svg").read_bytes()
    assert not any((tmp_path / "tmpdir").iterdir()), "the spooled copy of the pipe is removed"


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="--run-as needs root")
def test_a_spooled_pipe_is_read_by_the_unprivileged_tshark(tmp_path_factory, cap):
    tmp_path = Path(tempfile.mkdtemp(prefix="smtpdiag-test-"))    # reachable by nobody (pytest's is 0700)
    tmp_path.chmod(0o755)
    q = shlex.quote(str(cap))
    want = table(sh(f"smtpdiag packets {q} --format csv", tmp_path).stdout)
    # cwd readable by nobody: tshark reads IOR.txt from its working folder and fails where it cannot
    res = sh(f"cat {q} | smtpdiag --run-as nobody packets - --format csv", tmp_path, cwd=Path("/"))
    assert res.returncode == 0, res.stderr
    try:
        pd.testing.assert_frame_equal(table(res.stdout), want)
        assert not [p for p in (tmp_path / "tmpdir").iterdir() if p.name.startswith("smtpdiag-")]
    finally:
        shutil.rmtree(tmp_path)


@pytest.mark.parametrize("feed, message", [(":", "standard input: empty"),
                                           ("echo hello", "standard input: not a capture file")])
def test_an_empty_or_foreign_pipe_is_an_error_not_an_empty_table(tmp_path, feed, message):
    res = sh(f"{feed} | smtpdiag sessions -", tmp_path)
    assert res.returncode == 1
    assert message in res.stderr.decode() and b"no rows" not in res.stdout


def test_the_library_reads_standard_input(tmp_path, cap):
    code = "import pyshark_tools as pt; print(len(pt.sessions('-')), len(pt.transactions('/dev/stdin')))"
    res = subprocess.run([sys.executable, "-c", code], stdin=open(cap, "rb"), capture_output=True, text=True,
                         env=_env(tmp_path), timeout=300)
    # stdin is a regular file here: '-' streams it, '/dev/stdin' is then read as that file
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["2", "2"]


# -- 14.4: output conventions ----------------------------------------------------------------

def test_dash_is_standard_output(tmp_path, cap):
    res = sh(f"smtpdiag sessions {shlex.quote(str(cap))} -o - --format csv", tmp_path)
    assert res.returncode == 0 and len(table(res.stdout)) == 2
    assert not (tmp_path / "-").exists()


def test_the_suffix_says_the_format_unless_format_does(tmp_path, cap):
    q = shlex.quote(str(cap))
    for name in ("s.parquet", "s.jsonl", "s.json", "s.csv", "s.txt"):
        assert sh(f"smtpdiag sessions {q} -o {name}", tmp_path).returncode == 0, name
    assert len(pd.read_parquet(tmp_path / "s.parquet")) == 2
    lines = (tmp_path / "s.jsonl").read_text().splitlines()
    assert [json.loads(l)["failure_cause"] for l in lines] == ["ok", "ok"]
    assert len(json.loads((tmp_path / "s.json").read_text())) == 2
    assert len(pd.read_csv(tmp_path / "s.csv")) == 2
    assert (tmp_path / "s.txt").read_text().startswith("pcap_file")
    assert sh(f"smtpdiag sessions {q} -o t.parquet --format csv", tmp_path).returncode == 0
    assert (tmp_path / "t.parquet").read_text().startswith("ts,pcap_file")
    res = sh(f"smtpdiag sessions {q} -o s.tsv", tmp_path)
    assert res.returncode == 2 and b"cannot tell the format" in res.stderr


def test_jsonl_and_parquet_on_standard_output(tmp_path, cap):
    q = shlex.quote(str(cap))
    res = sh(f"smtpdiag transactions {q} --format jsonl", tmp_path)
    assert [json.loads(l)["mailfrom"] for l in res.stdout.decode().splitlines()] == \
        ["gurpartap@patriots.in", "albert@example.com"]
    res = sh(f"smtpdiag sessions {q} --format parquet -o -", tmp_path)
    assert res.returncode == 0 and len(pd.read_parquet(io.BytesIO(res.stdout))) == 2


@pytest.mark.parametrize("option", ["--filter", "--fail-on"])
def test_unknown_cause_names_are_usage_errors(tmp_path, cap, option):
    res = sh(f"smtpdiag sessions {shlex.quote(str(cap))} {option} data_timout", tmp_path)
    assert res.returncode == 2
    err = res.stderr.decode()
    assert "data_timout" in err and "data_timeout" in err and "any" in err and "imap_auth_failed" in err


def test_filter_any_keeps_every_failing_session(tmp_path, cap, other):
    res = sh(f"smtpdiag sessions {shlex.quote(str(cap))} {shlex.quote(str(other))} --filter any --format csv",
             tmp_path)
    assert list(pd.read_csv(io.BytesIO(res.stdout)).failure_cause) == ["rejected"] * 3


def test_the_cause_list_is_the_plugins():
    from pyshark_tools.report.causes import CAUSES

    spec = (ROOT / "lua" / "smtpdiag" / "fields.lua").read_text()
    block = spec[spec.index("M.EXPERT_SPEC"):]
    block = block[:block.index("\n}")]
    assert set(CAUSES) == {"ok", *re.findall(r'\{ "([a-z0-9_]+)", "', block)}


def test_global_options_after_the_command(tmp_path, cap):
    q = shlex.quote(str(cap))
    assert sh(f"smtpdiag sessions {q} -q --debug --tshark {shutil.which('tshark')}", tmp_path).returncode == 0
    res = sh(f"smtpdiag sessions {q} --tshark /nonexistent/tshark", tmp_path)
    assert res.returncode == 1 and b"/nonexistent/tshark" in res.stderr
    assert sh("smtpdiag lua path -q", tmp_path).returncode == 0


def _on_a_terminal(args: list[str], tmp: Path) -> tuple[int, str, bytes]:
    """Run smtpdiag with standard error on a pseudo-terminal (100 columns); stdout is a pipe."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(SMTPDIAG + args, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
                            env=_env(tmp), cwd=tmp)
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    out = proc.stdout.read()
    proc.wait()
    os.close(master)
    return proc.returncode, seen.decode("utf-8", "replace"), out


def test_progress_on_a_terminal_only(tmp_path, cap, other):
    caps = [str(cap), str(other)]
    rc, err, out = _on_a_terminal(["sessions", *caps, "--format", "csv"], tmp_path)
    assert rc == 0 and len(table(out)) == 5
    assert "2/2 files" in err and "B/s" in err and "100%" in err
    rc, err, _ = _on_a_terminal(["sessions", *caps, "-q"], tmp_path)
    assert rc == 0 and err == ""
    res = sh(f"smtpdiag sessions {' '.join(map(shlex.quote, caps))}", tmp_path)
    assert res.returncode == 0 and res.stderr == b""


# -- 13.4: outputs written whole, never through a link ----------------------------------------

def test_no_output_is_written_through_a_symbolic_link(tmp_path, cap):
    q = shlex.quote(str(cap))
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    (tmp_path / "vdir").mkdir()
    for link in ("out.csv", "fig.png"):
        (tmp_path / link).symlink_to(victim)
    (tmp_path / "report").symlink_to(tmp_path / "vdir")
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "index.html").symlink_to(victim)
    for cmd in (f"smtpdiag sessions {q} -o out.csv", f"smtpdiag plot causes {q} -o fig.png",
                f"smtpdiag report {q} -o report", f"smtpdiag report {q} -o real"):
        res = sh(cmd, tmp_path)
        assert res.returncode == 1 and b"symbolic link" in res.stderr, (cmd, res.stderr)
    assert victim.read_text() == "keep me\n" and not any((tmp_path / "vdir").iterdir())
    assert (tmp_path / "out.csv").is_symlink() and (tmp_path / "real" / "index.html").is_symlink()
    assert not [p for p in tmp_path.rglob(".*.tmp")]


def test_a_failing_writer_keeps_the_old_file_and_no_temporary(tmp_path):
    from pyshark_tools.atomic import write_with

    good = tmp_path / "prev.csv"
    good.write_text("a,b\n1,2\n")

    def half_then_full_disk(tmp: str) -> None:
        with open(tmp, "w") as fh:
            fh.write("a,")
        raise OSError(28, "No space left on device")
    with pytest.raises(OSError):
        write_with(good, half_then_full_disk)
    assert good.read_text() == "a,b\n1,2\n" and sorted(p.name for p in tmp_path.iterdir()) == ["prev.csv"]


def _small_tmpfs(where: Path) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    where.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


def test_a_full_disk_never_truncates_a_good_output(tmp_path, cap):
    disk = tmp_path / "disk"
    if not _small_tmpfs(disk):
        pytest.skip("needs root and mount to make a 64 KiB tmpfs")
    try:
        with open(disk / "filler", "wb", buffering=0) as fh:
            assert sh(f"smtpdiag sessions {shlex.quote(str(cap))} -o {disk}/prev.csv", tmp_path).returncode == 0
            good = (disk / "prev.csv").read_bytes()
            try:
                while fh.write(b"\0" * 4096):   # fill the rest of the disk
                    pass
            except OSError:
                pass
        for fmt in ("csv", "parquet"):
            res = sh(f"smtpdiag sessions {shlex.quote(str(cap))} --format {fmt} -o {disk}/prev.csv", tmp_path)
            assert res.returncode == 1 and b"No space left" in res.stderr, res.stderr
            assert (disk / "prev.csv").read_bytes() == good
            assert sorted(p.name for p in disk.iterdir()) == ["filler", "prev.csv"]
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_profile_install_replaces_a_linked_preferences_file_not_its_target(tmp_path):
    from pyshark_tools.plugin.install import install_profile, profile_source_dir

    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    prof = tmp_path / "profiles" / "smtpdiag"
    prof.mkdir(parents=True)
    (prof / "preferences").symlink_to(victim)
    install_profile(tmp_path / "profiles")
    assert victim.read_text() == "keep me\n"
    assert not (prof / "preferences").is_symlink()
    assert (prof / "preferences").read_bytes() == (profile_source_dir() / "preferences").read_bytes()
