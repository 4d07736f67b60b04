"""Dense search over a part of the archive takes one of three paths (Index._nearest): scored
from the selection's own vectors, an unfiltered query with head-room, or Chroma's pre-filter.
Each must give the exact nearest segments of the selection, and nothing outside it (access
groups are a security boundary)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clipcite.retrieval import index as index_module
from clipcite.retrieval.filters import Filters, visible_recordings
from clipcite.retrieval.index import Index
from clipcite.retrieval.schema import SLIDES, TRANSCRIPT
from clipcite.retrieval.search import Searcher, search
from tests.test_retrieval import _HashEncoder, _write

TOPICS = ["budget", "printer", "launch", "hiring", "security"]
SPEAKERS = ["Ann", "Bo", "Cy"]
# Each path forced by its limits: ids (any selection under half the archive is "small"),
# head-room (no selection is small), pre-filter (no head-room either).
PATHS = {"ids": {"EXACT_SEGMENTS": 100_000},
         "headroom": {"EXACT_SEGMENTS": 0},
         "prefilter": {"EXACT_SEGMENTS": 0, "MAX_FETCH": 1}}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Searcher:
    """12 recordings in 4 access groups, 10 lines each by 3 speakers, 2 slides each."""
    index = Index(tmp_path_factory.mktemp("archive") / "index")
    for n in range(12):
        lines = [f"line {i} of meeting {n} on the {TOPICS[(n + i) % 5]}" for i in range(10)]
        _write(index, f"rec{n:02d}", lines, groups=[f"team{n % 4}"],
               slides=[f"{TOPICS[n % 5]} plan {n}", f"owner of {n}"], speakers=SPEAKERS)
    return Searcher(index, _HashEncoder())


def _exact(index: Index, modality: str, vector: np.ndarray, k: int, gens: list[str],
           speaker: str | None) -> list[str]:
    """The true nearest k by cosine distance, from every stored vector of the generations."""
    res = index.collection(modality).get(where={"gen": {"$in": gens}},
                                         include=["embeddings", "metadatas"])
    kept = [(i, e) for i, e, m in zip(res["ids"], res["embeddings"], res["metadatas"])
            if speaker is None or m.get("speaker") == speaker]
    if not kept:  # slides have no speaker
        return []
    vectors = np.asarray([e for _, e in kept], dtype=np.float64)
    distance = 1 - vectors @ vector / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(vector))
    return [kept[i][0] for i in np.argsort(distance, kind="stable")[:k]]


SELECTIONS = {
    "one group (a quarter)": Filters(groups=frozenset({"team1"})),
    "two groups (half)": Filters(groups=frozenset({"team1", "team2"})),
    "one recording": Filters(recordings=("rec05",)),
    "one speaker": Filters(speaker="Bo"),
    "a group and a speaker": Filters(groups=frozenset({"team3"}), speaker="Cy"),
    "no group": Filters(groups=frozenset({"nobody"})),
}


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("name", sorted(SELECTIONS))
def test_each_path_finds_the_exact_nearest_of_the_selection_and_nothing_else(
        archive: Searcher, monkeypatch: pytest.MonkeyPatch, path: str, name: str):
    for limit, value in PATHS[path].items():
        monkeypatch.setattr(index_module, limit, value)
    index, filters = archive.index, SELECTIONS[name]
    recordings = visible_recordings(index, filters)
    gens = [r.gen for r in recordings if r.gen]
    where = {"speaker": filters.speaker} if filters.speaker else None
    for query in ("budget plan", "who owns the printer", "meeting 7"):
        vector = archive.text.embed_queries([query])[0]
        for modality in (TRANSCRIPT, SLIDES):
            hits = index.query(modality, vector, 5, gens, where)
            assert all(h.metadata["gen"] in gens for h in hits)
            if where:
                assert all(h.metadata["speaker"] == filters.speaker for h in hits)
            expected = _exact(index, modality, vector, 5, gens, filters.speaker) if gens else []
            assert [h.id for h in hits] == expected, (path, name, query, modality)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_a_restricted_caller_gets_the_same_moments_on_every_path_and_only_theirs(
        archive: Searcher, monkeypatch: pytest.MonkeyPatch, path: str):
    for limit, value in PATHS[path].items():
        monkeypatch.setattr(index_module, limit, value)
    team = Filters(groups=frozenset({"team2"}))
    mine = {r.media_id for r in visible_recordings(archive.index, team)}
    assert mine == {"rec02", "rec06", "rec10"}
    for query in ("budget plan", "owner of 6", "line 3 of meeting 10"):
        moments = search(archive, query, k=5, filters=team)
        assert moments and {m.media_id for m in moments} <= mine
        with monkeypatch.context() as reference:  # the pre-filter alone, as before
            reference.setattr(index_module, "EXACT_SEGMENTS", 0)
            reference.setattr(index_module, "MAX_FETCH", 1)
            assert [(m.media_id, m.start) for m in search(archive, query, k=5, filters=team)] \
                == [(m.media_id, m.start) for m in moments]


def test_a_selection_whose_segments_were_deleted_meanwhile_is_still_searched(tmp_path: Path):
    """The catalog's ids of a generation replaced (and deleted) since it was read: only those
    still stored are scored, and nothing fails."""
    index = Index(tmp_path / "index")
    rec = _write(index, "rec00", [f"line {i} on the budget" for i in range(6)])
    for other in ("rec01", "rec02"):  # rec00 is a third of the archive: searched by its ids
        _write(index, other, [f"{other} line {i}" for i in range(6)])
    searcher = Searcher(index, _HashEncoder())
    vector = searcher.text.embed_queries(["budget"])[0]
    gone = index.catalog.segment_ids(TRANSCRIPT, [rec.gen])[:2]
    index.collection(TRANSCRIPT).delete(ids=gone)
    hits = index.query(TRANSCRIPT, vector, 10, [rec.gen])
    assert sorted(h.id for h in hits) == sorted(
        set(index.catalog.segment_ids(TRANSCRIPT, [rec.gen])) - set(gone))


def test_who_said_which_segment_is_recorded_follows_renames_and_is_filled_in_for_old_ones(
        tmp_path: Path):
    """A search for one speaker's words scores the segments the speaker store says they said
    (retrieval/speakers.py speaker_segments), so the record must follow every rename, and an
    index written before it was kept gets it when opened."""
    index = Index(tmp_path / "index")
    rec = _write(index, "rec00", [f"line {i} on the budget" for i in range(6)],
                 speakers=["Ann", "Bo"])
    _write(index, "rec01", [f"other line {i}" for i in range(4)], speakers=["Bo"])
    said = index.speakers.segments_of("Ann", [rec.gen])
    assert said is not None and said[rec.gen].tolist() == [0, 2, 4]

    index.set_speaker(rec, "Bo", "Bea")
    renamed = index.speakers.segments_of("Bea", [rec.gen])
    assert renamed is not None and renamed[rec.gen].tolist() == [1, 3, 5]
    assert index.speakers.segments_of("Bo", [rec.gen]) == {}
    searcher = Searcher(index, _HashEncoder())
    found = search(searcher, "budget", k=5, filters=Filters(speaker="Bea"))
    assert found and all(m.media_id == "rec00" and m.speaker == "Bea" for m in found)

    silent = _write(index, "rec02", [], slides=["Agenda"])  # no speech, and still recorded
    gens = {r.media_id: r.gen for r in index.catalog.all() if r.gen}
    assert index.speakers.segments_of("Ann", gens.values()) is not None

    index.catalog.connection.execute("DELETE FROM speaker_segments")  # as an older index
    assert index.speakers.segments_of("Bea", gens.values()) is None  # Chroma filters instead
    assert [m.start for m in search(searcher, "budget", k=5, filters=Filters(speaker="Bea"))] \
        == [m.start for m in found]
    reopened = Index(tmp_path / "index")
    assert reopened.speakers.unmapped(gens.values()) == []
    again = reopened.speakers.segments_of("Bea", gens.values())
    assert again is not None and again[rec.gen].tolist() == [1, 3, 5]
    assert reopened.speakers.segments_of("Bo", gens.values())[gens["rec01"]].tolist() \
        == [0, 1, 2, 3]
    assert silent.gen not in reopened.speakers.segments_of("Bo", gens.values())
