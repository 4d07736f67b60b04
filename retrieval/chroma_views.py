"""Embedded Chroma, kept current with other processes' writes: one *view* (a client of its
own) per index directory per process, replaced when the catalog shows a generation it does not
hold. Used by retrieval/index.py for indexes without a Chroma server.

Chroma's embedded client loads each collection's vector index (HNSW) into memory once per
client and never reads it from disk again (rust/segment/src/local_segment_manager.rs: the
index pool; rust/frontend/src/executor/local.rs: the log is replayed once per collection), so
vectors another process adds stay invisible to a running process (and a filtered query that
matches their ids fails with "Error finding id"). Each process therefore keeps one *view* per
index directory, a client of its own (not chromadb's shared one), and replaces it with a new
one when the catalog shows a generation the view does not hold.
"""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from clipcite.retrieval.schema import hnsw_configuration, widen_search

log = logging.getLogger("clipcite.index")

REFRESH_WAIT = 1.0  # s a search waits for a refresh it needs, then searches without it
# Background refreshes are spaced by this many times the last one's duration (a quarter of a
# core at most while another process commits recording after recording into a large index).
REFRESH_SPACING = 3.0
_WRITES = frozenset({"add", "upsert", "update", "delete", "modify"})


def _searchable_gens(db: sqlite3.Connection) -> frozenset[str]:
    """The generations the catalog makes visible (Catalog's searchable rows: gen not null)."""
    return frozenset(g for (g,) in db.execute(
        "SELECT gen FROM recordings WHERE gen IS NOT NULL"))


