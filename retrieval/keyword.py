"""Keyword search (BM25) over transcript and slide text, with SQLite FTS5.

FTS5 lives in the catalog's database file (table `segment_text`, made and upgraded by
retrieval/migrations.py): it persists beside the Chroma index, updates
incrementally as recordings are written and deleted (no rebuild), and ranks with BM25. Rows
carry their generation, so the same visibility rule as the vector search applies: only the
generations the catalog points at are ever returned.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence

# The text format index_text writes (2: hyphenated words also joined). A new format comes with a
# migration that rewrites the stored rows (retrieval/migrations.py, as version 4 did for 2).
VERSION = 2

# Words that carry no topic; dropping them keeps OR-queries from matching every segment.
STOPWORDS = frozenset("""
a about above after again all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has
have having he her here hers him his how i if in into is it its itself just me more most my no
nor not now of off on once only or other our out over own same she should so some such than
that the their them then there these they this those through to too under until up very was
we were what when where which while who whom why will with would you your yours did said say
tell told does anyone someone something anything thing things please show find talk talked
""".split())

_TOKEN = re.compile(r"[\w][\w@.\-']*[\w]|\w", re.UNICODE)
_HYPHENATED = re.compile(r"\w+(?:-\w+)+", re.UNICODE)


def joined_forms(text: str) -> list[str]:
    """Hyphenated words written without their hyphens: "E-mail" -> "email", "sign-in" ->
    "signin". The tokenizer splits at hyphens, so without these "email" never finds "E-mail"."""
    forms: list[str] = []
    for word in _HYPHENATED.findall(text.lower()):
        joined = word.replace("-", "")
        if joined not in forms:
            forms.append(joined)
    return forms


def index_text(text: str) -> str:
    """What FTS5 indexes for a segment: its text plus the joined forms it lacks. Applying it
    twice changes nothing, so an index can be brought up to date row by row."""
    present = set(re.findall(r"\w+", text.lower()))
    extra = [f for f in joined_forms(text) if f not in present]
    return text + ("\n" + " ".join(extra) if extra else "")


def match_expression(query: str) -> str | None:
    """An FTS5 OR-query of the query's content words; None when nothing is left to match.

    Every term is a quoted string, so user text can never be read as FTS5 syntax. A term such
    as "security@northwind.example" or "B-214" becomes a phrase of its parts, matched in order.
    """
    terms: list[str] = []
    for token in _TOKEN.findall(query.lower()):
        token = token.strip(".'-")
        if not token or token in STOPWORDS:
            continue
        for term in [token, *(f for f in joined_forms(token) if f != token)]:
            quoted = '"' + term.replace('"', '""') + '"'
            if quoted not in terms:
                terms.append(quoted)
    return " OR ".join(terms) if terms else None


class KeywordIndex:
    def __init__(self, db: sqlite3.Connection) -> None:
        """`db`: the catalog's database, its tables made by retrieval.migrations (a change to
        what index_text writes is a migration that rewrites the stored rows)."""
        self._db = db

    def add(self, ids: Sequence[str], gens: Sequence[str], modality: str,
            texts: Sequence[str]) -> None:
        # One transaction: the connection autocommits, and a commit per row is 100x slower.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT INTO segment_text (text, seg_id, gen, modality) VALUES (?,?,?,?)",
                [(index_text(t), i, g, modality) for i, g, t in zip(ids, gens, texts)])
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def delete_generation(self, gen: str) -> None:
        self._db.execute("DELETE FROM segment_text WHERE gen = ?", (gen,))

    def count(self, gen: str | None = None) -> int:
        if gen is None:
            return self._db.execute("SELECT count(*) FROM segment_text").fetchone()[0]
        return self._db.execute("SELECT count(*) FROM segment_text WHERE gen = ?",
                                (gen,)).fetchone()[0]

    def search(self, query: str, modality: str, gens: Sequence[str],
               k: int) -> list[tuple[str, float]]:
        """(segment id, BM25 score; higher is better) of the best k matches."""
        return self.search_modalities(query, (modality,), gens, k).get(modality, [])

    def search_modalities(self, query: str, modalities: Sequence[str], gens: Sequence[str],
                          k: int, db: sqlite3.Connection | None = None
                          ) -> dict[str, list[tuple[str, float]]]:
        """The best k matches of each modality, from one MATCH over the whole table.

        BM25 scores every matching row (modality and gen are UNINDEXED, and BM25's statistics
        are table-wide), which is most of a keyword search's cost, so the modalities share one
        scan instead of paying for it once each. Rows come out best first (FTS5's `rank` is
        bm25()); a row's stored columns are read only until every modality has k, not for
        each match. Scores and order, ties included, are those of one filtered
        `ORDER BY bm25() LIMIT k` query per modality. `db`: another connection to the same
        file (a reader thread's own) instead of the catalog's.
        """
        out: dict[str, list[tuple[str, float]]] = {m: [] for m in modalities}
        expression = match_expression(query)
        if expression is None or not gens or k <= 0 or not modalities:
            return out
        allowed = set(gens)
        wanted = set(modalities)
        cursor = (db or self._db).execute(
            "SELECT seg_id, modality, gen, rank FROM segment_text WHERE segment_text MATCH ?"
            " ORDER BY rank", (expression,))
        try:
            for seg_id, modality, gen, rank in cursor:
                if modality in wanted and gen in allowed:
                    found = out[modality]
                    found.append((seg_id, -float(rank)))
                    if len(found) >= k:
                        wanted.discard(modality)
                        if not wanted:
                            break
        finally:
            cursor.close()  # an unfinished statement would hold its read snapshot open
        return out
