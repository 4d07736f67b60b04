"""The archive from LlamaIndex and LangChain, end to end on a real index.

The index is test_retrieval's `searcher` fixture (sample.wav, "Phone call", open to everyone;
jfk.flac, "Inaugural address", for the board only), ingested with the real models. Each adapter
is driven through its framework's own API: LlamaIndex's RetrieverQueryEngine, LangChain
runnables (a chain, a parallel chain, batch, async) and a tool's invoke.

LLMs: the fast tests use the frameworks' fakes. LlamaIndex's MockLLM echoes its prompt, so the
answer shows exactly what the engine handed the model (the retrieved moments and citations);
LangChain's FakeListChatModel gives a canned reply and the prompt it was sent is captured with a
callback. LlamaIndex has no integration with clipcite's packaged model installed (no llama.cpp
or OpenAI-like LLM package), so it stays on MockLLM; the packaged local model *is* a LangChain
chat model, so one slow test runs the LangChain chain with it for real.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnableParallel, RunnablePassthrough
from llama_index.core.llms.mock import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine

from clipcite.assistant.langchain_retriever import ArchiveRetriever as LangChainRetriever
from clipcite.assistant.langchain_retriever import archive_search_tool
from clipcite.retrieval.llamaindex_retriever import ArchiveRetriever as LlamaIndexRetriever
from clipcite.retrieval.archive import open_searcher_at
from clipcite.retrieval.search import Searcher
from tests import test_retrieval

# The index of test_retrieval (its module-scoped fixture, set up again for this module).
searcher = test_retrieval.searcher
SECRET_QUERY = test_retrieval.SECRET_QUERY
BASE = "http://127.0.0.1:7860"
QUESTION = "Where is Sheila from?"
CITATION = re.compile(r"^Phone call, \d\d:\d\d–\d\d:\d\d$")


def _check_metadata(meta: dict[str, Any], media_id: str) -> None:
    """The first moment for QUESTION: the phone call where Sheila says where she is from."""
    assert meta["media_id"] == media_id and meta["title"] == "Phone call"
    assert meta["path"].endswith("Phone call.wav") and meta["modality"] == "transcript"
    assert isinstance(meta["start"], float) and isinstance(meta["end"], float)
    assert 8.0 <= meta["start"] < meta["end"] <= 25.0, meta  # Sheila speaks at ~12.7-17.8 s
    assert meta["speaker"] is None or isinstance(meta["speaker"], str)
    assert CITATION.match(meta["citation"]), meta["citation"]
    assert meta["link"] == f"{BASE}/?recording={media_id}&t={meta['start']:.2f}"


def _phone_call(searcher: Searcher):
    return next(r for r in searcher.index.catalog.all() if r.title == "Phone call")


@contextmanager
def _restricted(searcher: Searcher, groups: list[str]) -> Iterator[None]:
    """The phone call for `groups` only while the block runs (Index.set_access)."""
    rec = _phone_call(searcher)
    searcher.index.set_access(rec, list(rec.tags), groups)
    try:
        yield
    finally:
        searcher.index.set_access(searcher.index.catalog.get(rec.media_id), list(rec.tags), [])


# -- LlamaIndex ---------------------------------------------------------------------------------
def test_llamaindex_query_engine_answers_from_the_cited_moment(searcher: Searcher):
    retriever = LlamaIndexRetriever(searcher, groups=["staff"], k=3, base_url=BASE)
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
    response = engine.query(QUESTION)
    top = response.source_nodes[0]
    assert "sheila" in top.node.get_content().lower()
    assert isinstance(top.score, float) and top.score > 0
    _check_metadata(top.node.metadata, _phone_call(searcher).media_id)
    # MockLLM echoes its prompt: the model was given the moment's words with its citation and
    # no file path or media id.
    prompt = str(response)
    assert "Sheila" in prompt and f"citation: {top.node.metadata['citation']}" in prompt
    assert "Phone call.wav" not in prompt and top.node.metadata["media_id"] not in prompt
    assert QUESTION in prompt


def test_llamaindex_retriever_keeps_to_the_callers_groups(searcher: Searcher):
    staff = LlamaIndexRetriever(searcher, groups=["staff"], k=10)
    board = LlamaIndexRetriever(searcher, groups=["board"], k=3)
    for query in (SECRET_QUERY, "Inaugural address", "fellow Americans"):
        assert all(n.node.metadata["title"] != "Inaugural address"
                   for n in staff.retrieve(query))
    assert board.retrieve(SECRET_QUERY)[0].node.metadata["title"] == "Inaugural address"
    with _restricted(searcher, ["sales"]):
        assert all(n.node.metadata["title"] != "Phone call" for n in staff.retrieve(QUESTION))
        sales = LlamaIndexRetriever(searcher, groups="sales", k=3)  # one group as a string
        assert sales.retrieve(QUESTION)[0].node.metadata["title"] == "Phone call"
        engine = RetrieverQueryEngine.from_args(staff, llm=MockLLM())
        assert "Sheila" not in str(engine.query(QUESTION))
    found = asyncio.run(staff.aretrieve(QUESTION))  # the async path, open again
    assert found[0].node.metadata["title"] == "Phone call"


# -- LangChain ----------------------------------------------------------------------------------
class _Prompts(BaseCallbackHandler):
    """The messages each chat model was sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def on_chat_model_start(self, serialized: Any, messages: list[list[Any]],
                            **kwargs: Any) -> None:
        self.sent.append("\n".join(str(m.content) for batch in messages for m in batch))