class CatalogGens:
    """The catalog's visible generations as one handle sees them, read again only after
    another connection (process) committed: PRAGMA data_version costs microseconds."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db, self._version, self._gens = db, -1, frozenset[str]()

    def __call__(self) -> frozenset[str]:
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version:
            self._gens, self._version = _searchable_gens(self._db), version
        return self._gens


def _vector_files(chroma_path: str) -> list[tuple[str, int, int]]:
    """(path, mtime, size) of the files of every saved vector index: what a writer rewrites
    when it saves one. An index never saved (its id map absent: fewer vectors than Chroma's
    sync threshold, all in the log) is skipped, as loading it rewrites its empty files."""
    found = []
    for id_map in Path(chroma_path).glob("*/index_metadata.pickle"):
        for path in id_map.parent.iterdir():
            try:
                st = path.stat()
            except OSError:
                continue
            found.append((str(path), st.st_mtime_ns, st.st_size))
    return sorted(found)


class _View:
    """One embedded Chroma client with its own copy of the vector indexes, and the generations
    it is known to hold (visible before it loaded, or written through it). Leased for each call;
    once retired (replaced) it is stopped, freeing its memory, when the last lease ends."""

    def __init__(self, chroma_path: str, known: frozenset[str]) -> None:
        from chromadb.api import ServerAPI
        from chromadb.config import Settings, System
        from chromadb.telemetry.product import ProductTelemetryClient

        # A System of its own: chromadb's shared one (one per path per process) cannot be
        # replaced without stopping it under the other clients of the process.
        self._system = System(Settings(anonymized_telemetry=False, allow_reset=False,
                                       is_persistent=True, persist_directory=chroma_path))
        self._system.instance(ProductTelemetryClient)
        self.api: Any = self._system.instance(ServerAPI)
        self._system.start()
        self.known = known  # replaced, never changed in place: readers compare without a lock
        self._collections: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._leases, self._retired, self._stopped = 0, False, False

    def collection(self, modality: str) -> Any:
        from chromadb.api.models.Collection import Collection as ChromaCollection

        with self._lock:
            if modality not in self._collections:
                model = self.api.get_or_create_collection(
                    modality, configuration=hnsw_configuration())
                collection = ChromaCollection(client=self.api, model=model,
                                              embedding_function=None)
                widen_search(collection)
                self._collections[modality] = collection
            return self._collections[modality]

    def opened(self) -> list[str]:
        with self._lock:
            return list(self._collections)

    def warm(self, modalities: Sequence[str]) -> None:
        """Load these collections' vector indexes now, not in the first search that uses the
        view: a first read loads one and replays the log. `get` lets other threads run while
        it loads (`count` holds the GIL throughout: 0.3 s at 30k segments)."""
        for modality in modalities:
            self.collection(modality).get(limit=1, include=[])

    def learn(self, gens: frozenset[str]) -> None:
        if not gens <= self.known:
            self.known = self.known | gens

    def acquire(self) -> bool:
        with self._lock:
            if self._stopped:
                return False
            self._leases += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._leases -= 1
        self._stop_when_done()

    def retire(self) -> None:
        with self._lock:
            self._retired = True
        self._stop_when_done()

    def _stop_when_done(self) -> None:
        with self._lock:
            stop = self._retired and self._leases == 0 and not self._stopped
            self._stopped = self._stopped or stop
        if stop:  # frees the vector indexes now (garbage collection would, much later)
            self._system.stop()


def _retire(slot: list[_View | None]) -> None:
    if slot[0] is not None:
        slot[0].retire()


class Views:
    """The current view of one index directory's vectors, shared by the process's handles.

    Reads lease the current view; a refresh builds the next one (in the background, or in the
    writer's thread before a write) and swaps it in, and the old one serves the reads already
    under way. Writes and swaps exclude each other (`writing`): a write made through the old
    view after the new one loaded would be missing from the new one, which would then save
    its vector index without it.
    """

    _open: ClassVar[weakref.WeakValueDictionary[str, Views]] = weakref.WeakValueDictionary()
    _open_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def of(cls, directory: Path, catalog_file: str) -> Views:
        path = directory.resolve()
        key = f"{os.getpid()}:{path}"  # a forked child's inherited client cannot run
        with cls._open_lock:
            views = cls._open.get(key)
            if views is None:
                views = cls._open[key] = cls(path, catalog_file)
            return views

    def __init__(self, directory: Path, catalog_file: str) -> None:
        self.chroma_path = str(directory / "chroma")
        self.catalog_path = directory / catalog_file
        self.writing = threading.RLock()
        self._lock = threading.Lock()
        self._slot: list[_View | None] = [None]  # the current view
        self._refreshed: threading.Event | None = None  # set when the pending refresh ends
        self._not_before = 0.0
        weakref.finalize(self, _retire, self._slot)  # the last handle is gone: free the view

    def current(self) -> _View:
        view = self._slot[0]
        if view is None:
            with self.writing:
                if self._slot[0] is None:
                    self._slot[0] = self._load(frozenset(), ())
                view = self._slot[0]
        return view

    @contextmanager
    def leased(self) -> Iterator[_View]:
        view = self.current()
        while not view.acquire():  # stopped between the two lines: its successor is current
            view = self.current()
        try:
            yield view
        finally:
            view.release()

    def known_of(self, gens: Collection[str]) -> Collection[str]:
        """The given generations that the current view holds (`gens` itself when it holds all:
        55 us for 5,000); when some are missing, a refresh is started and waited for up to
        REFRESH_WAIT (a large index takes longer to load)."""
        if self.current().known.issuperset(gens):
            return gens
        refreshed = self.refresh_later()
        if self._not_before <= time.monotonic():  # not while spaced out or backing off
            refreshed.wait(REFRESH_WAIT)
        known = self.current().known
        return [g for g in gens if g in known]

    def for_write(self, visible: frozenset[str]) -> _View:
        """The view to write through (hold `writing`): refreshed first if it misses a visible
        generation, so that it never saves a vector index without another process's vectors."""
        view = self.current()
        if not visible <= view.known:
            self._swap()
            view = self.current()
        return view

    def refresh_later(self) -> threading.Event:
        with self._lock:
            if self._refreshed is None:
                self._refreshed = threading.Event()
                threading.Thread(target=self._refresh, args=(self._refreshed,), daemon=True,
                                 name="chroma-refresh").start()
            return self._refreshed

    def _refresh(self, done: threading.Event) -> None:
        try:
            time.sleep(max(0.0, self._not_before - time.monotonic()))
            with self.writing:
                self._swap()
        except Exception:  # noqa: BLE001 - the old view goes on serving; the next need retries
            log.warning("refreshing the vector index of %s failed", self.chroma_path,
                        exc_info=True)
            self._not_before = time.monotonic() + 2.0
        finally:
            with self._lock:
                self._refreshed = None
            done.set()

    def _swap(self) -> None:
        """Load a new view and make it current (hold `writing`)."""
        started = time.monotonic()
        old = self.current()
        self._slot[0] = self._load(old.known, old.opened())
        old.retire()
        self._not_before = time.monotonic() + REFRESH_SPACING * (time.monotonic() - started)

    def _visible_now(self) -> frozenset[str]:
        """Read before the vectors load: the view holds at least these (each is committed
        only after its vectors were written)."""
        db = sqlite3.connect(str(self.catalog_path), timeout=30.0)  # this thread's own
        try:
            return _searchable_gens(db)
        finally:
            db.close()

    def _load(self, known: frozenset[str], warm: Sequence[str], tries: int = 3) -> _View:
        """A new view holding at least the generations visible now and `known`. Loaded again
        when a vector index file changed meanwhile (another process saving it: a torn read)."""
        for attempt in range(tries):
            before = _vector_files(self.chroma_path)
            view = _View(self.chroma_path, self._visible_now() | known)
            try:
                view.warm(warm)
            except BaseException:
                view.retire()
                raise
            if attempt == tries - 1 or _vector_files(self.chroma_path) == before:
                return view
            view.retire()
            time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")


class LiveCollection:
    """A collection of an embedded index, always used through the process's current view.
    Writes go through `Views.for_write`; the generations added are learnt by the view."""

    def __init__(self, views: Views, modality: str, visible: CatalogGens) -> None:
        self._views, self._modality, self._visible = views, modality, visible

    def __getattr__(self, name: str) -> Any:
        from chromadb.api.models.Collection import Collection as ChromaCollection

        if callable(getattr(ChromaCollection, name, None)):
            return functools.partial(self._write if name in _WRITES else self._read, name)
        with self._views.leased() as view:
            return getattr(view.collection(self._modality), name)

    def _read(self, name: str, *args: Any, **kwargs: Any) -> Any:
        with self._views.leased() as view:
            return getattr(view.collection(self._modality), name)(*args, **kwargs)

    def _write(self, name: str, *args: Any, **kwargs: Any) -> Any:
        with self._views.writing:
            view = self._views.for_write(self._visible())
            out = getattr(view.collection(self._modality), name)(*args, **kwargs)
            if name in ("add", "upsert"):
                view.learn(frozenset(m["gen"] for m in kwargs.get("metadatas") or ()
                                     if m and "gen" in m))
            return out


