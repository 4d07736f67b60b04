"""Bounded work per request: a follow-up reads only the stretch it needs, and a summary of a
long recording makes a capped number of model calls.

A 20-minute text-only recording (a generated WebVTT transcript) is ingested into a real index
with the real embedder. The model is tests/fake_openai.py, standing in for a remote
OpenAI-compatible API (none can be reached here): it counts the calls.
"""

from __future__ import annotations

import json
import re

import pytest

from clipcite.assistant import summary
from clipcite.assistant.agent import Assistant
from clipcite.assistant.llm import LLMConfig, load_chat_model
from clipcite.ingestion.batch import BatchOptions, run_batch
from clipcite.retrieval import tools
from clipcite.retrieval.encoders import load_text_encoder
from clipcite.retrieval.index import Index
from clipcite.retrieval.search import Searcher

CUES = 240  # one every 5 s: 20 minutes
ACTION_EVERY = 10


def _clock(seconds: float) -> str:
    return f"00:{int(seconds) // 60:02d}:{seconds % 60:06.3f}"


def _line(i: int) -> str:
    if i % ACTION_EVERY == 0:
        return f"Tom will send report number {i} to the finance team by Friday."
    return f"Next we looked at topic number {i} and how it changes the plan for the spring."


@pytest.fixture(scope="module")
def long_call(tmp_path_factory: pytest.TempPathFactory, extract_options) -> tuple[Searcher, str]:
    root = tmp_path_factory.mktemp("long")
    vtt = root / "long planning call.vtt"
    cues = [f"{_clock(i * 5.0)} --> {_clock(i * 5.0 + 4.0)}\n<v Dana>{_line(i)}\n"
            for i in range(CUES)]
    vtt.write_text("WEBVTT\n\n" + "\n".join(cues), encoding="utf-8")
    index = Index(root / "index")
    [out] = run_batch([vtt], index, BatchOptions(extract=extract_options))
    assert out.status == "indexed", out
    return Searcher(index, load_text_encoder()), out.media_id


def test_context_reads_only_the_stretch_around_a_moment(long_call, monkeypatch):
    searcher, media_id = long_call
    read: list[int] = []
    segments = Index.segments

    def counted(self, *args, **kwargs):  # the real read, counted
        hits = segments(self, *args, **kwargs)
        read.append(len(hits))
        return hits

    monkeypatch.setattr(Index, "segments", counted)
    lines = tools.get_context(searcher, media_id, 600.0, 604.0, padding=20.0)
    assert lines and all(m.end >= 580.0 and m.start <= 624.0 for m in lines)
    assert {round(m.start) for m in lines} >= {580, 600, 620}
    # What came out of the index is the stretch, not the 240 lines of the recording.
    assert sum(read) == len(lines) <= 10


def test_a_summary_of_a_long_recording_makes_a_capped_number_of_model_calls(long_call, fake):
    searcher, media_id = long_call
    chat = load_chat_model(LLMConfig(backend="openai", base_url=fake.base_url, api_key="k",
                                     model="test-model"))
    assistant = Assistant(searcher, chat)
    rec = next(r for r in tools.list_recordings(searcher) if r.media_id == media_id)
    lines, vectors = tools.recording_lines_with_vectors(searcher, media_id)
    assert len(lines) == CUES and len(summary.chunks(lines)) > 2 * summary.MAX_MAP_CALLS
    fake.replies = [json.dumps({"decisions": [], "actions": [], "points": []})]
    answer, _ = summary.summarize_recording(assistant, rec, ("action",), lines, vectors)
    prompts = [r["body"]["messages"][-1]["content"] for r in fake.requests]
    assert len(prompts) == summary.MAX_MAP_CALLS  # "what were the action items?": capped
    # The calls are spread over the whole recording, each stretch read where its action
    # items are.
    read = sorted(int(n) for p in prompts for n in re.findall(r"number (\d+)", p))
    stretch = CUES / summary.MAX_MAP_CALLS
    assert read[0] < stretch and read[-1] >= CUES - stretch
    assert all("Tom will send" in p for p in prompts)
    # A whole summary of it is one call (the lines that stand for it, in the model's words).
    fake.requests.clear()
    fake.deltas = ["The call went through the spring plan topic by topic [1]."]
    summary.summarize_recording(assistant, rec, ("point", "decision", "action"), lines, vectors)
    assert len(fake.requests) == 1
