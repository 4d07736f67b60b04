"""The keyword index in tantivy: rankings against the FTS5 BM25 it replaced, the move of an FTS5
index into it, and writers and readers in other processes."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from clipcite.retrieval.index import CATALOG_FILE, Index
from clipcite.retrieval.keyword import KeywordIndex
from clipcite.retrieval.migrations import SCHEMA_VERSION, version
from clipcite.retrieval.schema import PASSAGES, SLIDES, TEXT_MODALITIES, TRANSCRIPT
from clipcite.retrieval.tantivy_keywords import KEYWORD_DIR, TantivyKeywords
from tests.conftest import REPO
from tests.fts5_index import Row, as_fts5_index, fts5_reference, fts5_top, stored_rows

DEV_INDEX = REPO / "tests" / "artifacts" / "dev-index"
DEV_ROWS = REPO / "tests" / "data" / "dev_keyword_rows.json"
def _overlap(a: list[str], b: list[str]) -> float:
    return len(set(a) & set(b)) / max(len(a), len(b)) if a or b else 1.0


@pytest.fixture(scope="module")
def dev_rows() -> list[Row]:
    """The development index's text segments, exported to tests/data (see its README)."""
    return [tuple(row) for row in json.loads(DEV_ROWS.read_text(encoding="utf-8"))]


def test_rankings_agree_with_fts5_bm25_on_the_development_set(dev_rows: list[Row],
                                                                 tmp_path: Path):
    """Per query of eval/dev_queries.jsonl and text modality, the top 10 of tantivy against
    FTS5's bm25() over the same rows. Stated tolerance: the top-10 lists share 90% of their
    entries on average, the first hit is the same for 90% of the lists, and at most 5% of
    the lists share less than half. (Measured: 0.98 mean overlap, first hit equal in 98% of
    117 lists; the one list apart is Snowball stemming "weekly" to "week", which Porter
    leaves as "weekli": tantivy finds the "First-Week Schedule" slide, FTS5 nothing.)"""
    reference = fts5_reference(dev_rows)
    keywords = KeywordIndex(tmp_path / "keywords")
    for modality in TEXT_MODALITIES:
        chosen = [r for r in dev_rows if r[2] == modality]
        keywords.add([r[0] for r in chosen], [r[1] for r in chosen], modality,
                     [r[3] for r in chosen])
    gens = sorted({r[1] for r in dev_rows})
    queries = [json.loads(line)["query"]
               for line in (REPO / "eval" / "dev_queries.jsonl").read_text().splitlines()
               if line.strip()]
    overlaps, firsts = [], []
    for query in queries:
        found = keywords.search_modalities(query, (TRANSCRIPT, SLIDES, PASSAGES), gens, 10)
        for modality in (TRANSCRIPT, SLIDES, PASSAGES):
            old = fts5_top(reference, query, modality, 10)
            new = [i for i, _ in found[modality]]
            if not old and not new:
                continue
            overlaps.append(_overlap(old, new))
            firsts.append(bool(old and new and old[0] == new[0]))
    assert len(overlaps) >= len(queries)
    assert sum(overlaps) / len(overlaps) >= 0.9
    assert sum(firsts) / len(firsts) >= 0.9
    assert sum(o < 0.5 for o in overlaps) <= 0.05 * len(overlaps)


# Development-set figures (all 44 queries, k = 5): Hit@1, Hit@5. First measured with the FTS5
# keyword index before the move to tantivy (37 / 44 fused Hit@1); since then the default
# diarization changed where segments split (speaker turns, overlapped speech), and a dev index
# built afresh by eval/dev_eval.py (session 15, 2026-12-07) ranks one more check-half question
# second (fused misses: real-dev00-2/-3, meet-6 and onb-6 on that half), with keyword-only
# figures unchanged. These are that index's figures: the bar for later changes.
DEV_FIGURES = {"keyword only (BM25)": (22 / 44, 40 / 44),
               "fused (all modalities)": (36 / 44, 42 / 44)}


@pytest.mark.slow
def test_development_set_figures_do_not_drop(tmp_path: Path):
    from clipcite.retrieval.archive import open_searcher_at
    from clipcite.retrieval.evaluation import ABLATIONS, evaluate, load_queries

    if not (DEV_INDEX / CATALOG_FILE).is_file():
        pytest.skip("no development index: build it with eval/dev_eval.py")

    copy = Path(shutil.copytree(DEV_INDEX, tmp_path / "index"))
    searcher = open_searcher_at(copy)
    queries = load_queries(REPO / "eval" / "dev_queries.jsonl")
    for name, (hit1, hit5) in DEV_FIGURES.items():
        report = evaluate(searcher, queries, name=name, **ABLATIONS[name])
        assert report.hit1 >= hit1 and report.hit5 >= hit5, (name, report)


