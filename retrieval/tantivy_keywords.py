"""The keyword index's engine: tantivy (BM25 with block-max pruning) in `keywords/` beside the
catalog file.

SQLite FTS5 scores every row that matches a query (no top-k pruning): 0.4-1.4 s per scan at 1M
segments, depending on the machine's load; tantivy answers the same OR-query's top k in 13 ms
there (eval/bench_search.py --bm25-only).

Consistency comes from the catalog, as before: every document carries its generation, and a
search returns only the generations its caller passes (the visible ones). A writer adds a
generation's documents and commits them before the catalog points at it, and deletes an old
generation after the catalog moved on; a crash between the steps leaves documents of a
generation nobody sees, which garbage collection deletes. A commit replaces meta.json
atomically, so a reader sees all of a commit or none of it.

Processes: one writer at a time (an flock of our own, waited for, around tantivy's writer, which
is dropped after each commit so the next process can take it; the OS releases both locks of a
killed process). Readers in other processes see a commit at their next search: meta.json's
stat is compared before each search and the reader reloaded when it changed.

Damage: a directory tantivy cannot open is renamed aside (`keywords.damaged-<time>-<pid>`, kept
for inspection) and started empty; the generations it lacks are put back from Chroma by
retrieval/index.py (add_missing).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import tantivy

KEYWORD_DIR = "keywords"  # beside the catalog file
ANALYZER = "clipcite_en"
WRITER_HEAP = 48_000_000  # bytes; tantivy flushes a segment when it is full
_WRITE_LOCK = "clipcite-write.lock"
_META = "meta.json"
_REPAIR_LOCK = ".repair.lock"  # suffix of a file beside the directory (one inside moves with it)
log = logging.getLogger("clipcite.index")

# Fields: the text (what keyword.index_text makes of a segment), and the segment id, generation
# and modality, stored and indexed whole (raw) so that deletes and filters match them exactly.
_RAW_FIELDS = ("seg_id", "gen", "modality")

Row = tuple[str, str, str, str]  # (seg_id, gen, modality, indexed text)


def keyword_directory(catalog_file: Path) -> Path:
    return Path(catalog_file).parent / KEYWORD_DIR


def analyzer() -> Any:
    """As close to FTS5's `porter unicode61 remove_diacritics 2` as tantivy offers: split at
    anything not a letter or digit, lower-case, fold diacritics, English (Snowball) stems."""
    return (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
            .filter(tantivy.Filter.lowercase())
            .filter(tantivy.Filter.ascii_fold())
            .filter(tantivy.Filter.stemmer("english"))
            .build())


def _schema() -> Any:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("text", tokenizer_name=ANALYZER, index_option="position")
    for name in _RAW_FIELDS:
        builder.add_text_field(name, stored=True, tokenizer_name="raw")
    return builder.build()


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes, released on exit or by the OS on a kill."""
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class TantivyKeywords:
    """One keyword index directory, opened (created when missing) for this process."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._analyzer = analyzer()
        self._thread_lock = threading.Lock()
        try:
            self._index = self._open()
        except ValueError:  # tantivy's error for a meta.json or segment it cannot read
            self._index = self._open_after_setting_aside()
        self._index.register_tokenizer(ANALYZER, self._analyzer)
        self._index.config_reader("Manual", 0)  # reloaded by _searcher, not a watcher thread
        self.schema = self._index.schema
        self._reader_lock = threading.Lock()
        self._seen = _stamp(self.directory / _META)

    # -- opening -------------------------------------------------------------------------
    def _open(self) -> Any:
        """The index in the directory, created (with the directory) when it has none."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if (self.directory / _META).is_file():
            return tantivy.Index.open(str(self.directory))
        with self._write_lock():  # two processes creating it at once would race
            return tantivy.Index(_schema(), path=str(self.directory), reuse=True)

    def _open_after_setting_aside(self) -> Any:
        """Rename the damaged directory aside (nothing deleted) and start an empty one. Under
        a lock beside it: a process that found it damaged too then opens the new directory
        instead of setting that aside."""
        lock = self.directory.with_name(self.directory.name + _REPAIR_LOCK)
        with _flock(lock):
            try:
                return self._open()
            except ValueError as damage:
                aside = self.directory.with_name(
                    f"{self.directory.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}"
                    f"-{os.getpid()}")
                log.warning("the keyword index %s cannot be opened (%s): moved to %s, "
                            "starting a new one", self.directory, damage, aside.name)
                self.directory.rename(aside)
                return self._open()

    # -- writing -------------------------------------------------------------------------
    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        """This process's threads, then other processes: one tantivy writer at a time."""
        with self._thread_lock:
            with _flock(self.directory / _WRITE_LOCK):
                yield

    @contextmanager
    def _writer(self) -> Iterator[Any]:
        """A committing tantivy writer under the write lock (see _locked_writer)."""
        with self._write_lock():
            with self._locked_writer() as writer:
                yield writer

    @contextmanager
    def _locked_writer(self) -> Iterator[Any]:
        """A tantivy writer (hold _write_lock), committed on success and dropped (its lock
        freed) either way."""
        writer = self._index.writer(heap_size=WRITER_HEAP, num_threads=1)
        # A process killed inside a commit leaves that commit's files (a segment's
        # "<id>.<opstamp>.del"), unreferenced by meta.json; the next commit reuses the opstamp
        # and failed on "FileAlreadyExists" until they are gone (tests/test_crash.py).
        writer.garbage_collect_files()
        try:
            yield writer
            writer.commit()
        except BaseException:
            writer.rollback()
            raise
        finally:
            writer.wait_merging_threads()

    def _document(self, row: Row) -> Any:
        seg_id, gen, modality, text = row
        doc = tantivy.Document()
        doc.add_text("text", text)
        doc.add_text("seg_id", seg_id)
        doc.add_text("gen", gen)
        doc.add_text("modality", modality)
        return doc

    def add(self, rows: Iterable[Row]) -> None:
        """Add and commit: visible to searches of these generations once this returns."""
        with self._writer() as writer:
            for row in rows:
                writer.add_document(self._document(row))

    def replace_all(self, rows: Iterable[Row],
                    progress: Callable[[int], None] | None = None) -> int:
        """Make the index hold exactly `rows` (one commit: all or, after a crash, none of
        it, so a step that failed half-way can run again). Returns how many."""
        with self._writer() as writer:
            writer.delete_all_documents()
            return self._add_counted(writer, rows, progress)

    def add_missing(self, missing: Callable[[], Collection[str]],
                    rows: Callable[[Collection[str]], Iterable[Row]],
                    progress: Callable[[int], None] | None = None) -> int:
        """Add rows(gens) for the generations `missing()` names, in one commit. `missing` is
        asked while this process holds the writer lock, so after the commit of another
        process that did the same meanwhile (it then names none). Returns how many."""
        with self._write_lock():
            gens = missing()
            if not gens:
                return 0
            with self._locked_writer() as writer:
                return self._add_counted(writer, rows(gens), progress)

    def _add_counted(self, writer: Any, rows: Iterable[Row],
                     progress: Callable[[int], None] | None) -> int:
        added = 0
        for row in rows:
            writer.add_document(self._document(row))
            added += 1
            if progress is not None and added % 50_000 == 0:
                progress(added)
        return added

    def delete_generation(self, gen: str) -> None:
        with self._writer() as writer:
            writer.delete_documents_by_term("gen", gen)

    # -- reading -------------------------------------------------------------------------
    def _searcher(self) -> Any:
        """A searcher over the last commit of any process (reloaded when meta.json moved)."""
        stamp = _stamp(self.directory / _META)
        if stamp != self._seen:
            with self._reader_lock:
                if stamp != self._seen:
                    self._index.reload()
                    self._seen = stamp
        return self._index.searcher()

    def count(self, gen: str | None = None) -> int:
        searcher = self._searcher()
        if gen is None:
            return int(searcher.num_docs)
        query = tantivy.Query.term_query(self.schema, "gen", gen)
        return int(searcher.search(query, limit=1, count=True).count)

    def text_query(self, terms: Sequence[str]) -> Any | None:
        """An OR of the terms (a term of several words, "security@northwind.example", is a
        phrase of them); None when no term has a word left."""
        clauses, seen = [], set()
        for term in terms:
            words = tuple(self._analyzer.analyze(term))
            if not words or words in seen:
                continue
            seen.add(words)
            query = (tantivy.Query.term_query(self.schema, "text", words[0]) if len(words) == 1
                     else tantivy.Query.phrase_query(self.schema, "text", list(words)))
            clauses.append((tantivy.Occur.Should, query))
        return tantivy.Query.boolean_query(clauses) if clauses else None

    def top(self, text: Any, modality: str, gens: Collection[str], k: int,
            share: float) -> list[tuple[str, float]]:
        """(segment id, BM25 score) of the best k matches of `modality` among `gens`.

        `share`: the part of the searchable generations that `gens` is. When it is most of
        them, the query runs without a generation filter, with head-room, and the others are
        dropped here (the few documents of generations not yet or no longer visible cost
        little); when that leaves fewer than k of more, and for small selections, the
        generations are a filter of the query itself (cost in proportion to their segments).
        """
        allowed = set(gens)
        if not allowed or k <= 0:
            return []
        searcher = self._searcher()
        of_modality = self._filter(tantivy.Query.term_query(self.schema, "modality", modality))
        if share >= 0.5:
            fetch = min(int(k / max(share, 1e-9)) + 2 * k + 10, 10_000)
            found = self._run(searcher, [text, of_modality], fetch)
            kept = [(s, score) for s, g, score in found if g in allowed]
            if len(kept) >= k or len(found) < fetch:
                return kept[:k]
        of_gens = self._filter(tantivy.Query.term_set_query(self.schema, "gen", sorted(allowed)))
        found = self._run(searcher, [text, of_modality, of_gens], k)
        return [(s, score) for s, g, score in found if g in allowed][:k]

    @staticmethod
    def _filter(query: Any) -> Any:
        return tantivy.Query.const_score_query(query, 0.0)  # selects, adds nothing to BM25

    @staticmethod
    def _run(searcher: Any, musts: Sequence[Any], limit: int) -> list[tuple[str, str, float]]:
        query = tantivy.Query.boolean_query([(tantivy.Occur.Must, q) for q in musts])
        # count=False: counting every match would turn the top-k pruning off.
        hits = searcher.search(query, limit=limit, count=False).hits
        out = []
        for score, address in hits:
            doc = searcher.doc(address)
            out.append((doc.get_first("seg_id"), doc.get_first("gen"), float(score)))
        return out


def database_file(db: Any) -> Path | None:
    """The file of a SQLite connection's main database (None in memory)."""
    for _, name, file in db.execute("PRAGMA database_list"):
        if name == "main":
            return Path(file) if file else None
    return None

