"""One schema path: every table of catalog.sqlite3 comes from retrieval/migrations.py.

tests/fixtures/legacy_index_v2 is an index written by the code before it (two transcripts and a
failed file; tests/fixtures/make_legacy_index.py rebuilds it from that revision), with what that
code's searches returned. It must upgrade in place and answer the same.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from clipcite.retrieval.voice_models import CAMPLUS, RESEMBLYZER
from clipcite.retrieval.index import CATALOG_FILE, Index
from clipcite.retrieval.keyword import index_text
from clipcite.retrieval.migrations import MIGRATIONS, SCHEMA_VERSION, migrate, version
from clipcite.retrieval.schema import TRANSCRIPT

LEGACY = Path(__file__).resolve().parent / "fixtures" / "legacy_index_v2"
# The keyword index is in tantivy, beside the database.
TABLES = {"recordings", "garbage", "speaker_turns", "speakers", "speaker_segments"}


@pytest.fixture()
def legacy(tmp_path: Path) -> Path:
    """A copy of the old index (opening it writes to it)."""
    return Path(shutil.copytree(LEGACY, tmp_path / "legacy"))


def _connect(index_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(index_dir / CATALOG_FILE), isolation_level=None)


def _tables(db: sqlite3.Connection) -> dict[str, list[str]]:
    """Each ordinary table (FTS5's shadow tables aside) with its columns."""
    names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'"
                                      " AND name NOT LIKE 'segment_text_%' ORDER BY name")]
    return {n: [c[1] for c in db.execute(f"PRAGMA table_info({n})")] for n in names}


def _dump(db: sqlite3.Connection) -> list[str]:
    return list(db.iterdump())


def _search(index_dir: Path, query: str, args: list[str]) -> list[dict]:
    from clipcite.ui.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["search", query, "--json", "--index", str(index_dir), *args]) == 0
    return json.loads(out.getvalue())["results"]


def test_an_index_written_by_the_old_code_upgrades_in_place_and_searches_the_same(legacy: Path):
    expected = json.loads((legacy / "expected.json").read_text(encoding="utf-8"))
    db = _connect(legacy)
    assert version(db) == 2 and "keyword_version" in _tables(db)  # as the old code left it
    speakers_before = db.execute("SELECT * FROM speakers ORDER BY gen, label").fetchall()
    rows_before = db.execute("SELECT * FROM recordings ORDER BY media_id").fetchall()
    keyword_before = db.execute("SELECT seg_id, gen FROM segment_text").fetchall()

    index = Index(legacy)
    assert version(db) == SCHEMA_VERSION
    tables = _tables(db)
    assert set(tables) == TABLES  # keyword_version folded into user_version, FTS5 moved out
    assert db.execute("SELECT * FROM speakers ORDER BY gen, label").fetchall() == speakers_before
    assert db.execute("SELECT * FROM recordings ORDER BY media_id").fetchall() == rows_before
    # Every FTS5 row moved to the tantivy index, none twice.
    assert index.keywords.count() == len(keyword_before)
    for gen in {g for _, g in keyword_before}:
        assert index.keywords.count(gen) == sum(1 for _, g in keyword_before if g == gen)
    assert [(r.title, r.status) for r in index.catalog.all()] == \
        [(r["title"], r["status"]) for r in expected["status"]]

    for search in expected["searches"]:
        found = _search(legacy, search["query"], search["args"])
        assert len(found) == len(search["results"]), search["query"]
        for got, old in zip(found, search["results"]):
            # The same moments in the same order; BM25 moved from FTS5 to tantivy (IDF and
            # stemming differ slightly), so a keyword hit may move a place in its list, which
            # moves a fused score by ~1e-4 (RRF weights 0.1-0.3): scores agree within 1e-3.
            assert got.pop("score") == pytest.approx(old.pop("score"), abs=1e-3)
            assert got == old, search["query"]


def test_an_upgraded_index_has_the_tables_of_a_fresh_one(legacy: Path, tmp_path: Path):
    Index(legacy)
    fresh = Index(tmp_path / "fresh")
    db = fresh.catalog.connection
    assert version(db) == SCHEMA_VERSION == len(MIGRATIONS)
    assert _tables(db) == _tables(_connect(legacy))
    assert set(_tables(db)) == TABLES and "model" in _tables(db)["speakers"]


def test_migrations_run_in_order_exactly_once(tmp_path: Path):
    ran: list[int] = []

    def step(n: int):
        def run(db: sqlite3.Connection) -> None:
            ran.append(n)
            db.execute(f"CREATE TABLE t{n} (x)")
        return run

    steps = [step(n) for n in range(4)]
    db = sqlite3.connect(str(tmp_path / "db.sqlite3"), isolation_level=None)
    assert migrate(db, steps[:2]) == 0 and ran == [0, 1] and version(db) == 2
    assert migrate(db, steps) == 2 and ran == [0, 1, 2, 3] and version(db) == 4
    assert migrate(db, steps) == 4 and ran == [0, 1, 2, 3]  # nothing left to do
    assert migrate(db, steps[:3]) == 4 and version(db) == 4  # a newer database is left alone