def _rows(gen: str, texts: list[str], modality: str = TRANSCRIPT) -> list[Row]:
    return [(f"m:{gen}:{modality}:{n}", gen, modality, t) for n, t in enumerate(texts)]


def _index_with(tmp_path: Path) -> tuple[Index, list[Row]]:
    from tests.test_retrieval import OPEN_LINES, SECRET_LINES, _write

    index = Index(tmp_path / "index")
    _write(index, "secret", SECRET_LINES, groups=["board"], slides=["Bluebird: merger plan"])
    _write(index, "open1", OPEN_LINES, slides=["E-mail: help@example.org"])
    return index, stored_rows(index)


QUERIES = ("bluebird merger", "broken printer", "email help", "noon lunch", "nothing here")


def _answers(keywords: KeywordIndex, gens: list[str]) -> dict[str, dict]:
    return {q: keywords.search_modalities(q, (TRANSCRIPT, SLIDES), gens, 5) for q in QUERIES}


def test_an_fts5_index_moves_to_tantivy_when_opened(tmp_path: Path):
    index, rows = _index_with(tmp_path)
    gens = [r.gen for r in index.catalog.visible()]
    expected = _answers(index.keywords, gens)
    index.catalog.close()
    as_fts5_index(tmp_path / "index", rows)

    reopened = Index(tmp_path / "index")
    db = reopened.catalog.connection
    assert version(db) == SCHEMA_VERSION
    assert not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'segment_text'").fetchone()
    assert reopened.keywords.count() == len(rows)
    assert _answers(reopened.keywords, gens) == expected


def test_a_move_that_fails_half_way_leaves_the_fts5_index_and_runs_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    index, rows = _index_with(tmp_path)
    gens = [r.gen for r in index.catalog.visible()]
    expected = _answers(index.keywords, gens)
    index.catalog.close()
    as_fts5_index(tmp_path / "index", rows)
    added: list[Row] = []
    real = TantivyKeywords._document

    def failing(self: TantivyKeywords, row: Row) -> object:
        if len(added) == len(rows) // 2:
            raise OSError("disk full")
        added.append(row)
        return real(self, row)

    monkeypatch.setattr(TantivyKeywords, "_document", failing)
    with pytest.raises(OSError):
        Index(tmp_path / "index")
    db = sqlite3.connect(str(tmp_path / "index" / CATALOG_FILE))
    assert version(db) == 5
    assert db.execute("SELECT count(*) FROM segment_text").fetchone()[0] == len(rows)
    assert TantivyKeywords(tmp_path / "index" / KEYWORD_DIR).count() == 0  # nothing committed

    monkeypatch.setattr(TantivyKeywords, "_document", real)
    reopened = Index(tmp_path / "index")
    assert reopened.keywords.count() == len(rows)
    assert _answers(reopened.keywords, gens) == expected


_CHILD = """
import sys, time
from pathlib import Path
from clipcite.retrieval.tantivy_keywords import TantivyKeywords
keywords = TantivyKeywords(Path(sys.argv[1]))
rows = [("m:g2:transcript:0", "g2", "transcript", "the quarterly budget is approved")]
if sys.argv[2] == "commit":
    keywords.add(rows)
else:  # hold the writer with the row added, uncommitted, until killed
    with keywords._writer() as writer:
        writer.add_document(keywords._document(rows[0]))
        print("holding", flush=True)
        time.sleep(120)
"""


def _child(directory: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(directory), mode],
                            stdout=subprocess.PIPE, text=True)


def test_a_reader_sees_another_process_commit_without_reopening(tmp_path: Path):
    keywords = KeywordIndex(tmp_path / "keywords")
    keywords.add(["m:g1:transcript:0"], ["g1"], TRANSCRIPT, ["lunch is at noon"])
    assert keywords.search("budget", TRANSCRIPT, ["g1", "g2"], 5) == []
    assert _child(tmp_path / "keywords", "commit").wait(timeout=120) == 0
    found = keywords.search("budget", TRANSCRIPT, ["g1", "g2"], 5)
    assert [i for i, _ in found] == ["m:g2:transcript:0"]
    assert keywords.search("budget", TRANSCRIPT, ["g1"], 5) == []  # g2 not visible to this caller


