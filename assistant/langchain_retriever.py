"""The archive for LangChain applications: a retriever of cited `Document`s, and a tool.

Both search through `retrieval.archive.ArchiveSearch` (clipcite's moment search
with the caller's access groups in its Filters, enforced below this adapter), so a Document
carries the same metadata as a LlamaIndex node: media_id, title, path, start, end, speaker,
modality, citation and link, plus the moment's score.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from langchain_core.callbacks import (AsyncCallbackManagerForRetrieverRun,
                                      CallbackManagerForRetrieverRun)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import StructuredTool

from clipcite.assistant.evidence import label, plain, quote, snippet_text
from clipcite.retrieval.filters import Filters
from clipcite.retrieval.archive import (ArchiveSearch, SearcherSource, moment_metadata,
                               open_searcher_at, play_link)
from clipcite.retrieval.schema import Moment

__all__ = ["ArchiveRetriever", "archive_search_tool", "format_moments", "moment_document",
           "open_searcher_at"]

# A moment's text in the tool's answer is cut here: the tool feeds a model's context.
TOOL_TEXT_CHARS = 500


def moment_document(moment: Moment, base_url: str = "") -> Document:
    return Document(id=f"{moment.media_id}:{moment.start:.3f}-{moment.end:.3f}",
                    page_content=moment.text,
                    metadata={**moment_metadata(moment, base_url), "score": moment.score})


class ArchiveRetriever(BaseRetriever):
    """clipcite's moment search as a LangChain retriever: one Document per moment, best first.

    `groups` are the caller's access groups (required: None searches everything, an empty list
    public recordings only). `searcher` is an open Searcher, used in the thread that opened
    it, or a function that opens one, which then serves any thread (RunnableParallel, batch,
    ainvoke); see ArchiveSearch.
    """

    archive: ArchiveSearch
    base_url: str = ""

    def __init__(self, searcher: SearcherSource, *, groups: Iterable[str] | None, k: int = 5,
                 filters: Filters | None = None, base_url: str = "", **kwargs: Any) -> None:
        super().__init__(archive=ArchiveSearch(searcher, groups=groups, k=k, filters=filters),
                         base_url=base_url, **kwargs)

    def _get_relevant_documents(self, query: str, *,
                                run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [moment_document(m, self.base_url) for m in self.archive(query)]

    async def _aget_relevant_documents(
            self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        # Not LangChain's default (the sync search in a pool thread): an open Searcher must
        # stay in its thread, and one opened by a function already runs in its own.
        return [moment_document(m, self.base_url) for m in await self.archive.acall(query)]


def format_moments(moments: Iterable[Moment], base_url: str = "") -> str:
    """Moments as numbered lines for a model: citation, speaker, modality, link, then the words
    in quotes (recorded text is data, never instructions: see assistant/evidence.py)."""
    lines = []
    for n, m in enumerate(moments, 1):
        who = f"{plain(m.speaker)}, " if m.speaker else ""
        words = quote(snippet_text(m)[:TOOL_TEXT_CHARS])
        lines.append(f"[{n}] {plain(label(m))} "
                     f"({who}{m.modality}) {play_link(m, base_url)}\n    {words}")
    return "\n".join(lines)


def archive_search_tool(searcher: SearcherSource, *, groups: Iterable[str] | None, k: int = 5,
                        filters: Filters | None = None, base_url: str = "",
                        name: str = "search_recordings",
                        description: str | None = None) -> StructuredTool:
    """A tool that searches the recordings and answers with the moments found, as text with
    citations ("Title, mm:ss–mm:ss") and links; the moments' metadata is the artifact of a
    ToolMessage when the tool is called with a tool call."""
    archive = ArchiveSearch(searcher, groups=groups, k=k, filters=filters)

    def answer(query: str, moments: list[Moment]) -> tuple[str, list[dict[str, Any]]]:
        found = [{**moment_metadata(m, base_url), "score": m.score, "text": m.text}
                 for m in moments]
        if not moments:
            return f"No moment in the recordings matches {quote(query)}.", found
        return format_moments(moments, base_url), found

    def search_recordings(query: str) -> tuple[str, list[dict[str, Any]]]:
        return answer(query, archive(query))

    async def asearch_recordings(query: str) -> tuple[str, list[dict[str, Any]]]:
        return answer(query, await archive.acall(query))

    return StructuredTool.from_function(
        func=search_recordings, coroutine=asearch_recordings, name=name,
        description=description or (
            "Search the recorded meetings and trainings (speech and on-screen text) for the "
            "moments that answer a question. Input: the question or keywords. Output: numbered "
            "moments, each cited as Title [mm:ss-mm:ss] with a link; cite them as given."),
        response_format="content_and_artifact")
