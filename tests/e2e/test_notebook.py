"""notebooks/investigate.ipynb: committed clean, papermill reads its parameters, and papermill runs it top to
bottom on a folder (drilling into the right file) and on a single file, from outside the checkout."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import papermill
import pytest

from conftest import FIXTURES, ROOT

import pyshark_tools as pt

NOTEBOOK = ROOT / "notebooks" / "investigate.ipynb"
ARTIFACTS = ROOT / "test-artifacts"
# Every one of these has a tcp.stream 0; three of them a DATA phase, each a different one.
FOLDER = ["ok.pcap", "bare_lf_terminator.pcap", "data_timeout.pcap", "rejected.pcap", "tempfail.pcap",
          "dns_mx_ok.pcap"]


def run_notebook(params: dict, cwd: Path, name: str):
    """Execute the notebook with papermill (its parameter injection, its kernel) in `cwd`."""
    ARTIFACTS.mkdir(exist_ok=True)
    out = ARTIFACTS / f"investigate-{name}.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(out), parameters=params, cwd=str(cwd), kernel_name="python3",
                               progress_bar=False, execution_timeout=600)
    return nbformat.read(out, as_version=4)


def outputs(nb) -> tuple[str, int]:
    """All text the notebook showed (streams, plain/html/markdown), and how many PNG images it showed."""
    text, images = [], 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", out
            if out.output_type == "stream":
                text.append(out.text)
            data = out.get("data", {})
            images += "image/png" in data
            text += [str(data[k]) for k in ("text/plain", "text/html", "text/markdown") if k in data]
    return "\n".join(text), images


def data_phase_line(capture: Path, stream: int) -> str:
    """What the notebook must print about the DATA phase of (capture, stream), from that file alone."""
    p = pt.packets(str(capture), ["frame.number", "tcp.len", "smtpdiag.role", "smtpdiag.command"],
                   display_filter=f"tcp.stream == {stream}")
    start = p.index[p["smtpdiag.command"].astype("string").isin(["DATA", "BDAT"]).fillna(False)][0]
    d = p.loc[start:]
    client = int(d.loc[d["smtpdiag.role"] == "client", "tcp.len"].fillna(0).sum())
    return (f"DATA phase of {capture.name}, stream {stream}: frames {d['frame.number'].iloc[0]}-"
            f"{d['frame.number'].iloc[-1]}, {client} client bytes")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A folder of captures outside the checkout, whose files all have a tcp.stream 0."""
    d = tmp_path_factory.mktemp("captures") / "mail"
    d.mkdir()
    for name in FOLDER:
        shutil.copy(FIXTURES / name, d / name)
    return d


def test_committed_clean_with_parameters_cell():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    # Only the package's API: no checkout path, no plugin path of its own.
    source = "\n".join(c.source for c in code)
    assert "pyproject" not in source and ".lua" not in source and "SMTPDIAG_LUA" not in source
    assert "import pyshark_tools as pt" in source


def test_papermill_reads_every_parameter():
    params = papermill.inspect_notebook(str(NOTEBOOK))
    assert {k: (v["inferred_type_name"], v["default"]) for k, v in params.items()} == {
        "capture": ("str", '"fixtures/captures/data_timeout.pcap"'), "pcap_file": ("str", '""'),
        "stream": ("int", "-1"), "tls_keylog": ("str", '""')}
    assert all(v["help"] for v in params.values())


def test_folder_drills_into_the_file_asked_for(folder):
    nb = run_notebook({"capture": "mail", "pcap_file": "bare_lf_terminator.pcap", "stream": 0}, folder.parent,
                      "folder-bare_lf")
    text, images = outputs(nb)
    assert f"{len(FOLDER)} file(s), 10 session(s)" in text
    assert "session: bare_lf_terminator.pcap, tcp.stream == 0" in text
    assert data_phase_line(folder / "bare_lf_terminator.pcap", 0) in text
    # the other files' stream 0 has a DATA phase of its own: had the notebook mixed files, this would differ
    assert data_phase_line(folder / "data_timeout.pcap", 0) not in text
    assert "DATA phase of data_timeout.pcap" not in text
    assert "duration_ms" in text and "latency_ms" in text and "0 days" not in text
    assert images >= 2                                                  # causes plot, latency plot


def test_folder_defaults_to_the_first_failing_session(folder):
    nb = run_notebook({"capture": str(folder)}, ROOT / "notebooks", "folder-default")
    text, _ = outputs(nb)
    s = pt.sessions(str(folder))
    first = s[s["failure_cause"].astype(str) != "ok"].sort_values("ts").iloc[0]
    assert f"session: {first['pcap_file']}, tcp.stream == {first['stream']}" in text
    assert f"`{first['failure_cause']}`" in text


def test_stream_alone_in_a_folder_says_it_is_ambiguous(folder):
    nb = run_notebook({"capture": str(folder), "stream": 0}, folder, "folder-stream-only")
    text, _ = outputs(nb)
    assert re.search(r"tcp\.stream == 0 exists in \d+ files: set pcap_file", text)


def test_single_file_relative_to_the_working_directory(tmp_path):
    shutil.copy(FIXTURES / "no_response.pcap", tmp_path / "no_response.pcap")
    nb = run_notebook({"capture": "no_response.pcap"}, tmp_path, "no_response")
    text, images = outputs(nb)
    assert "1 file(s), 1 session(s), 1 failing" in text
    assert "0 SYN-ACK(s)" in text
    assert "no_response" in text and "no SYN-ACK" in text
    assert "this session has no DATA phase" in text
    assert images >= 2


def test_single_file_with_a_data_phase(tmp_path):
    shutil.copy(FIXTURES / "bare_lf_terminator.pcap", tmp_path / "x.pcap")
    nb = run_notebook({"capture": str(tmp_path / "x.pcap")}, tmp_path, "bare_lf_terminator")
    text, _ = outputs(nb)
    assert "message data ended by &lt;LF&gt;.&lt;LF&gt;" in text            # escaped before Markdown
    assert "no MX lookups in this capture" in text
    assert data_phase_line(tmp_path / "x.pcap", 0) in text
    assert "tcp.stream == 0" in text                                    # how to open it in Wireshark


def test_tls_keylog_parameter_decrypts(tmp_path):
    """With its key log, the STARTTLS session's AUTH failure inside TLS is the verdict; without, it is not."""
    shutil.copy(FIXTURES / "tls_keylog_starttls_auth_failed.pcap", tmp_path / "tls.pcap")
    shutil.copy(FIXTURES / "tls_keylog_starttls_auth_failed.keys", tmp_path / "tls.keys")
    nb = run_notebook({"capture": "tls.pcap", "tls_keylog": "tls.keys"}, tmp_path, "tls_keylog")
    text, _ = outputs(nb)
    assert "1 file(s), 1 session(s), 1 failing" in text and "`auth_failed`" in text
    assert "fake-password" not in text