def test_a_writer_killed_mid_write_leaves_nothing_and_blocks_no_one(tmp_path: Path):
    keywords = KeywordIndex(tmp_path / "keywords")
    child = _child(tmp_path / "keywords", "hold")
    assert child.stdout is not None and child.stdout.readline().strip() == "holding"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    # The next writer gets both locks (the OS released the killed process's).
    keywords.add(["m:g1:transcript:0"], ["g1"], TRANSCRIPT, ["the budget for lunch"])
    assert keywords.count("g2") == 0 and keywords.count("g1") == 1
    assert [i for i, _ in keywords.search("budget", TRANSCRIPT, ["g1", "g2"], 5)] == \
        ["m:g1:transcript:0"]


def test_only_the_generations_asked_for_are_returned_on_either_path(tmp_path: Path):
    """Post-filtering (a large share) and the generation filter (a small one) agree, and
    neither returns a generation the caller did not pass."""
    keywords = KeywordIndex(tmp_path / "keywords")
    for g in range(20):
        rows = _rows(f"g{g}", [f"budget review number {n} for team {g}" for n in range(15)])
        keywords.add([r[0] for r in rows], [r[1] for r in rows], TRANSCRIPT,
                     [r[3] for r in rows])
    every = [f"g{g}" for g in range(20)]
    for allowed in (every, every[:15], every[:2], ["g7"]):
        for k in (1, 10, 40):
            share = len(allowed) / len(every)
            found = keywords.search("budget review", TRANSCRIPT, allowed, k, share)
            filtered = keywords.search("budget review", TRANSCRIPT, allowed, k, 0.0)
            assert len(found) == min(k, 15 * len(allowed))
            assert {i.split(":")[1] for i, _ in found} <= set(allowed)
            assert sorted(s for _, s in found) == sorted(s for _, s in filtered)


def test_a_recordings_keyword_rows_are_committed_as_the_catalog_makes_it_visible(
        tmp_path: Path):
    """Index.add holds keyword rows back (one commit per recording) until commit_generation,
    which commits them before the catalog points at the generation."""
    import numpy as np

    from clipcite.retrieval.catalog import Recording

    index = Index(tmp_path / "index")
    gen = "g1"
    index.catalog.begin_generation(gen)
    for modality, texts in ((TRANSCRIPT, ["the budget is late", "lunch at noon"]),
                            (SLIDES, ["Budget review"])):
        ids = [f"rec:{gen}:{modality}:{n}" for n in range(len(texts))]
        meta = [{"media_id": "rec", "gen": gen, "start": float(n), "end": n + 1.0}
                for n in range(len(texts))]
        index.add(modality, ids, np.ones((len(texts), 384), dtype=np.float32), texts, meta)
    assert index.keywords.count(gen) == 0  # nothing searchable before the switch
    index.catalog.commit_generation(Recording(media_id="rec", path="/r.wav", title="Rec",
                                              status="pending", gen=gen))
    assert index.keywords.count(gen) == 3
    found = index.keyword_hits("budget", (TRANSCRIPT, SLIDES), 5, [gen])
    assert [h.id for h in found[TRANSCRIPT]] == [f"rec:{gen}:transcript:0"]
    assert [h.id for h in found[SLIDES]] == [f"rec:{gen}:slides:0"]


# -- a keyword directory lost or damaged is restored from Chroma when the index is opened ------
def _ids(answers: dict[str, dict]) -> dict[str, dict[str, list[str]]]:
    return {q: {m: [i for i, _ in found] for m, found in by.items()}
            for q, by in answers.items()}


def _written(tmp_path: Path) -> tuple[list[str], dict, int]:
    """A small index written and closed: its generations, keyword answers and row count."""
    index, rows = _index_with(tmp_path)
    gens = [r.gen for r in index.catalog.visible()]
    expected = _ids(_answers(index.keywords, gens))
    assert index.keywords.count() == len(rows) > 0
    assert any(expected[q][m] for q in QUERIES for m in (TRANSCRIPT, SLIDES))
    index.catalog.close()
    return gens, expected, len(rows)


def test_a_deleted_keyword_directory_is_restored_when_the_index_is_opened(tmp_path: Path):
    gens, expected, total = _written(tmp_path)
    shutil.rmtree(tmp_path / "index" / KEYWORD_DIR)

    reopened = Index(tmp_path / "index")
    assert reopened.keywords.count() == total
    assert _ids(_answers(reopened.keywords, gens)) == expected
    reopened.catalog.close()
    again = Index(tmp_path / "index")  # nothing missing now: nothing added twice
    assert again.keywords.count() == total


