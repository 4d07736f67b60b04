"""The on-disk index: Chroma collections (one per modality) plus the recordings catalog.

Layout of an index directory:
    chroma/            Chroma PersistentClient data (collections transcript, slides, frames)
    catalog.sqlite3    recordings, their visible generation, garbage to collect, speakers
    keywords/          the keyword (BM25, tantivy) index of transcript and slide text; rebuilt
                       from Chroma's documents on open when it lacks searchable recordings
    keywords.damaged-* a keywords/ tantivy could not open, kept aside (keywords.repair.lock
                       lets one process at a time move it)
    index.json         which encoders built the collections (searching with others is refused)

With a Chroma server (`chroma_url`), the collections live on the server and `chroma/` is not
used; the catalog, keyword index and manifest stay in the directory (see README "Scale-out").
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np

from clipcite.retrieval.catalog import Catalog, Recording
from clipcite.retrieval.chroma_views import CatalogGens, LiveCollection, Views
from clipcite.retrieval.keyword import KeywordIndex
from clipcite.retrieval.tantivy_keywords import keyword_directory
from clipcite.retrieval.schema import (MODALITIES, TEXT_MODALITIES, TRANSCRIPT,
                                       hnsw_configuration, recording_metadata, segment_id,
                                       split_segment_id, widen_search)
from clipcite.retrieval.speakers import SpeakerStore

CATALOG_FILE = "catalog.sqlite3"
MANIFEST_FILE = "index.json"
# Waits between attempts when the Chroma server cannot be reached: ~15 s in all, several times
# what a `chroma run` restart takes (~3 s), short enough that a server that is down fails fast.
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
# Dense search over a selection of generations (Index._nearest): at most this many segments
# are scored here from their vectors (~0.1 ms each); larger ones by an unfiltered query of
# OVERFETCH x k / share results (at most MAX_FETCH), the rest dropped by generation.
EXACT_SEGMENTS = 2_000
OVERFETCH = 1.5
MAX_FETCH = 10_000

T = TypeVar("T")
log = logging.getLogger("clipcite.index")


class IndexMismatchError(Exception):
    """A problem with the index itself (wrong encoder, unreadable directory)."""


@dataclass
class Hit:
    """One segment returned by a collection query, before fusion."""

    id: str
    modality: str
    text: str
    metadata: dict[str, Any]  # empty until loaded (see Index.hydrate)
    distance: float

    @property
    def loaded(self) -> bool:
        return bool(self.metadata)


def segment_gen(seg_id: str) -> str | None:
    """The generation inside an id made by schema.segment_id (media:gen:modality:index)."""
    parts = split_segment_id(seg_id)
    return parts[1] if parts else None


class ChromaUnavailableError(Exception):
    """The Chroma server did not answer, even after retrying with backoff."""


def _unreachable(exc: BaseException | None) -> bool:
    """True when a Chroma client error means the server could not be reached or cut the
    request off (down, restarting): worth retrying. Errors the server answered are not."""
    import httpx

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, httpx.TransportError):
            return True
        # chromadb turns a refused connection while opening the client into this ValueError.
        if isinstance(exc, ValueError) and "could not connect to a chroma" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def parse_chroma_url(url: str) -> tuple[str, int, bool]:
    """`http://host:port` or `https://host[:port]` -> (host, port, ssl)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"a Chroma server URL looks like http://HOST:PORT, not {url!r}")
    ssl = parts.scheme == "https"
    return parts.hostname, parts.port or (443 if ssl else 8000), ssl


def _simple(where: dict[str, Any] | None) -> bool:
    """True for no condition or plain field equalities ({"speaker": "Ann"}), which
    Index._exact checks itself; operators are left to Chroma."""
    return not where or all(not key.startswith("$") and isinstance(value, (str, int, float))
                            for key, value in where.items())


class _RetryingCollection:
    """A server collection whose calls are retried while the server is unreachable."""

    def __init__(self, collection: Any, retry: Callable[..., Any]) -> None:
        self._collection, self._retry = collection, retry

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._collection, name)
        return functools.partial(self._retry, attr) if callable(attr) else attr


