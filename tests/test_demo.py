"""The README's first run: the bundled sample is ingested and answers the sample question."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import REPO


def test_sample_folder_ingests_and_answers_the_demo_question(tmp_path: Path, run_cli):
    index = str(tmp_path / "index")
    out = run_cli("ingest", str(REPO / "samples"), "--tags", "sample", "--index", index).stdout
    assert "1 indexed" in out
    found = json.loads(run_cli("search", "where does the training explain phishing?", "--json",
                               "--k", "3", "--index", index).stdout)["results"]
    assert found[0]["title"] == "Security training"
    assert any("phishing" in r["text"].lower() for r in found)
    hit = next(r for r in found if "phishing" in r["text"].lower())
    assert 0.0 <= hit["start"] < hit["end"] <= 87.5 and hit["end"] - hit["start"] <= 30
    again = run_cli("ingest", str(REPO / "samples"), "--index", index).stdout
    assert "1 unchanged" in again


def test_models_command_reports_every_packaged_model(run_cli):
    out = run_cli("models").stdout
    assert "tiny.en (packaged)" in out and "sha256 checked" in out
    assert "384-d" in out and "tesseract" in out and "off (no weights configured)" in out
    assert "overlap pyannote segmentation-3.0" in out  # the default labels overlapped speech