def test_an_emptied_keyword_directory_is_restored(tmp_path: Path):
    gens, expected, total = _written(tmp_path)
    directory = tmp_path / "index" / KEYWORD_DIR
    shutil.rmtree(directory)
    directory.mkdir()

    reopened = Index(tmp_path / "index")
    assert reopened.keywords.count() == total
    assert _ids(_answers(reopened.keywords, gens)) == expected


def test_a_damaged_keyword_directory_is_set_aside_and_restored(tmp_path: Path):
    gens, expected, total = _written(tmp_path)
    directory = tmp_path / "index" / KEYWORD_DIR
    (directory / "meta.json").write_text("{not json")
    kept = sorted(p.name for p in directory.iterdir())

    reopened = Index(tmp_path / "index")
    assert reopened.keywords.count() == total
    assert _ids(_answers(reopened.keywords, gens)) == expected
    aside = list((tmp_path / "index").glob(KEYWORD_DIR + ".damaged-*"))
    assert len(aside) == 1 and aside[0].is_dir()
    assert sorted(p.name for p in aside[0].iterdir()) == kept
    assert (aside[0] / "meta.json").read_text() == "{not json"


def test_an_index_without_recordings_restores_nothing(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch):
    Index(tmp_path / "index").catalog.close()
    shutil.rmtree(tmp_path / "index" / KEYWORD_DIR)
    calls: list[object] = []
    real = TantivyKeywords.add_missing
    monkeypatch.setattr(TantivyKeywords, "add_missing",
                        lambda self, *a, **kw: calls.append(a) or real(self, *a, **kw))

    reopened = Index(tmp_path / "index")
    assert calls == [] and reopened.keywords.count() == 0
    assert sorted(p.name for p in (tmp_path / "index").iterdir()
                  if p.name.startswith(KEYWORD_DIR)) == [KEYWORD_DIR]


def test_a_restore_another_process_finished_first_is_not_done_again(tmp_path: Path):
    """The generations missing are asked again under the writer lock: once another opener has
    restored them, none are, and nothing is added twice."""
    gens, _, total = _written(tmp_path)
    shutil.rmtree(tmp_path / "index" / KEYWORD_DIR)
    late = KeywordIndex(tmp_path / "index" / KEYWORD_DIR)  # opened before the restore
    assert late.count() == 0

    first = Index(tmp_path / "index")  # restores
    assert first.keywords.count() == total
    asked: list[list[str]] = []

    def missing() -> list[str]:
        asked.append([g for g in gens if late.count(g) == 0])
        return asked[-1]

    assert late.add_missing(missing, first._stored_texts) == 0
    assert asked == [[]] and late.count() == total


_OPENER = """
import sys
from pathlib import Path
from clipcite.retrieval.index import Index
print(Index(Path(sys.argv[1])).keywords.count(), flush=True)
"""


def test_processes_opening_together_restore_once(tmp_path: Path):
    _, _, total = _written(tmp_path)
    shutil.rmtree(tmp_path / "index" / KEYWORD_DIR)
    openers = [subprocess.Popen([sys.executable, "-c", _OPENER, str(tmp_path / "index")],
                                stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in openers]
    assert [p.returncode for p in openers] == [0, 0]
    assert [int(o.strip()) for o in outs] == [total, total]
    assert KeywordIndex(tmp_path / "index" / KEYWORD_DIR).count() == total


def test_a_commit_after_one_killed_half_way_reuses_its_file_names(tmp_path: Path):
    # What a process killed inside a delete's commit leaves: the next opstamp's ".del" file of
    # a segment, registered with tantivy but not in meta.json. The next commit takes the same
    # opstamp and failed on "FileAlreadyExists" (tests/test_crash.py hit it at random).
    directory = tmp_path / KEYWORD_DIR
    keywords = TantivyKeywords(directory)
    keywords.add(_rows("g1", ["the budget is approved", "the pilot starts in April"]))
    meta = json.loads((directory / "meta.json").read_text())
    leftover = f"{meta['segments'][0]['segment_id'].replace('-', '')}.{meta['opstamp'] + 1}.del"
    managed = json.loads((directory / ".managed.json").read_text())
    (directory / ".managed.json").write_text(json.dumps([*managed, leftover]))
    (directory / leftover).write_bytes(b"left by a killed commit")
    again = TantivyKeywords(directory)
    again.delete_generation("g1")
    assert again.count("g1") == 0 and not (directory / leftover).exists()