class Index:
    def __init__(self, directory: Path, chroma_url: str | None = None,
                 retry_delays: Sequence[float] = RETRY_DELAYS) -> None:
        """Open (or create) the index in `directory`; with `chroma_url` the vectors live on that
        Chroma server (HttpClient) and only the SQLite catalog and manifest are local."""
        import chromadb
        from chromadb.config import Settings

        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.chroma_url = chroma_url
        self._retry_delays = tuple(retry_delays)
        self.catalog = Catalog(self.directory / CATALOG_FILE)
        self.keywords = KeywordIndex(keyword_directory(self.catalog.path))
        # Keyword rows of generations being written, committed in one go just before the
        # catalog makes their generation visible (one ~50 ms commit per recording, not per
        # modality); rows of a writer that dies are never written.
        self._pending_keywords: dict[str, list[tuple[str, str, str, str]]] = {}
        self._pending_lock = threading.Lock()
        self.catalog.before_commit(self._commit_keywords)
        self.speakers = SpeakerStore(self.catalog.connection)  # tables made once, not per call
        self._client: Any = None  # a server's client; embedded indexes use _views
        self._views: Views | None = None
        if chroma_url:
            host, port, ssl = parse_chroma_url(chroma_url)
            self._client = self._call(chromadb.HttpClient, host=host, port=port, ssl=ssl,
                                      settings=Settings(anonymized_telemetry=False))
        else:
            self._views = Views.of(self.directory, CATALOG_FILE)
            self._views.current()  # opened now, as before: a broken index fails here
        self._visible = CatalogGens(self.catalog.connection)
        self._collections: dict[str, Any] = {}
        self._reader: ThreadPoolExecutor | None = None
        self._restore_keywords()
        self._map_speakers()

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn(*args, **kwargs), retried with backoff while the Chroma server is unreachable
        (a restart mid-ingest costs a pause, not a failed file). Embedded mode: one attempt.

        A retried write is safe: segment ids are fixed per generation, so an `add` that did
        reach the server before the connection broke is not stored twice.
        """
        delays = self._retry_delays if self.chroma_url else ()
        for delay in delays:
            try:
                return fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - only connection failures are retried
                if not _unreachable(e):
                    raise
            time.sleep(delay)
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            if self.chroma_url and _unreachable(e):
                raise ChromaUnavailableError(
                    f"cannot reach the Chroma server at {self.chroma_url} (tried "
                    f"{len(delays) + 1} times over {sum(delays):g} s): is `chroma run` "
                    "up there?") from e
            raise

    # -- encoders recorded with the index ------------------------------------------------
    def manifest(self) -> dict[str, str]:
        path = self.directory / MANIFEST_FILE
        return json.loads(path.read_text()) if path.is_file() else {}

    def check_encoder(self, modality_key: str, name: str) -> None:
        """Record the encoder on first use; refuse a different one later."""
        manifest = self.manifest()
        known = manifest.get(modality_key)
        if known is None:
            manifest[modality_key] = name
            tmp = self.directory / (MANIFEST_FILE + ".tmp")
            tmp.write_text(json.dumps(manifest, indent=2))
            tmp.replace(self.directory / MANIFEST_FILE)
        elif known != name:
            raise IndexMismatchError(
                f"the {modality_key} vectors in {self.directory} were made by {known}, not "
                f"{name}; use the same model or a new --index directory")

    # -- collections ---------------------------------------------------------------------
    def collection(self, modality: str) -> Any:
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}")
        if modality not in self._collections:
            if self._views is not None:
                self._collections[modality] = LiveCollection(self._views, modality,
                                                              self._visible)
            else:
                col = self._call(self._client.get_or_create_collection, modality,
                                 embedding_function=None, configuration=hnsw_configuration())
                self._call(widen_search, col)
                self._collections[modality] = _RetryingCollection(col, self._call)
        return self._collections[modality]

    def _max_batch_size(self) -> int:
        if self._views is not None:
            with self._views.leased() as view:
                return int(view.api.get_max_batch_size())
        return int(self._call(self._client.get_max_batch_size))

    def _held(self, gens: Collection[str]) -> Collection[str]:
        """The generations whose vectors this process can read now: on a server all; embedded,
        those the current view holds (it is refreshed when one is missing, see Views)."""
        return gens if self._views is None else self._views.known_of(gens)

    def add(self, modality: str, ids: Sequence[str], embeddings: np.ndarray,
            documents: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        if not ids:
            return
        col = self.collection(modality)
        step = max(1, min(1000, self._max_batch_size()))
        for i in range(0, len(ids), step):
            col.add(ids=list(ids[i:i + step]), embeddings=np.asarray(embeddings[i:i + step]),
                    documents=list(documents[i:i + step]),
                    metadatas=list(metadatas[i:i + step]))
        if modality in TEXT_MODALITIES:
            with self._pending_lock:
                for seg_id, meta, text in zip(ids, metadatas, documents):
                    self._pending_keywords.setdefault(meta["gen"], []).append(
                        (seg_id, meta["gen"], modality, text))

    def _commit_keywords(self, gen: str) -> None:
        with self._pending_lock:
            rows = self._pending_keywords.pop(gen, [])
        if rows:
            self.keywords.add_rows(rows)

    # -- keyword index repair ------------------------------------------------------------
    def _restore_keywords(self) -> None:
        """Put back the keyword documents of searchable generations the keyword index lacks
        (its directory deleted, emptied, or set aside as damaged), from the texts Chroma
        holds, in one commit. Of processes opening at once, one restores: the others find
        nothing missing once they hold the writer lock."""
        if not self._keywordless_gens():  # the usual case: no lock, one count per generation
            return
        log.warning("the keyword index of %s lacks searchable recordings: restoring them "
                    "from the vector index", self.directory)
        restored = self.keywords.add_missing(self._keywordless_gens, self._stored_texts,
                                             self._restore_progress)
        if restored:
            log.warning("keyword index restored: %s segments", f"{restored:,}")
        else:
            log.warning("keyword index restored by another process meanwhile")

    def _keywordless_gens(self) -> list[str]:
        """Searchable generations with text segments (by the catalog's counts) of which the
        keyword index holds none. A generation's rows are committed together, so one present
        means all are. Recordings without counts (none written since counts were kept) are
        not checked."""
        return [rec.gen for rec in self.catalog.visible()
                if rec.gen and any(rec.counts.get(m, 0) for m in TEXT_MODALITIES)
                and self.keywords.count(rec.gen) == 0]

    def _stored_texts(self, gens: Collection[str]) -> Iterator[tuple[str, str, str, str]]:
        """(segment id, generation, modality, text) of these generations' text segments, read
        from Chroma by the ids the catalog's counts give, in batches."""
        step = max(1, min(1000, self._max_batch_size()))
        for modality in TEXT_MODALITIES:
            ids = self.catalog.segment_ids(modality, gens) or []
            for i in range(0, len(ids), step):
                res = self.collection(modality).get(ids=ids[i:i + step], include=["documents"])
                for seg_id, text in zip(res["ids"], res["documents"]):
                    yield seg_id, segment_gen(seg_id) or "", modality, text or ""

    @staticmethod
    def _restore_progress(done: int) -> None:
        log.warning("restoring the keyword index: %s segments", f"{done:,}")

    def delete_generation(self, gen: str) -> None:
        with self._pending_lock:
            self._pending_keywords.pop(gen, None)
        for modality in MODALITIES:
            self.collection(modality).delete(where={"gen": gen})
        self.keywords.delete_generation(gen)

    def remove_recording(self, media_id: str) -> bool:
        """Forget a recording and delete its segments; False if it was not in the catalog."""
        if self.catalog.get(media_id) is None:
            return False
        gen = self.catalog.remove(media_id)
        if gen:
            self.delete_generation(gen)
            self.catalog.forget_garbage(gen)
        return True

    def collect_garbage(self) -> int:
        """Delete segments of crashed writers and replaced recordings; returns how many gens."""
        gens = self.catalog.collectable_garbage()
        for gen in gens:
            self.delete_generation(gen)
            self.catalog.forget_garbage(gen)
        return len(gens)

    def count(self, modality: str, gens: Sequence[str] | None = None) -> int:
        """Segments stored in the collection (Chroma's own count), or those of the given
        visible generations as the catalog counted them at commit: no segment is read."""
        if gens is None:
            return self.collection(modality).count()
        return self.catalog.segment_count(modality, gens)

    # -- reading -------------------------------------------------------------------------
    def query(self, modality: str, embedding: np.ndarray, k: int,
              gens: Sequence[str], where: dict[str, Any] | None = None,
              hydrate: bool = True) -> list[Hit]:
        """Nearest segments among the given generations (the caller's visible ones).

        The query returns ids only (reading each result's metadata was 80% of its cost): the
        generation is read from the id, and with `hydrate` only the k kept hits are loaded,
        their stored generation checked again. Without `hydrate` the hits are not loaded: the
        caller must pass the ones it uses through `hydrate()`. How the generations are
        applied depends on what they select (see _nearest): the rule is the same on every path.
        """
        gens = self._held(gens)  # a vector index lacking one would fail the filter
        if not gens:
            return []
        allowed = set(gens)
        hits = self._nearest(modality, embedding, k, allowed, where)
        return self.hydrate(hits, allowed) if hydrate else hits

    def _nearest(self, modality: str, embedding: np.ndarray, k: int, allowed: set[str],
                 where: dict[str, Any] | None) -> list[Hit]:
        """The k nearest hits of `allowed` generations (and `where`), without paying for the
        whole collection when they are a small part of it.

        Chroma's `gen $in [...]` pre-filter costs in proportion to the collection (708 vs 29 ms
        unfiltered at 100k segments, eval/bench_search.py). So: a selection of at most
        EXACT_SEGMENTS segments (one recording, a few) is scored exactly from its vectors,
        read by the ids the catalog knows from its counts; a larger one by an unfiltered query
        (`where` alone) with head-room for the share it is, the other generations dropped here
        by the id; the pre-filter only when that leaves fewer than k of more.
        """
        speaker = where.get("speaker") if where and len(where) == 1 else None
        if isinstance(speaker, str):
            if modality != TRANSCRIPT:
                return []  # only transcript segments carry a speaker
            said = self._said(speaker, allowed)
            if said is not None:
                found = self._among(modality, embedding, k, said)
                if found is not None:
                    return found
        share = self.generation_share(allowed)
        if share < 0.5 and _simple(where):
            ids = self.catalog.segment_ids(modality, allowed)
            if ids is not None and len(ids) <= EXACT_SEGMENTS:
                return self._exact(modality, embedding, k, ids, where)
        fetch = min(int(OVERFETCH * k / max(share, 1e-9)) + 2 * k + 10, MAX_FETCH)
        if fetch < MAX_FETCH or share >= 0.5:
            found = self._query(modality, embedding, fetch, where)
            kept = [h for h in found if segment_gen(h.id) in allowed]
            if len(kept) >= k or len(found) < fetch:
                return kept[:k]
        clause: dict[str, Any] = {"gen": {"$in": sorted(allowed)}}
        return self._query(modality, embedding, k, {"$and": [clause, where]} if where else clause)

    def _said(self, speaker: str, gens: Collection[str]) -> list[str] | None:
        """Ids of the transcript segments `speaker` said in these generations (the speaker
        store's record), or None when one of them has no record."""
        said = self.speakers.segments_of(speaker, gens)
        if said is None:
            return None
        recs = self.catalog.by_gen()
        return [segment_id(recs[gen].media_id, gen, TRANSCRIPT, int(i))
                for gen, indices in said.items() if gen in recs for i in indices]

    def _among(self, modality: str, embedding: np.ndarray, k: int,
               ids: Sequence[str]) -> list[Hit] | None:
        """The k nearest of these segments: scored exactly when few, else by an unfiltered
        query with head-room for the share they are, the others dropped by id. None when
        that leaves fewer than k of more (the caller filters in Chroma instead)."""
        if len(ids) <= EXACT_SEGMENTS:
            return self._exact(modality, embedding, k, ids, None)
        total = self.catalog.segment_count(modality, self.catalog.by_gen().keys())
        fetch = int(OVERFETCH * k * total / len(ids)) + 2 * k + 10
        if fetch > MAX_FETCH:
            return None
        found = self._query(modality, embedding, fetch, None)
        wanted = set(ids)
        kept = [h for h in found if h.id in wanted]
        return kept[:k] if len(kept) >= k or len(found) < fetch else None

    def _exact(self, modality: str, embedding: np.ndarray, k: int, ids: Sequence[str],
               where: dict[str, Any] | None) -> list[Hit]:
        """The k nearest of these segments (and `where`), scored here: their vectors by id
        (a `get`, in proportion to len(ids); a Chroma query among ids scans the collection:
        111 vs 15 ms for 180 ids of 100k) and one product. Ids deleted meanwhile are absent
        from the answer. Cosine distance, as the collections are built with."""
        if not ids:
            return []
        res = self.collection(modality).get(
            ids=list(ids), include=["embeddings", "metadatas"] if where else ["embeddings"])
        found = [(i, e) for n, (i, e) in enumerate(zip(res["ids"], res["embeddings"]))
                 if not where or all((res["metadatas"][n] or {}).get(key) == value
                                     for key, value in where.items())]
        if not found:
            return []
        vectors = np.asarray([e for _, e in found], dtype=np.float32)
        query = np.asarray(embedding, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1) * (np.linalg.norm(query) or 1.0)
        distance = 1.0 - (vectors @ query) / np.where(norms > 0, norms, 1.0)
        order = np.argsort(distance, kind="stable")[:k]
        return [Hit(id=found[i][0], modality=modality, text="", metadata={},
                    distance=float(distance[i])) for i in order]

    def _query(self, modality: str, embedding: np.ndarray, k: int,
               clause: dict[str, Any] | None) -> list[Hit]:
        col = self.collection(modality)
        res = col.query(query_embeddings=np.asarray([embedding]), n_results=k, where=clause,
                        include=["distances"])
        return [Hit(id=i, modality=modality, text="", metadata={}, distance=float(dist))
                for i, dist in zip(res["ids"][0], res["distances"][0])]

    def hydrate(self, hits: Sequence[Hit], gens: Collection[str]) -> list[Hit]:
        """Load the text and metadata of hits not yet loaded (one Chroma get per modality).

        Returns the hits in order without those whose segment is gone (deleted meanwhile)
        or whose stored generation is not among `gens`: the access check on what is returned.
        """
        missing: dict[str, list[str]] = {}
        for hit in hits:
            if not hit.loaded:
                missing.setdefault(hit.modality, []).append(hit.id)
        found: dict[tuple[str, str], Hit] = {}
        for modality, ids in missing.items():
            for seg_id, hit in self.by_ids(modality, list(dict.fromkeys(ids))).items():
                found[(modality, seg_id)] = hit
        out = []
        for hit in hits:
            if not hit.loaded:
                data = found.get((hit.modality, hit.id))
                if data is None:
                    continue
                hit.text, hit.metadata = data.text, data.metadata
            if hit.metadata.get("gen") in gens:
                out.append(hit)
        return out

    def by_ids(self, modality: str, ids: Sequence[str]) -> dict[str, Hit]:
        if not ids:
            return {}
        res = self.collection(modality).get(ids=list(ids), include=["documents", "metadatas"])
        return {h.id: h for h in self._read(modality, res)}

    def _read(self, modality: str, res: dict[str, Any]) -> list[Hit]:
        """Hits of a Chroma `get` with documents and metadatas, each metadata completed with
        its recording's fields from the catalog (schema.recording_metadata). A generation the
        catalog does not show (being written, or just replaced) keeps what was stored."""
        recs = self.catalog.by_gen()
        fields: dict[str, dict[str, Any]] = {}  # per generation, made once per call
        hits = []
        for seg_id, doc, stored in zip(res["ids"], res["documents"], res["metadatas"]):
            meta = dict(stored or {})
            gen = meta.get("gen", "")
            if gen in recs:
                if gen not in fields:
                    fields[gen] = recording_metadata(recs[gen], modality)
                meta.update(fields[gen])
            else:
                parts = split_segment_id(seg_id)
                meta.setdefault("media_id", parts[0] if parts else seg_id)
                meta.setdefault("modality", modality)
            hits.append(Hit(id=seg_id, modality=modality, text=doc or "", metadata=meta,
                            distance=0.0))
        return hits

    def keyword_hits(self, query: str, modalities: Sequence[str], k: int,
                     gens: Sequence[str], share: float | None = None) -> dict[str, list[Hit]]:
        """BM25 matches of each modality among the given generations, best first, not loaded
        (see KeywordIndex.search_modalities). `share`: the part of the searchable generations
        that `gens` is, counted here when not given."""
        if share is None:
            share = self.generation_share(gens)
        scored = self.keywords.search_modalities(query, modalities, gens, k, share)
        return {modality: [Hit(id=seg_id, modality=modality, text="", metadata={},
                               distance=-score) for seg_id, score in found]
                for modality, found in scored.items()}

    def generation_share(self, gens: Collection[str]) -> float:
        """The part of the searchable generations that `gens` is (the catalog's cached rows;
        this connection's thread only)."""
        return len(set(gens)) / max(self.catalog.generation_count(), 1)

    def keyword_hits_later(self, query: str, modalities: Sequence[str], k: int,
                           gens: Sequence[str]) -> Future[dict[str, list[Hit]]]:
        """keyword_hits in a reader thread, while the caller encodes and queries Chroma
        (tantivy searches without the GIL). Results are those of keyword_hits."""
        if self._reader is None:
            self._reader = ThreadPoolExecutor(1, thread_name_prefix="bm25-reader")
        return self._reader.submit(self.keyword_hits, query, tuple(modalities), k, list(gens),
                                   self.generation_share(gens))

    def vectors(self, modality: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored embeddings of these segments (those that exist)."""
        held = set(self._held({g for i in ids if (g := segment_gen(i))}))
        ids = [i for i in ids if segment_gen(i) in held or segment_gen(i) is None]
        if not ids:
            return {}
        res = self.collection(modality).get(ids=list(ids), include=["embeddings"])
        return {i: np.asarray(v, dtype=np.float32) for i, v in zip(res["ids"], res["embeddings"])}

    def segments(self, modality: str, gens: Sequence[str],
                 where: dict[str, Any] | None = None) -> list[Hit]:
        """Every segment of the given generations (for context windows and keyword search)."""
        if not gens:
            return []
        clause: dict[str, Any] = {"gen": {"$in": list(gens)}}
        if where:
            clause = {"$and": [clause, where]}
        res = self.collection(modality).get(where=clause, include=["documents", "metadatas"])
        hits = self._read(modality, res)
        hits.sort(key=lambda h: (h.metadata["media_id"], h.metadata["start"]))
        return hits

    # -- metadata changes in place (no re-embedding) -------------------------------------
    def set_access(self, rec: Recording, tags: list[str], groups: list[str]) -> None:
        """Change a recording's tags and groups: the catalog's row is what every search and
        every read segment go by (segments written before schema.segment_metadata left these
        fields out hold stale copies, which reads replace)."""
        self.catalog.update_access(rec.media_id, tags, groups)

    def set_speaker(self, rec: Recording, label: str, name: str) -> int:
        """Show `name` for every transcript segment of the speaker `label`; returns how many."""
        if not rec.gen:
            return 0
        col = self.collection(TRANSCRIPT)
        res = col.get(where={"$and": [{"gen": rec.gen}, {"speaker_label": label}]},
                      include=["metadatas"])
        if res["ids"]:
            col.update(ids=res["ids"],
                       metadatas=[{**meta, "speaker": name} for meta in res["metadatas"]])
            self._map_generation(rec.gen)
        return len(res["ids"])

    # -- who said which segment (retrieval/speakers.py speaker_segments) ----------------
    def _map_generation(self, gen: str) -> None:
        """Record who said each transcript segment of a generation, from what Chroma holds."""
        ids = self.catalog.segment_ids(TRANSCRIPT, [gen])  # by id: no scan of the collection
        res = self.collection(TRANSCRIPT).get(
            **({"ids": ids} if ids else {"where": {"gen": gen}}), include=["metadatas"])
        said: dict[int, str] = {}
        for seg_id, meta in zip(res["ids"], res["metadatas"]):
            parts = split_segment_id(seg_id)
            if parts:
                said[parts[3]] = (meta or {}).get("speaker") or ""
        last = max(said, default=-1)
        self.speakers.map_segments(gen, [said.get(i, "") for i in range(last + 1)])

    def _map_speakers(self) -> None:
        """Fill in who said which segment for searchable generations written before that was
        recorded (once per index: a generation mapped stays mapped)."""
        searchable = {r.gen: r for r in self.catalog.visible() if r.gen}
        todo = self.speakers.unmapped(searchable)
        if not todo:
            return
        log.warning("recording who said which segment for %s recordings", f"{len(todo):,}")
        for gen in todo:
            if searchable[gen].counts.get(TRANSCRIPT, 1) == 0:  # counted at commit: no speech
                self.speakers.map_segments(gen, [])
            else:
                self._map_generation(gen)
