"""Every table of an index's SQLite database (catalog.sqlite3), created and upgraded in one place.

The database holds the catalog (recordings, garbage) and the speaker store; the keyword index,
in FTS5 here until version 6, is a tantivy index beside it since (the one step that writes
outside this file). MIGRATIONS[i] takes a database from `PRAGMA user_version` i to i + 1; `migrate` runs the
missing ones in order, in one transaction, when the catalog is opened (retrieval.catalog.Catalog,
which retrieval.index.Index opens first). The stores on the same connection create nothing.

Add new steps at the end and never change a released one: a step is a snapshot of its version,
so it names its tables and values itself instead of importing them from modules that move on.
Steps 3-5 adopt tables that code before them created ad hoc (CREATE IF NOT EXISTS), so every
step tolerates finding its tables already there.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from clipcite.retrieval.voice_models import print_model
from clipcite.retrieval.keyword import index_text
from clipcite.retrieval.tantivy_keywords import TantivyKeywords, database_file, keyword_directory

Migration = Callable[[sqlite3.Connection], None]
log = logging.getLogger("clipcite.index")


def _catalog_tables(db: sqlite3.Connection) -> None:
    """Version 1: the catalog's tables (catalogs written before versions existed have them)."""
    db.execute("""CREATE TABLE IF NOT EXISTS recordings (
    media_id     TEXT PRIMARY KEY,
    path         TEXT NOT NULL UNIQUE,
    title        TEXT NOT NULL,
    size         INTEGER,
    mtime        REAL,
    content_hash TEXT,
    duration     REAL,
    recorded_at  REAL,
    tags         TEXT NOT NULL DEFAULT '[]',
    groups_      TEXT NOT NULL DEFAULT '[]',
    status       TEXT NOT NULL,
    error        TEXT,
    gen          TEXT,
    models       TEXT NOT NULL DEFAULT '{}',
    counts       TEXT NOT NULL DEFAULT '{}',
    ingested_at  REAL
)""")
    db.execute("""CREATE TABLE IF NOT EXISTS garbage (
    gen        TEXT PRIMARY KEY,
    pid        INTEGER NOT NULL,
    retired    INTEGER NOT NULL,  -- 1: replaced or removed; 0: being written by pid
    created_at REAL NOT NULL
)""")


def _failed_rows_admins_only(db: sqlite3.Connection) -> None:
    """Version 2: before it, a failed ingest wrote its row without the batch's groups, so a
    restricted recording that failed counted as visible to everyone (and its file was served to
    anyone). Which groups were meant is unknown, so such rows (failed, never indexed, no
    groups) become visible to administrators only (catalog.ADMINS_ONLY): fail closed."""
    db.execute("UPDATE recordings SET groups_=? WHERE status='failed' AND gen IS NULL"
               " AND groups_='[]'", (json.dumps(["(admins only)"]),))


def _keyword_table(db: sqlite3.Connection) -> None:
    """Version 3: the keyword index (FTS5, BM25) of transcript and slide text."""
    db.execute("""CREATE VIRTUAL TABLE IF NOT EXISTS segment_text USING fts5(
    text, seg_id UNINDEXED, gen UNINDEXED, modality UNINDEXED,
    tokenize = "porter unicode61 remove_diacritics 2"
)""")


