"""Keyword search (BM25) over transcript and slide text: what is indexed, what a query
matches, and the index (tantivy, retrieval/tantivy_keywords.py, in `keywords/` beside the
catalog; an index of SQLite FTS5 rows from before it is moved there by retrieval/migrations.py).

The index persists beside the Chroma index, updates incrementally as recordings are written
and deleted (no rebuild), and ranks with BM25. Documents carry their generation, so the same
visibility rule as the vector search applies: only the generations the catalog points at are
ever returned.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path

from clipcite.retrieval.tantivy_keywords import TantivyKeywords

# The text format index_text writes (2: hyphenated words also joined). A new format comes with a
# migration that rewrites the index (retrieval/migrations.py, as version 4 did for 2).
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
    """What the keyword index holds for a segment: its text plus the joined forms it lacks. Applying it
    twice changes nothing, so an index can be brought up to date row by row."""
    present = set(re.findall(r"\w+", text.lower()))
    extra = [f for f in joined_forms(text) if f not in present]
    return text + ("\n" + " ".join(extra) if extra else "")


def query_terms(query: str) -> list[str]:
    """The query's content words, each also joined when hyphenated ("e-mail" -> "email"), in
    order, without repeats. A term such as "security@northwind.example" or "B-214" is matched
    as a phrase of its parts."""
    terms: list[str] = []
    for token in _TOKEN.findall(query.lower()):
        token = token.strip(".'-")
        if not token or token in STOPWORDS:
            continue
        for term in [token, *(f for f in joined_forms(token) if f != token)]:
            if term not in terms:
                terms.append(term)
    return terms


def match_expression(query: str) -> str | None:
    """The terms as an FTS5 OR-query (what the FTS5 index answered; kept to compare rankings
    with it); None when nothing is left to match. Every term is a quoted string, so user text
    can never be read as FTS5 syntax."""
    quoted = ['"' + term.replace('"', '""') + '"' for term in query_terms(query)]
    return " OR ".join(quoted) if quoted else None


class KeywordIndex:
    def __init__(self, directory: Path) -> None:
        """`directory`: the index's keyword directory (tantivy_keywords.keyword_directory of
        the catalog file; made, and filled from an older FTS5 index, by the migrations)."""
        self._engine = TantivyKeywords(directory)

    def add(self, ids: Sequence[str], gens: Sequence[str], modality: str,
            texts: Sequence[str]) -> None:
        """Committed when this returns (before the catalog makes the generation visible)."""
        self.add_rows([(i, g, modality, t) for i, g, t in zip(ids, gens, texts)])

    def add_rows(self, rows: Iterable[tuple[str, str, str, str]]) -> None:
        """(segment id, generation, modality, text) rows of any modalities, in one commit (a
        commit costs ~50 ms of fsyncs, whatever it holds)."""
        self._engine.add((i, g, m, index_text(t)) for i, g, m, t in rows)

    def add_missing(self, missing: Callable[[], Collection[str]],
                    rows: Callable[[Collection[str]], Iterable[tuple[str, str, str, str]]],
                    progress: Callable[[int], None] | None = None) -> int:
        """Add the (segment id, generation, modality, text) rows of the generations
        `missing()` names when asked under the writer lock, in one commit; returns how many
        (see TantivyKeywords.add_missing)."""
        return self._engine.add_missing(
            missing, lambda gens: ((i, g, m, index_text(t)) for i, g, m, t in rows(gens)),
            progress)

    def delete_generation(self, gen: str) -> None:
        self._engine.delete_generation(gen)

    def count(self, gen: str | None = None) -> int:
        return self._engine.count(gen)

    def search(self, query: str, modality: str, gens: Sequence[str],
               k: int, share: float = 1.0) -> list[tuple[str, float]]:
        """(segment id, BM25 score; higher is better) of the best k matches."""
        return self.search_modalities(query, (modality,), gens, k, share).get(modality, [])

    def search_modalities(self, query: str, modalities: Sequence[str], gens: Sequence[str],
                          k: int, share: float = 1.0) -> dict[str, list[tuple[str, float]]]:
        """The best k matches of each modality among `gens`, best first.

        BM25's statistics are index-wide (both modalities, every generation), as FTS5's
        were, so transcript and slide scores compare. `share`: the part of the searchable
        generations that `gens` is (see TantivyKeywords.top; 1.0 is always correct, a
        smaller value makes a small selection cheap).
        """
        out: dict[str, list[tuple[str, float]]] = {m: [] for m in modalities}
        if not gens or k <= 0 or not modalities:
            return out
        text = self._engine.text_query(query_terms(query))
        if text is None:
            return out
        for modality in modalities:
            out[modality] = self._engine.top(text, modality, gens, k, share)
        return out
