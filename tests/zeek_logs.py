"""Read Zeek ASCII logs (the corpus baselines) into lists of dicts."""
from __future__ import annotations

import csv
import re
from pathlib import Path

from conftest import CORPUS


def read_zeek_log(path: Path) -> list[dict[str, str]]:
    fields: list[str] = []
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#"):
            rows.append(dict(zip(fields, line.split("\t"))))
    return rows


def baseline_captures() -> list[tuple[str, str]]:
    """(baseline test name, capture file) pairs for every smtp.log baseline in the manifest."""
    manifest = CORPUS.parent / "MANIFEST.tsv"
    pairs = []
    with open(manifest) as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            for name in re.findall(r"(scripts\.[\w.-]+|core\.[\w.-]+)", row["expected"]):
                if (CORPUS / "baselines" / name / "smtp.log").is_file():
                    pairs.append((name, row["file"].split("/", 1)[1]))
    return pairs
