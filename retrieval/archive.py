"""The archive for other applications, framework-free: open a searcher from explicit
arguments, search as one caller (their access groups in the Filters, enforced below, in
`visible_recordings`), and describe a moment (metadata, citation, a link that plays it).
The LlamaIndex and LangChain adapters (retrieval/llamaindex_retriever.py,
assistant/langchain_retriever.py) are thin layers over this.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

from clipcite.retrieval.encoders import DEFAULT_TEXT_MODEL
from clipcite.retrieval.filters import Filters
from clipcite.retrieval.schema import Moment, label
from clipcite.retrieval.search import Searcher
from clipcite.retrieval.tools import search_all

# A Searcher, or a function that opens one (see ArchiveSearch for why the latter is safer).
SearcherSource = Searcher | Callable[[], Searcher]


def open_searcher_at(index_dir: str | Path, *, text_model: str = DEFAULT_TEXT_MODEL,
                     chroma_url: str | None = None, clip_model: str = "ViT-B-32",
                     clip_weights: str | None = None, clap_model: str | None = None) -> Searcher:
    """A Searcher over the index in `index_dir`, with the query encoders that built it: give the
    models `clipcite ingest` used (its defaults are these). Nothing is read from the environment."""
    from clipcite.retrieval.clap import load_clap
    from clipcite.retrieval.clip import load_clip
    from clipcite.retrieval.encoders import load_text_encoder
    from clipcite.retrieval.index import Index

    return Searcher(index=Index(Path(index_dir).expanduser(), chroma_url=chroma_url),
                    text=load_text_encoder(text_model), clip=load_clip(clip_model, clip_weights),
                    clap=load_clap(clap_model))


def caller_filters(groups: Iterable[str] | None, filters: Filters | None = None) -> Filters:
    """`filters` searched as a member of `groups`, which replace any groups in `filters`.
    None is unrestricted (a local administrator); an empty list sees public recordings only."""
    if isinstance(groups, str):  # one group, not a set of its letters
        groups = [groups]
    return dataclasses.replace(filters or Filters(),
                               groups=None if groups is None else frozenset(groups))


class ArchiveSearch:
    """One caller's search of the archive: the k best moments for a question.

    An Index's SQLite connections belong to the thread that opened it, and frameworks call
    retrievers from other threads (LangChain's RunnableParallel, batch and async calls run
    them in a thread pool). Given a function that opens the Searcher, it is opened in a worker
    thread of its own and every search runs there, one at a time, whatever thread asks. Given
    an open Searcher, searches run in the calling thread, which must be the one that opened it.
    """

    def __init__(self, searcher: SearcherSource, *, groups: Iterable[str] | None,
                 k: int = 5, filters: Filters | None = None) -> None:
        self.filters = caller_filters(groups, filters)
        self.k = k
        self._worker: ThreadPoolExecutor | None = None
        if isinstance(searcher, Searcher):
            self._searcher: Searcher | Future[Searcher] = searcher
        elif callable(searcher):
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="clipcite-archive")
            self._searcher = self._worker.submit(searcher)
        else:
            raise TypeError(f"not a Searcher or a function opening one: {searcher!r}")

    def _search(self, query: str) -> list[Moment]:
        searcher = self._searcher
        if isinstance(searcher, Future):  # in the worker, which finished opening it first
            searcher = searcher.result()
        return search_all(searcher, query, self.k, self.filters)

    def __call__(self, query: str) -> list[Moment]:
        if self._worker is None:
            return self._search(query)
        return self._worker.submit(self._search, query).result()

    async def acall(self, query: str) -> list[Moment]:
        if self._worker is None:
            return self._search(query)
        return await asyncio.wrap_future(self._worker.submit(self._search, query))

    def close(self) -> None:
        """Stop the worker thread (an open Searcher passed in is the caller's to close)."""
        if self._worker is not None:
            self._worker.shutdown(wait=True)


def play_link(moment: Moment, base_url: str = "") -> str:
    """The web app's link that opens the recording's page playing from the moment
    (`clipcite serve` reads `/?recording=ID&t=SECONDS`; it checks the viewer's rights itself).
    `base_url` is where the app is served, e.g. "http://127.0.0.1:7860"; "" gives a link
    relative to the server's root."""
    return (f"{base_url.rstrip('/')}/?recording={quote(moment.media_id, safe='')}"
            f"&t={moment.start:.2f}")


def moment_metadata(moment: Moment, base_url: str = "") -> dict[str, Any]:
    """What both adapters attach to a moment (no score: each framework has its own place)."""
    return {"media_id": moment.media_id, "title": moment.title, "path": moment.path,
            "start": round(moment.start, 3), "end": round(moment.end, 3),
            "speaker": moment.speaker, "modality": moment.modality,
            "citation": label(moment), "link": play_link(moment, base_url)}
