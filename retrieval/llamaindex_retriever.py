"""The archive as a LlamaIndex retriever: moments as cited `NodeWithScore`s.

Searches go through `retrieval.tools.search_all` with Filters that carry the caller's access
groups, so a recording the caller may not see is dropped in `visible_recordings`, below this
adapter. The framework-free parts are in retrieval/archive.py, shared with the LangChain
adapter (assistant/langchain_retriever.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from clipcite.retrieval.archive import ArchiveSearch, SearcherSource, moment_metadata
from clipcite.retrieval.filters import Filters
from clipcite.retrieval.schema import Moment

# An answering LLM sees each node's citation and speaker beside its text; the rest is for code.
_NOT_FOR_LLM = ["media_id", "path", "start", "end", "modality", "link", "title"]


def moment_node(moment: Moment, base_url: str = "") -> NodeWithScore:
    hidden = _NOT_FOR_LLM + ([] if moment.speaker else ["speaker"])  # no "speaker: None"
    node = TextNode(id_=f"{moment.media_id}:{moment.start:.3f}-{moment.end:.3f}",
                    text=moment.text, metadata=moment_metadata(moment, base_url),
                    excluded_llm_metadata_keys=hidden, excluded_embed_metadata_keys=hidden)
    return NodeWithScore(node=node, score=moment.score)


class ArchiveRetriever(BaseRetriever):
    """clipcite's moment search as a LlamaIndex retriever: each node is one moment, best first.

    `groups` are the caller's access groups (required, so that leaving them out is never an
    accident: None searches everything). `filters` narrow further (recordings, dates, tags,
    speaker). `searcher` is an open Searcher or a function that opens one (see ArchiveSearch).
    """

    def __init__(self, searcher: SearcherSource, *, groups: Iterable[str] | None, k: int = 5,
                 filters: Filters | None = None, base_url: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.archive = ArchiveSearch(searcher, groups=groups, k=k, filters=filters)
        self.base_url = base_url

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [moment_node(m, self.base_url) for m in self.archive(query_bundle.query_str)]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        moments = await self.archive.acall(query_bundle.query_str)
        return [moment_node(m, self.base_url) for m in moments]
