"""Whole-recording summaries prepared once per generation and read back instantly, on a real
QMSum meeting excerpt in a real index. The model is the fake OpenAI-compatible server (no remote
API can be reached here): what is tested is what clipcite does with its replies."""

from __future__ import annotations

import json
from pathlib import Path


from clipcite.assistant.agent import Assistant
from clipcite.assistant.llm import LLMConfig, load_chat_model
from clipcite.assistant import summary
from clipcite.assistant.summary import prepare
from clipcite.assistant.summary_cache import SummaryCache
from clipcite.ingestion.batch import BatchOptions, run_batch
from clipcite.retrieval.encoders import load_text_encoder
from clipcite.retrieval.index import Index
from clipcite.retrieval.search import Searcher
from tests.conftest import REPO


def test_a_summary_is_made_once_per_generation(tmp_path: Path, extract_options, fake,
                                               monkeypatch):
    vtt = tmp_path / "design-meeting.vtt"
    vtt.write_bytes((REPO / "tests" / "data" / "qmsum_excerpt.vtt").read_bytes())
    index = Index(tmp_path / "index")
    run_batch([vtt], index, BatchOptions(extract=extract_options))
    [rec] = index.catalog.all()
    chat = load_chat_model(LLMConfig(backend="openai", base_url=fake.base_url, api_key="k",
                                     model="test-model"))
    assistant = Assistant(Searcher(index, load_text_encoder()), chat)
    # As a long recording's (the excerpt is 4,362 characters): written from the lines that
    # stand for it, the model's citations checked against them.
    monkeypatch.setattr(summary, "SUMMARY_CHARS", 3000)
    fake.deltas = ["{quote:2} [2]. ", "Penguins run the company [1]."]
    assert prepare(assistant, rec.media_id)
    cached = SummaryCache(index.directory).get(rec.gen)
    assert cached is not None
    answer, citations = cached
    assert answer.startswith("Summary of Design meeting")
    assert "[1]" in answer and "Penguins run the company." in answer  # uncited: unsupported
    assert len(citations) == 1 and citations[0].media_id == rec.media_id
    calls = len(fake.requests)
    assert not prepare(assistant, rec.media_id)  # already there: no model call
    assert len(fake.requests) == calls

    # Asked for, it is read back: the same text and citations, no map or reduce call.
    fake.replies = [json.dumps({"intent": "summarize", "queries": ["whole meeting"]})]
    reply = assistant.ask("Summarize the whole meeting.")
    assert reply.answer == answer and [c.start for c in reply.citations] == \
        [c.start for c in citations]
    assert len(fake.requests) == calls + 1  # the router only

    # A new generation (the transcript changed) has no summary yet; the old one is pruned.
    vtt.write_text(vtt.read_text(encoding="utf-8").replace("remote", "handset"),
                   encoding="utf-8")
    run_batch([vtt], index, BatchOptions(extract=extract_options))
    [rec2] = index.catalog.all()
    cache = SummaryCache(index.directory)
    assert rec2.gen != rec.gen and cache.get(rec2.gen) is None
    assert cache.prune({rec2.gen}) == 1 and cache.get(rec.gen) is None


def test_a_summary_of_one_topic_of_a_long_recording_is_answered_from_where_it_is_discussed(
        tmp_path: Path, extract_options, fake, monkeypatch):
    index = Index(tmp_path / "index")
    run_batch([REPO / "tests" / "data" / "qmsum_excerpt.vtt"], index,
              BatchOptions(extract=extract_options))
    [rec] = index.catalog.all()
    monkeypatch.setattr(summary, "SUMMARY_CHARS", 3000)  # the excerpt counts as long
    chat = load_chat_model(LLMConfig(backend="openai", base_url=fake.base_url, api_key="k",
                                     model="test-model"))
    assistant = Assistant(Searcher(index, load_text_encoder()), chat)
    question = "Summarize the discussion about the remote control's energy source."
    fake.replies = [json.dumps({"intent": "summarize", "queries": ["energy source remote"]})]
    fake.deltas = ["{quote:1} [1]."]
    reply = assistant.ask(question)
    # The cited-answer path, within that recording: numbered lines and the question reach the
    # model; no digest of the whole recording is written or cached.
    prompt = fake.requests[-1]["body"]["messages"][-1]["content"]
    assert "Snippets:" in prompt and question in prompt
    assert "stand for each part" not in json.dumps(fake.requests[-1]["body"])
    assert reply.citations and all(c.media_id == rec.media_id for c in reply.citations)
    assert SummaryCache(index.directory).get(rec.gen) is None