def test_a_failed_step_leaves_the_database_as_it_was(tmp_path: Path):
    def good(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE kept (x)")

    def bad(db: sqlite3.Connection) -> None:
        raise RuntimeError("disk on fire")

    db = sqlite3.connect(str(tmp_path / "db.sqlite3"), isolation_level=None)
    with pytest.raises(RuntimeError):
        migrate(db, [good, bad])
    assert version(db) == 0 and not db.in_transaction
    assert db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


def test_two_processes_opening_an_old_database_at_once_apply_each_step_once(tmp_path: Path):
    path = tmp_path / "db.sqlite3"
    ran: list[str] = []

    def slow(db: sqlite3.Connection) -> None:
        ran.append("slow")
        time.sleep(0.3)  # the other opener arrives meanwhile
        db.execute("CREATE TABLE once (x)")

    def open_it() -> None:
        db = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
        migrate(db, [slow])
        db.close()

    threads = [threading.Thread(target=open_it) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ran == ["slow"]


def test_opening_twice_is_a_no_op(legacy: Path):
    Index(legacy).catalog.close()
    db = _connect(legacy)
    before = _dump(db)
    statements: list[str] = []
    again = sqlite3.connect(str(legacy / CATALOG_FILE), isolation_level=None)
    again.set_trace_callback(statements.append)
    assert migrate(again) == SCHEMA_VERSION
    assert statements == ["PRAGMA user_version"]  # the version is read, nothing else
    Index(legacy)
    assert _dump(db) == before and version(db) == SCHEMA_VERSION


def test_a_keyword_index_of_an_older_format_is_rewritten_when_the_migration_says_so(
        legacy: Path, tmp_path: Path):
    """As written by keyword format 1 (keyword_version 1): "e-mail" was not also indexed as
    "email". Version 4 rewrites such rows; rows an index at format 2 vouches for stay."""
    other = Path(shutil.copytree(LEGACY, tmp_path / "format2"))
    for index_dir, old_format in ((legacy, 1), (other, 2)):
        db = _connect(index_dir)
        db.execute("UPDATE segment_text SET text = 'Send the e-mail to the press office'"
                   " WHERE rowid = 1")
        db.execute("UPDATE keyword_version SET version = ?", (old_format,))
        db.close()

    seg_id = _connect(legacy).execute("SELECT seg_id FROM segment_text WHERE rowid = 1")
    seg_id = seg_id.fetchone()[0]
    assert index_text("Send the e-mail to the press office") != \
        "Send the e-mail to the press office"  # the rewrite adds "email"
    index = Index(legacy)
    gens = [r.gen for r in index.catalog.visible()]
    assert seg_id in [i for i, _ in index.keywords.search("email", TRANSCRIPT, gens, 5)]

    kept = Index(other).keywords.search("email", TRANSCRIPT, gens, 5)
    assert seg_id not in [i for i, _ in kept]  # format 2 vouched for it: not rewritten


def test_prints_stored_before_models_were_recorded_get_theirs(legacy: Path):
    """A speaker table from before the model column: each print's model from its length."""
    db = _connect(legacy)
    db.executescript("""
        DROP TABLE speakers;
        CREATE TABLE speakers (gen TEXT NOT NULL, label TEXT NOT NULL, name TEXT, status TEXT,
            score REAL, seconds REAL NOT NULL, print BLOB, PRIMARY KEY (gen, label));
    """)
    db.execute("INSERT INTO speakers VALUES ('g1', 'Speaker 1', 'Maria', 'confirmed', NULL, 10,"
               " ?)", (np.ones(256, dtype=np.float32).tobytes(),))
    db.execute("INSERT INTO speakers VALUES ('g2', 'Speaker 1', 'Ken', 'confirmed', NULL, 10,"
               " ?)", (np.ones(192, dtype=np.float32).tobytes(),))
    db.execute("INSERT INTO speakers VALUES ('g3', 'Speaker 1', NULL, NULL, NULL, 1, NULL)")
    db.close()
    Index(legacy)
    models = dict(_connect(legacy).execute("SELECT gen, model FROM speakers").fetchall())
    assert models == {"g1": RESEMBLYZER, "g2": CAMPLUS, "g3": None}


def test_a_catalog_from_before_versions_gets_every_table(tmp_path: Path):
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    db = _connect(index_dir)
    db.execute("CREATE TABLE recordings (media_id TEXT PRIMARY KEY, path TEXT NOT NULL UNIQUE,"
               " title TEXT NOT NULL, size INTEGER, mtime REAL, content_hash TEXT, duration REAL,"
               " recorded_at REAL, tags TEXT NOT NULL DEFAULT '[]', groups_ TEXT NOT NULL"
               " DEFAULT '[]', status TEXT NOT NULL, error TEXT, gen TEXT, models TEXT NOT NULL"
               " DEFAULT '{}', counts TEXT NOT NULL DEFAULT '{}', ingested_at REAL)")
    db.execute("INSERT INTO recordings (media_id, path, title, status) VALUES"
               " ('m', '/a/x.wav', 'X', 'failed')")
    index = Index(index_dir)
    assert version(db) == SCHEMA_VERSION and set(_tables(db)) == TABLES
    assert index.catalog.get("m").groups == ["(admins only)"]  # version 2 ran too


def test_an_old_index_searches_with_the_wider_hnsw_candidate_list(legacy: Path):
    """ef_search (Chroma's 100 when these collections were made) is raised to the schema's
    when the index is opened; it is mutable, so no vector is rewritten."""
    import chromadb

    from clipcite.retrieval.schema import HNSW_EF_SEARCH, TRANSCRIPT

    chroma = legacy / "chroma"
    before = subprocess.run(
        [sys.executable, "-c", "import chromadb, sys; c = chromadb.PersistentClient(sys.argv[1]);"
         " print(c.get_collection('transcript').configuration['hnsw']['ef_search'])",
         str(chroma)], capture_output=True, text=True, check=True).stdout.split()[-1]
    assert int(before) < HNSW_EF_SEARCH
    Index(legacy).collection(TRANSCRIPT).count()
    hnsw = chromadb.PersistentClient(str(chroma)).get_collection(TRANSCRIPT).configuration["hnsw"]
    assert hnsw["ef_search"] == HNSW_EF_SEARCH and hnsw["space"] == "cosine"
