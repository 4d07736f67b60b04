"""Retrieval tools on a real index: access groups below every tool, filters, keywords, eval."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from tantivy import Query

from clipcite.ingestion.batch import BatchOptions, run_batch
from clipcite.retrieval import tools
from clipcite.retrieval.encoders import load_text_encoder
from clipcite.retrieval.evaluation import load_queries, matches
from clipcite.retrieval.catalog import Catalog, Recording
from clipcite.retrieval.filters import Filters
from clipcite.retrieval.index import Index
from clipcite.retrieval.keyword import match_expression, query_terms
from clipcite.retrieval.migrations import SCHEMA_VERSION
from clipcite.retrieval.schema import SLIDES, TRANSCRIPT, Moment, Segment
from clipcite.retrieval.search import Searcher
from tests.conftest import REPO, copy_media

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
        '"security@northwind.example" OR "b-214" OR "b214"'
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


# -- search at scale: cached catalog, one keyword scan, lazily loaded hits ----------------------
class _HashEncoder:
    """A stand-in text encoder: a fixed unit vector per text (no model needed)."""

    name = "multilingual-e5-small"
    dim = 384

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self.embed_passages(texts)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        out = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            out.append(v / np.linalg.norm(v))
        return np.stack(out)


def _write(index: Index, media_id: str, lines: list[str], groups: list[str] = (),
           slides: list[str] = (), speakers: list[str] = ("Ann",)) -> Recording:
    from clipcite.ingestion.extract import Extraction
    from clipcite.ingestion.writer import write_recording

    enc = _HashEncoder()
    segments = {TRANSCRIPT: [Segment(TRANSCRIPT, 5.0 * i, 5.0 * i + 4, t,
                                     speaker=speakers[i % len(speakers)],
                                     speaker_label=speakers[i % len(speakers)])
                             for i, t in enumerate(lines)],
                SLIDES: [Segment(SLIDES, 5.0 * i, 5.0 * i + 4, t) for i, t in enumerate(slides)]}
    vectors = {m: enc.embed_passages([s.text for s in segs]) if segs else np.zeros((0, 384))
               for m, segs in segments.items()}
    extraction = Extraction(duration=5.0 * len(lines), title_tag=None, created_at=None,
                            segments=segments, vectors=vectors,
                            models={TRANSCRIPT: enc.name, SLIDES: enc.name}, notes=[], timings={})
    rec = Recording(media_id=media_id, path=f"/lib/{media_id}.wav", title=media_id.title(),
                    status="pending", recorded_at=1.7e9, groups=list(groups))
    return write_recording(index, rec, extraction)


SECRET_LINES = ["the merger code name is bluebird", "bluebird closes on friday"]
OPEN_LINES = ["lunch is at noon", "the printer on floor two is broken", "bluebird? no idea"]


@pytest.fixture()
def small(tmp_path: Path) -> Searcher:
    """Three recordings: one for the board only, two open (a staff caller sees 2 of 3 gens,
    so dense search takes the unfiltered query and drops the board's segments itself)."""
    index = Index(tmp_path / "index")
    _write(index, "secret", SECRET_LINES, groups=["board"], slides=["Bluebird: merger plan"])
    _write(index, "open1", OPEN_LINES, slides=["Agenda", "Agenda", "Printer status"])
    _write(index, "open2", OPEN_LINES[::-1], slides=["Agenda"])
    return Searcher(index, _HashEncoder())


def test_hyphenated_words_are_found_written_either_way(small: Searcher):
    index = small.index
    _write(index, "sec", ["report phishing at once"], slides=["E-mail: security@example.org"])
    _write(index, "it", ["never approve a sign in request you did not start"])
    gens = [r.gen for r in index.catalog.all() if r.gen]
    for query, media in [("which email address", "sec"), ("e-mail", "sec"),
                         ("signin request", "it"), ("sign-in", "it")]:
        found = small.keywords((TRANSCRIPT, SLIDES), query, 5, gens)
        ids = [h.id for hits in found.values() for h in hits]
        assert ids and ids[0].startswith(media + ":"), (query, ids)


def test_an_older_keyword_index_is_brought_up_to_date_when_opened(tmp_path: Path):
    from tests.fts5_index import as_fts5_index, stored_rows

    index = Index(tmp_path / "index")
    _write(index, "sec", ["report phishing at once"], slides=["E-mail: security@example.org"])
    gens = [r.gen for r in index.catalog.all() if r.gen]
    rows = stored_rows(index)
    index.catalog.close()
    # As an index written before keyword format 2 (rows as written, no joined forms; its own
    # version table; schema version 3) and before tantivy (FTS5 in the catalog file).
    as_fts5_index(tmp_path / "index", rows, schema_version=3)
    db = sqlite3.connect(str(tmp_path / "index" / "catalog.sqlite3"), isolation_level=None)
    db.execute("UPDATE segment_text SET text = 'E-mail: security@example.org'"
               " WHERE modality = 'slides'")
    db.execute("CREATE TABLE keyword_version (version INTEGER NOT NULL)")
    reopened = Index(tmp_path / "index").keywords  # opening applies the migrations
    assert [i for i, _ in reopened.search("email", SLIDES, gens, 5)] == \
        [i for i, _ in reopened.search("e-mail", SLIDES, gens, 5)]
    assert reopened.search("email", SLIDES, gens, 5)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'keyword_version'").fetchone()


def test_visible_cache_follows_ingest_delete_and_access_changes(small: Searcher, tmp_path: Path):
    index = small.index
    staff = frozenset({"staff"})
    assert [r.media_id for r in index.catalog.visible(staff)] == ["open1", "open2"]
    assert index.catalog.generation_count() == 3
    secret = index.catalog.get("secret")
    index.set_access(secret, [], ["staff"])  # set_access: now staff may see it
    assert {r.media_id for r in index.catalog.visible(staff)} == {"open1", "open2", "secret"}
    index.set_access(index.catalog.get("secret"), [], ["board"])
    assert "secret" not in {r.media_id for r in index.catalog.visible(staff)}
    old_gen = index.catalog.get("open1").gen
    _write(index, "open1", ["a new take of the meeting"])  # re-ingest: a new generation
    assert index.catalog.get("open1").gen != old_gen
    assert {r.gen for r in index.catalog.visible()} == \
        {r.gen for r in index.catalog.all() if r.gen}
    assert index.remove_recording("open2")  # delete
    assert [r.media_id for r in index.catalog.visible(staff)] == ["open1"]
    assert index.catalog.generation_count() == 2
    # Another connection (another process: ingest, CLI) writing the same catalog file.
    other = Catalog(index.catalog.path)
    other.update_access("secret", [], [])
    assert {r.media_id for r in index.catalog.visible(staff)} == {"open1", "secret"}
    other.remove("secret")
    assert [r.media_id for r in index.catalog.visible(staff)] == ["open1"]
    other.close()


class _NoReads:
    """A collection whose segments cannot be read: only its own count() answers."""

    def __init__(self, collection) -> None:
        self._collection = collection

    def count(self) -> int:
        return self._collection.count()

    def __getattr__(self, name: str):
        raise AssertionError(f"Index.count read the collection ({name})")


def test_count_reads_no_segment(small: Searcher):
    """Index.count answers from Chroma's own count or the catalog's counts, never by reading
    every id (it read them all to count)."""
    index = small.index
    gens = {r.media_id: r.gen for r in index.catalog.all()}
    stored = {m: index.collection(m).get(include=[])["ids"] for m in (TRANSCRIPT, SLIDES)}
    secret = [i for i in stored[TRANSCRIPT] if i.startswith("secret:")]
    for modality in stored:
        index._collections[modality] = _NoReads(index.collection(modality))
    assert {m: index.count(m) for m in stored} == {m: len(ids) for m, ids in stored.items()}
    assert index.count(TRANSCRIPT, [gens["secret"]]) == len(secret) == 2
    assert index.count(TRANSCRIPT, list(gens.values())) == len(stored[TRANSCRIPT]) == 8
    assert index.count(SLIDES, [gens["open1"], gens["open2"]]) == 4
    assert index.count(TRANSCRIPT, []) == 0 and index.count(TRANSCRIPT, ["no-such-gen"]) == 0


def test_modifying_a_returned_recording_cannot_widen_access(small: Searcher):
    catalog = small.index.catalog
    staff = frozenset({"staff"})
    for rec in catalog.visible():
        rec.groups.clear()  # a careless caller; the cache keeps the groups it read
    assert "secret" not in {r.media_id for r in catalog.visible(staff)}
    assert "secret" not in {m.media_id for m in tools.search_all(
        small, "bluebird merger code name", k=10, filters=Filters(groups=staff))}


@pytest.mark.parametrize("tool", [tools.search_all, tools.search_transcript,
                                  tools.search_slides])
def test_lazily_loaded_search_never_returns_other_groups(small: Searcher, tool):
    staff = Filters(groups=frozenset({"staff"}))
    for query in (SECRET_LINES[0], "bluebird", "Bluebird: merger plan"):
        moments = tool(small, [query, "merger"], k=10, filters=staff)
        assert all(m.media_id != "secret" and "merger" not in m.text for m in moments)
        for speaker in (None, "Ann"):
            filters = Filters(groups=staff.groups, speaker=speaker)
            assert all(m.media_id != "secret" for m in tool(small, query, k=10, filters=filters))
    assert tools.search_all(small, SECRET_LINES[0], k=1)[0].media_id == "secret"  # can fail


def test_hits_are_loaded_only_from_allowed_generations(small: Searcher):
    index = small.index
    gens = [r.gen for r in index.catalog.visible()]
    vector = _HashEncoder().embed_queries([SECRET_LINES[0]])[0]
    lazy = index.query(TRANSCRIPT, vector, 4, gens, hydrate=False)
    assert lazy and not any(h.loaded for h in lazy)
    loaded = index.query(TRANSCRIPT, vector, 4, gens)
    assert [h.id for h in index.hydrate(lazy, set(gens))] == [h.id for h in loaded]
    assert all(h.text and h.metadata["gen"] in gens for h in loaded)
    secret_gen = index.catalog.get("secret").gen
    others = set(gens) - {secret_gen}
    assert all(h.metadata["gen"] != secret_gen for h in index.hydrate(
        index.query(TRANSCRIPT, vector, 4, gens, hydrate=False), others))


def test_one_keyword_call_equals_a_filtered_query_per_modality(small: Searcher):
    """search_modalities, whether it post-filters (a large share of the generations) or
    filters in the query (a small one), gives each modality what one query filtered by that
    modality and those generations gives, scores and ties included."""
    keywords = small.index.keywords
    engine = keywords._engine
    gens = [r.gen for r in small.index.catalog.visible()]
    for query in ("bluebird agenda printer", "agenda", "broken printer noon", "nothing"):
        text = engine.text_query(query_terms(query))
        for allowed in (gens, gens[:1], gens[1:]):
            for k in (1, 2, 10):
                for share in (1.0, len(allowed) / len(gens), 0.0):
                    both = keywords.search_modalities(query, (TRANSCRIPT, SLIDES), allowed, k,
                                                      share)
                    for modality in (TRANSCRIPT, SLIDES):
                        expected = [] if text is None else [
                            (i, s) for i, g, s in engine._run(engine._searcher(), [
                                text, engine._filter(Query.term_query(
                                    engine.schema, "modality", modality)),
                                engine._filter(Query.term_set_query(
                                    engine.schema, "gen", allowed))], k)]
                        assert both[modality] == expected, (query, allowed, k, share)
                        assert keywords.search(query, modality, allowed, k, share) == expected


def test_query_sets_split_by_recording_into_a_tuning_and_a_check_half():
    from clipcite.retrieval.evaluation import by_half, half_of, load_queries, load_split

    split = load_split(REPO / "eval" / "dev_split.json")
    queries = load_queries(REPO / "eval" / "dev_queries.jsonl")
    halves = by_half(queries, split)
    assert sum(len(qs) for qs in halves.values()) == len(queries)
    assert halves["tune"] and halves["check"]
    for half, qs in halves.items():  # a recording's queries are all in its own half
        assert {split[q.expected[0]["media"]] for q in qs} == {half}
    # An absent-topic question expects nothing: its half comes from its id, fixed.
    assert half_of([], "absent-1", split) == "tune" and half_of([], "absent-2", split) == "check"


def test_segments_store_their_own_fields_and_are_read_with_the_catalogs(small: Searcher):
    """Chroma keeps a segment's own fields only (each stored value costs the write at scale);
    every read adds its recording's from the catalog, so a change of access shows at once
    and no segment is rewritten."""
    index = small.index
    rec = index.catalog.get("secret")
    stored = index.collection(TRANSCRIPT).get(where={"gen": rec.gen}, include=["metadatas"])
    assert stored["ids"] and all(set(m) == {"start", "end", "speaker", "speaker_label", "gen"}
                                 for m in stored["metadatas"])
    read = index.by_ids(TRANSCRIPT, stored["ids"])
    assert {(h.metadata["media_id"], h.metadata["title"], h.metadata["path"],
             tuple(h.metadata["groups"]), h.metadata["modality"]) for h in read.values()} \
        == {("secret", "Secret", "/lib/secret.wav", ("board",), TRANSCRIPT)}
    index.set_access(rec, ["legal"], ["board", "legal"])
    assert all(h.metadata["groups"] == ["board", "legal"] and h.metadata["tags"] == ["legal"]
               for h in index.segments(TRANSCRIPT, [rec.gen]))
    after = index.collection(TRANSCRIPT).get(ids=stored["ids"], include=["metadatas"])
    assert after["metadatas"] == stored["metadatas"]
