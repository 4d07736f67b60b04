"""The keyword index as clipcite kept it before tantivy (SQLite FTS5 in the catalog file), for
the tests that compare rankings with it and upgrade such indexes."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from clipcite.retrieval.index import CATALOG_FILE, Index
from clipcite.retrieval.keyword import index_text, match_expression
from clipcite.retrieval.schema import TEXT_MODALITIES
from clipcite.retrieval.tantivy_keywords import KEYWORD_DIR

FTS5_TABLE = ("CREATE VIRTUAL TABLE segment_text USING fts5(text, seg_id UNINDEXED,"
              " gen UNINDEXED, modality UNINDEXED,"
              " tokenize = \"porter unicode61 remove_diacritics 2\")")

Row = tuple[str, str, str, str]  # seg_id, gen, modality, text as stored


def stored_rows(index: Index) -> list[Row]:
    """Every text segment of the searchable generations, from Chroma (what was indexed)."""
    gens = [r.gen for r in index.catalog.visible() if r.gen]
    return [(h.id, h.metadata["gen"], m, h.text) for m in sorted(TEXT_MODALITIES)
            for h in index.segments(m, gens)]


def fts5_reference(rows: list[Row]) -> sqlite3.Connection:
    """The keyword index as the code before tantivy kept it: FTS5 in SQLite."""
    db = sqlite3.connect(":memory:")
    db.execute(FTS5_TABLE)
    db.executemany("INSERT INTO segment_text (seg_id, gen, modality, text) VALUES (?,?,?,?)",
                   [(i, g, m, index_text(t)) for i, g, m, t in rows])
    return db


def fts5_top(db: sqlite3.Connection, query: str, modality: str, k: int) -> list[str]:
    expression = match_expression(query)
    if expression is None:
        return []
    return [r[0] for r in db.execute(
        "SELECT seg_id FROM segment_text WHERE segment_text MATCH ? AND modality = ?"
        " ORDER BY bm25(segment_text) LIMIT ?", (expression, modality, k))]


def as_fts5_index(index_dir: Path, rows: list[Row], schema_version: int = 5) -> None:
    """Turn an index into one the code before tantivy wrote: its keyword rows in FTS5 inside
    the catalog file, no keyword directory, the schema version before the move."""
    shutil.rmtree(index_dir / KEYWORD_DIR)
    db = sqlite3.connect(str(index_dir / CATALOG_FILE), isolation_level=None)
    db.execute(FTS5_TABLE)
    db.executemany("INSERT INTO segment_text (seg_id, gen, modality, text) VALUES (?,?,?,?)",
                   [(i, g, m, index_text(t)) for i, g, m, t in rows])
    db.execute(f"PRAGMA user_version = {schema_version}")
    db.close()
