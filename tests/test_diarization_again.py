"""`ingest --again` re-diarizes a recording (e.g. with another speaker model) and keeps the
names users confirmed where the new turns overlap the old ones (issue #19, item 6)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from clipcite.retrieval.catalog import Recording
from clipcite.retrieval.migrations import migrate
from clipcite.retrieval.speakers import SpeakerInput, SpeakerStore, carried_names
from tests.conftest import ARTIFACTS, copy_media


def test_a_new_speaker_takes_the_name_that_covers_most_of_its_speech() -> None:
    old = [(0.0, 10.0, "Maria"), (10.0, 20.0, "Ken"), (20.0, 30.0, "Maria")]
    # The new diarization cut the recording differently and numbered the speakers otherwise.
    new = [(0.5, 9.0, "Speaker 2"), (10.2, 19.5, "Speaker 1"), (20.5, 29.0, "Speaker 2"),
           (29.0, 31.0, "Speaker 3")]
    assert carried_names(old, new) == {"Speaker 2": "Maria", "Speaker 1": "Ken"}


def test_a_name_goes_to_one_speaker_and_only_with_enough_overlap() -> None:
    old = [(0.0, 10.0, "Maria")]
    # Two new speakers inside Maria's old turn: the one it covers more keeps the name.
    new = [(0.0, 6.0, "Speaker 1"), (6.0, 10.0, "Speaker 2")]
    assert carried_names(old, new) == {"Speaker 1": "Maria"}
    # A new speaker mostly outside the named turns gets no name (a wrong name is worse).
    assert carried_names(old, [(8.0, 20.0, "Speaker 1")]) == {}
    assert carried_names([], new) == {}


def _store(tmp_path: Path) -> tuple[SpeakerStore, sqlite3.Connection]:
    db = sqlite3.connect(tmp_path / "catalog.db", isolation_level=None)
    migrate(db)
    return SpeakerStore(db), db


def test_confirmed_turns_and_carry(tmp_path: Path) -> None:
    store, db = _store(tmp_path)
    vec = np.ones(192, dtype=np.float32) / np.sqrt(192)
    store.add_generation("g1", [(0.0, 5.0, "Speaker 1"), (5.0, 9.0, "Speaker 2")], [
        SpeakerInput("Speaker 1", 5.0, vec, "Maria", None, confirmed=True),
        SpeakerInput("Speaker 2", 4.0, vec, "Ken", 0.97)])  # suggested only: not carried
    old = Recording("m1", "/a/1.wav", "One", "indexed", gen="g1")
    assert store.confirmed_turns(old) == [(0.0, 5.0, "Maria")]
    assert store.confirmed_turns(None) == []

    store.add_generation("g2", [(0.0, 4.0, "Speaker 1"), (4.0, 9.0, "Speaker 2")], [
        SpeakerInput("Speaker 1", 4.0, vec, "Maria", 0.97),  # a voice suggestion elsewhere
        SpeakerInput("Speaker 2", 5.0, vec)])
    new = Recording("m1", "/a/1.wav", "One", "indexed", gen="g2")
    carried = carried_names(store.confirmed_turns(old), [(0.0, 4.0, "Speaker 2"),
                                                          (4.0, 9.0, "Speaker 1")])
    assert carried == {"Speaker 2": "Maria"}
    # The carried name is confirmed; the voice suggestion of the same name gives way.
    assert store.carry(new, carried) == ["Speaker 1"]
    rows = dict(((label, (name, status)) for label, name, status in db.execute(
        "SELECT label, name, status FROM speakers WHERE gen='g2'")))
    assert rows == {"Speaker 2": ("Maria", "confirmed"), "Speaker 1": (None, None)}


@pytest.mark.slow
def test_ingest_again_with_another_speaker_model_keeps_confirmed_names(run_cli, tmp_path: Path,
                                                                       ) -> None:
    from eval.meetings import MEETINGS, build_all

    spec = tuple(s for s in MEETINGS if s.name == "meeting-3b")
    wav, rttm = build_all(ARTIFACTS / "meetings", spec)[0]
    index, library = tmp_path / "index", tmp_path / "library"
    media = copy_media(wav, library)
    run_cli("ingest", str(media), "--index", str(index), "--speaker-model", "resemblyzer")
    first = json.loads(run_cli("speakers", "meeting-3b", "--json", "--index", str(index)).stdout)
    label = max(first["speakers"], key=lambda s: s["seconds"])["label"]
    run_cli("speakers", "rename", "meeting-3b", label, "Pat", "--index", str(index))
    named = [(t["start"], t["end"]) for t in first["turns"] if t["speaker"] == label]

    run_cli("ingest", str(media), "--again", "--index", str(index), "--speaker-model", "campplus")
    again = json.loads(run_cli("speakers", "meeting-3b", "--json", "--index", str(index)).stdout)
    pats = [s for s in again["speakers"] if s["name"] == "Pat"]
    assert len(pats) == 1 and pats[0]["status"] == "confirmed"
    # Pat's new turns lie mostly inside Pat's old ones.
    mine = [(t["start"], t["end"]) for t in again["turns"] if t["speaker"] == "Pat"]
    inside = sum(max(0.0, min(b, y) - max(a, x)) for a, b in mine for x, y in named)
    assert inside >= 0.5 * sum(b - a for a, b in mine)
    hits = json.loads(run_cli("search", "the budget", "--speaker", "Pat", "--json",
                              "--index", str(index)).stdout)["results"]
    assert all(h["speaker"] == "Pat" for h in hits)