def format_docs(docs: list[Document]) -> str:
    return "\n".join(f"{d.metadata['citation']}: {d.page_content}" for d in docs)


PROMPT = ChatPromptTemplate.from_messages([
    ("system", "Answer from these moments and cite them as given:\n{context}"),
    ("human", "{question}")])


def test_langchain_chain_answers_from_the_cited_moment(searcher: Searcher):
    retriever = LangChainRetriever(searcher, groups=["staff"], k=3, base_url=BASE)
    docs = retriever.invoke(QUESTION)
    assert "sheila" in docs[0].page_content.lower()
    _check_metadata(docs[0].metadata, _phone_call(searcher).media_id)
    assert isinstance(docs[0].metadata["score"], float)
    prompts = _Prompts()
    model = FakeListChatModel(responses=["From Chicago [Phone call]."])
    chain = (RunnableLambda(lambda q: {"context": format_docs(retriever.invoke(q)),
                                       "question": q})
             | PROMPT | model | StrOutputParser())
    assert chain.invoke(QUESTION, config={"callbacks": [prompts]}) == "From Chicago [Phone call]."
    assert docs[0].metadata["citation"] in prompts.sent[0] and "Sheila" in prompts.sent[0]
    # the same with the retriever itself as the chain's first step
    plain = retriever | format_docs
    assert plain.invoke(QUESTION).startswith(docs[0].metadata["citation"])


def test_langchain_parallel_chain_and_batch_with_a_searcher_opened_in_its_thread(
        searcher: Searcher):
    """LangChain runs RunnableParallel branches, batch and ainvoke in pool threads; an Index
    belongs to the thread that opened it, so the retriever opens its own from a function."""
    index_dir: Path = searcher.index.directory
    retriever = LangChainRetriever(lambda: open_searcher_at(index_dir), groups=["staff"], k=3,
                                   base_url=BASE)
    try:
        prompts = _Prompts()
        chain = (RunnableParallel(context=retriever | format_docs,
                                  question=RunnablePassthrough())
                 | PROMPT | FakeListChatModel(responses=["Chicago."]) | StrOutputParser())
        assert chain.invoke(QUESTION, config={"callbacks": [prompts]}) == "Chicago."
        assert "Phone call, " in prompts.sent[0] and "Sheila" in prompts.sent[0]
        both = retriever.batch([QUESTION, SECRET_QUERY])
        assert both[0][0].metadata["title"] == "Phone call"
        assert all(d.metadata["title"] != "Inaugural address" for d in both[1])
        found = asyncio.run(retriever.ainvoke(QUESTION))
        _check_metadata(found[0].metadata, _phone_call(searcher).media_id)
    finally:
        retriever.archive.close()


def test_langchain_tool_answers_with_citations_and_keeps_to_groups(searcher: Searcher):
    tool = archive_search_tool(searcher, groups=["staff"], k=3, base_url=BASE)
    media_id = _phone_call(searcher).media_id
    text = tool.invoke({"query": QUESTION})
    first = text.splitlines()[0]
    assert first.startswith("[1] Phone call, ") and f"{BASE}/?recording={media_id}&t=" in first
    assert "sheila" in text.lower()
    message = tool.invoke({"type": "tool_call", "name": tool.name, "id": "call-1",
                           "args": {"query": QUESTION}})
    assert isinstance(message, ToolMessage) and message.content == text
    _check_metadata(message.artifact[0], media_id)
    assert "Inaugural address" not in tool.invoke({"query": SECRET_QUERY})
    board = archive_search_tool(searcher, groups=["board"], k=3)
    assert board.invoke({"query": SECRET_QUERY}).startswith("[1] Inaugural address, ")
    with _restricted(searcher, ["sales"]):
        hidden = tool.invoke({"query": QUESTION})
        assert hidden.startswith("No moment") and "Phone call" not in hidden
        retriever = LangChainRetriever(searcher, groups=["staff"], k=10)
        assert all(d.metadata["title"] != "Phone call" for d in retriever.invoke(QUESTION))


@pytest.fixture(scope="module")
def local_chat(cache_dir: Path):
    from clipcite.assistant.llm import LLMConfig, load_chat_model

    return load_chat_model(LLMConfig(backend="local", cache_dir=cache_dir, max_tokens=60))


@pytest.mark.slow
def test_langchain_chain_with_the_packaged_local_model(searcher: Searcher,
                                                       local_chat):
    """The real LLM: clipcite's packaged Qwen2.5 model is a LangChain chat model already."""
    index_dir = searcher.index.directory
    retriever = LangChainRetriever(lambda: open_searcher_at(index_dir), groups=["staff"], k=3)
    chain = ({"context": retriever | format_docs, "question": RunnablePassthrough()}
             | PROMPT | local_chat.langchain | StrOutputParser())
    try:
        assert "chicago" in chain.invoke("Where is Sheila originally from?").lower()
    finally:
        retriever.archive.close()
