"""notebooks/investigate.ipynb: committed clean, and it runs top to bottom on fixtures (papermill-style parameters)."""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

from conftest import FIXTURES, ROOT

NOTEBOOK = ROOT / "notebooks" / "investigate.ipynb"
ARTIFACTS = ROOT / "test-artifacts"


def _parameters_index(nb) -> int:
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    return tagged[0]


def run_notebook(params: dict, cwd: Path, name: str):
    """Execute the notebook in `cwd` with `params` injected after the parameters cell, as papermill does."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    source = "# Injected parameters\n" + "\n".join(f"{k} = {v!r}" for k, v in params.items())
    nb.cells.insert(_parameters_index(nb) + 1, new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    ARTIFACTS.mkdir(exist_ok=True)
    nbformat.write(nb, ARTIFACTS / f"investigate-{name}.ipynb")
    return nb


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


def test_committed_clean_with_parameters_cell():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    params = nb.cells[_parameters_index(nb)].source
    assert 'capture = "fixtures/captures/data_timeout.pcap"' in params


def test_runs_on_a_failing_data_phase_from_another_directory(tmp_path):
    # a relative capture path, run from a folder outside the repository: the notebook finds the root
    nb = run_notebook({"capture": "fixtures/captures/bare_lf_terminator.pcap"}, tmp_path, "bare_lf_terminator")
    text, images = outputs(nb)
    assert "bare_lf_terminator.pcap" in text
    assert "1 session(s), 1 failing" in text
    assert "bare_lf_terminator" in text.split("1 session(s)", 1)[1]     # the sessions table shows the cause
    assert "message data ended by &lt;LF&gt;.&lt;LF&gt;" in text or "message data ended by <LF>.<LF>" in text
    assert "no MX lookups in this capture" in text
    assert "DATA phase: frames" in text and "bare_lf" in text.split("DATA phase: frames", 1)[1]
    assert "tcp.stream == 0" in text                                    # how to open it in Wireshark
    assert images >= 2                                                  # causes plot, latency plot


def test_runs_on_unanswered_syns(tmp_path):
    capture = str(FIXTURES / "no_response.pcap")
    nb = run_notebook({"capture": capture, "stream": 0}, ROOT / "notebooks", "no_response")
    text, images = outputs(nb)
    assert "0 SYN-ACK(s)" in text
    assert "no_response" in text and "no SYN-ACK" in text
    assert "this session has no DATA phase" in text
    assert images >= 2