def _keyword_joined_hyphenated_words(db: sqlite3.Connection) -> None:
    """Version 4: hyphenated words are also indexed joined ("e-mail" -> "email"; see
    keyword.index_text). Indexes written before it kept their own version in a table
    `keyword_version`: rows it does not vouch for (version < 2) are rewritten in place (the
    stored text is only for matching; shown text is Chroma's), and the table goes."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    version = 0
    if "keyword_version" in tables:
        version = db.execute("SELECT max(version) FROM keyword_version").fetchone()[0] or 0
    if version < 2:
        rows = db.execute("SELECT rowid, text FROM segment_text").fetchall()
        db.executemany("UPDATE segment_text SET text = ? WHERE rowid = ?",
                       [(index_text(t), r) for r, t in rows if index_text(t) != t])
    db.execute("DROP TABLE IF EXISTS keyword_version")


def _speaker_tables(db: sqlite3.Connection) -> None:
    """Version 5: speaker turns and speakers (names, voice prints) per generation, each print
    with its speaker model so prints of two models are never compared. Rows written before the
    model column existed get theirs from the print's length."""
    db.execute("""CREATE TABLE IF NOT EXISTS speaker_turns (
    gen     TEXT NOT NULL,
    start   REAL NOT NULL,
    end_    REAL NOT NULL,
    label   TEXT NOT NULL
)""")
    db.execute("CREATE INDEX IF NOT EXISTS speaker_turns_gen ON speaker_turns (gen, start)")
    db.execute("""CREATE TABLE IF NOT EXISTS speakers (
    gen      TEXT NOT NULL,
    label    TEXT NOT NULL,  -- "Speaker 2": the cluster, stable for this generation
    name     TEXT,           -- shown instead of the label when set
    status   TEXT,           -- confirmed | suggested | NULL
    score    REAL,           -- voice match score of a suggestion
    seconds  REAL NOT NULL,  -- how long this speaker talks (weights the voice print)
    print    BLOB,           -- float32 mean embedding of the speaker's turns
    model    TEXT,           -- the speaker model that made the print
    PRIMARY KEY (gen, label)
)""")
    if "model" in {r[1] for r in db.execute("PRAGMA table_info(speakers)")}:
        return
    db.execute("ALTER TABLE speakers ADD COLUMN model TEXT")
    rows = db.execute("SELECT gen, label, print FROM speakers WHERE print IS NOT NULL")
    db.executemany("UPDATE speakers SET model=? WHERE gen=? AND label=?",
                   [(print_model(np.frombuffer(blob, dtype=np.float32)), gen, label)
                    for gen, label, blob in rows.fetchall()])


def _keyword_index_to_tantivy(db: sqlite3.Connection) -> None:
    """Version 6: keyword search moves from FTS5, which scores every match (1.4 s a scan at 1M
    segments), to tantivy (top-k pruning) in the directory `keywords/` beside this file. The
    rows of `segment_text` are copied there in one tantivy commit that replaces whatever the
    directory held, so a step that failed half-way (its SQLite transaction rolled back) runs
    again from the start; then the table goes. Progress is logged (18 s for a million
    segments on two cores). Other openers wait on this transaction meanwhile."""
    file = database_file(db)
    if file is None:
        raise ValueError("the keyword index needs the catalog in a file, not in memory")
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    total = (db.execute("SELECT count(*) FROM segment_text").fetchone()[0]
             if "segment_text" in tables else 0)

    def rows() -> Iterator[tuple[str, str, str, str]]:
        if total:
            yield from db.execute("SELECT seg_id, gen, modality, text FROM segment_text")

    def progress(done: int) -> None:
        log.warning("moving the keyword index to tantivy: %s of %s segments", f"{done:,}",
                    f"{total:,}")

    if total:
        log.warning("moving the keyword index of %s from FTS5 to tantivy (%s segments)",
                    file.parent, f"{total:,}")
    TantivyKeywords(keyword_directory(file)).replace_all(rows(), progress)
    db.execute("DROP TABLE IF EXISTS segment_text")
    if total:
        log.warning("keyword index moved: %s segments", f"{total:,}")


def _speaker_segments_table(db: sqlite3.Connection) -> None:
    """Version 7: which transcript segments each shown speaker said, per generation (int32
    segment indices), so a search for one speaker's words scores those segments instead of
    filtering the whole collection by metadata. Generations written before have no rows until
    the index is opened by code that fills them in (Index._map_speakers)."""
    db.execute("""CREATE TABLE IF NOT EXISTS speaker_segments (
    gen      TEXT NOT NULL,
    speaker  TEXT NOT NULL,  -- the shown name ("" for lines nobody was assigned)
    segments BLOB NOT NULL,  -- int32 indices into the generation's transcript segments
    PRIMARY KEY (gen, speaker)
) WITHOUT ROWID""")


MIGRATIONS: tuple[Migration, ...] = (
    _catalog_tables,
    _failed_rows_admins_only,
    _keyword_table,
    _keyword_joined_hyphenated_words,
    _speaker_tables,
    _keyword_index_to_tantivy,
    _speaker_segments_table,
)
SCHEMA_VERSION = len(MIGRATIONS)


def version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, steps: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database to len(steps) in one transaction; returns the version it was at.

    The version is read again inside the transaction (BEGIN IMMEDIATE), so two processes
    opening an old index at once apply each step once. A database from a newer clipcite is
    left as it is. `db` must be in autocommit mode (isolation_level=None), as the catalog's is.
    """
    before = version(db)
    if before >= len(steps):
        return before
    db.execute("BEGIN IMMEDIATE")
    try:
        before = version(db)
        for step in steps[before:]:
            step(db)
        db.execute(f"PRAGMA user_version = {max(before, len(steps))}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return before
