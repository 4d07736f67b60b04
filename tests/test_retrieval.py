"""Retrieval tools on a real index: access groups below every tool, filters, keywords, eval."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ingestion.batch import BatchOptions, run_batch
from retrieval import tools
from retrieval.encoders import load_text_encoder
from retrieval.evaluation import load_queries, matches
from retrieval.filters import Filters
from retrieval.index import Index
from retrieval.keyword import match_expression
from retrieval.schema import Moment, TRANSCRIPT
from retrieval.search import Searcher
from tests.conftest import copy_media

SECRET_QUERY = "ask not what your country can do for you"


@pytest.fixture(scope="module")
def searcher(media: Path, tmp_path_factory: pytest.TempPathFactory, extract_options) -> Searcher:
    """jfk.flac is restricted to the board; the phone call is open to everyone."""
    lib = tmp_path_factory.mktemp("lib")
    index = Index(tmp_path_factory.mktemp("index"))
    board = copy_media(media / "jfk.flac", lib / "board", "Inaugural address.flac")
    call = copy_media(media / "sample.wav", lib / "calls", "Phone call.wav")
    run_batch([board], index, BatchOptions(extract=extract_options, groups=["board"],
                                           tags=["speeches"]))
    run_batch([call], index, BatchOptions(extract=extract_options, tags=["calls"]))
    return Searcher(index, load_text_encoder())


STAFF = Filters(groups=frozenset({"staff"}))


def _titles(moments: list[Moment]) -> set[str]:
    return {m.title for m in moments}


@pytest.mark.parametrize("tool", [tools.search_all, tools.search_transcript,
                                  tools.search_slides, tools.search_frames])
def test_search_tools_never_return_other_groups_recordings(searcher: Searcher, tool):
    for query in (SECRET_QUERY, "Inaugural address", "country", "fellow Americans"):
        moments = tool(searcher, [query, "jfk", "president"], k=20, filters=STAFF)
        assert "Inaugural address" not in _titles(moments)
        assert all("board" not in m.path and "country" not in m.text.lower() for m in moments)
    # and the board does find it, so the test above can fail
    if tool in (tools.search_all, tools.search_transcript):
        board = tool(searcher, SECRET_QUERY, k=3, filters=Filters(groups=frozenset({"board"})))
        assert board[0].title == "Inaugural address"


def test_context_and_listing_respect_groups(searcher: Searcher):
    rec = next(r for r in searcher.index.catalog.all() if r.groups == ["board"])
    with pytest.raises(tools.NotFound):
        tools.get_context(searcher, rec.media_id, 0, 5, filters=STAFF)
    with pytest.raises(tools.NotFound):
        tools.recording_segments(searcher, rec.media_id, filters=STAFF)
    assert [r.title for r in tools.list_recordings(searcher, STAFF)] == ["Phone call"]
    assert len(tools.list_recordings(searcher)) == 2  # unrestricted caller (local CLI)
    said = tools.get_context(searcher, rec.media_id, 2, 4, padding=1.0)
    assert said and all(m.modality == TRANSCRIPT for m in said)


def test_context_returns_neighbouring_sentences_in_order(searcher: Searcher):
    call = next(r for r in searcher.index.catalog.all() if r.title == "Phone call")
    around = tools.get_context(searcher, call.media_id, 14.5, 17.7, padding=4.0, filters=STAFF)
    starts = [m.start for m in around]
    assert starts == sorted(starts) and len(around) >= 2
    assert all(m.end >= 10.5 and m.start <= 21.7 for m in around)
    assert any("sheila" in m.text.lower() for m in around)


def test_filters_by_title_tags_dates_and_recording(searcher: Searcher):
    q = "where are you from"
    assert _titles(tools.search_all(searcher, q, filters=Filters(tags=("speeches",)))) == \
        {"Inaugural address"}
    assert _titles(tools.search_all(searcher, q, filters=Filters(title="phone"))) == {"Phone call"}
    future = time.time() + 86400
    assert tools.search_all(searcher, q, filters=Filters(after=future)) == []
    assert tools.search_all(searcher, q, filters=Filters(before=future))
    assert _titles(tools.search_all(searcher, q, filters=Filters(
        recordings=("Inaugural address",)))) == {"Inaugural address"}
    assert tools.search_all(searcher, q, filters=Filters(speaker="Maria")) == []


def test_keywords_find_names_and_user_text_cannot_break_the_query(searcher: Searcher):
    moments = tools.search_all(searcher, "Sheila", k=3)
    assert "sheila" in moments[0].text.lower()
    assert match_expression('NEAR(" OR *) AND -- "') is None or \
        tools.search_all(searcher, 'NEAR(" OR *) AND -- "') is not None
    assert match_expression("security@northwind.example B-214") == \
        '"security@northwind.example" OR "b-214"'
    assert match_expression("what is the") is None


def test_query_variants_are_fused(searcher: Searcher):
    one = tools.search_all(searcher, "zzzz unrelated words", k=5)
    both = tools.search_all(searcher, ["zzzz unrelated words", "where is Sheila from"], k=5)
    assert any("sheila" in m.text.lower() for m in both)
    assert [m.text for m in one] != [m.text for m in both]


def test_no_two_moments_cover_the_same_stretch(searcher: Searcher):
    moments = tools.search_all(searcher, ["where is Sheila from", "Sheila Texas Chicago"], k=10)
    for i, a in enumerate(moments):
        for b in moments[i + 1:]:
            if a.media_id == b.media_id:
                shared = min(a.end, b.end) - max(a.start, b.start)
                assert shared <= 0.5 * min(a.end - a.start, b.end - b.start)


def test_match_rule_of_the_evaluation():
    m = Moment("x", "/a/b.wav", "B", 10.0, 14.0, 1.0, TRANSCRIPT, "")
    assert matches(m, {"media": "b.wav", "start": 10.5, "end": 14.5})  # IoU 0.78
    assert matches(m, {"media": "b.wav", "start": 8.0, "end": 12.0})  # half inside
    assert not matches(m, {"media": "b.wav", "start": 12.5, "end": 30.0})
    assert not matches(m, {"media": "c.wav", "start": 10.0, "end": 14.0})


def test_cli_eval_prints_metrics(searcher: Searcher, tmp_path: Path, run_cli):
    queries = tmp_path / "q.jsonl"
    queries.write_text("\n".join(json.dumps(q) for q in [
        {"id": "a", "query": "where is Sheila from",
         "expected": [{"media": "Phone call.wav", "start": 14.4, "end": 17.8}]},
        {"id": "b", "query": "what should Americans ask of their country",
         "expected": [{"media": "Inaugural address.flac", "start": 0.0, "end": 11.0}]},
    ]))
    assert len(load_queries(queries)) == 2
    out = run_cli("eval", str(queries), "--index", str(searcher.index.directory),
                  "--ablation").stdout
    assert "| fused (all modalities) | 2 |" in out and "Hit@1" in out
    fused = next(line for line in out.splitlines() if line.startswith("| fused"))
    assert float(fused.split("|")[4]) == 1.0  # Hit@5: both found
