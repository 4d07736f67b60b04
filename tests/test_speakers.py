"""Speakers end to end: diarized ingest, turns, renaming, names carried by voice, export.

Generated meetings (eval/meetings.py: espeak-ng voices with known turns) are ingested with the
real models through the CLI, as a user would.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import srt
import webvtt

from tests.conftest import ARTIFACTS, copy_media


@pytest.fixture(scope="module")
def meetings() -> dict[str, tuple[Path, Path]]:
    from eval.meetings import MEETINGS, build_all

    specs = tuple(s for s in MEETINGS if s.name in ("meeting-2a", "meeting-2b"))
    built = build_all(ARTIFACTS / "meetings", specs)
    return {wav.stem: (wav, rttm) for wav, rttm in built}


def _truth(rttm: Path) -> list[tuple[float, float, str]]:
    rows = [line.split() for line in rttm.read_text().splitlines() if line.strip()]
    return [(float(r[3]), float(r[3]) + float(r[4]), r[7]) for r in rows]


def _who(turns: list[dict], truth: list[tuple[float, float, str]]) -> dict[str, str]:
    """Each found speaker's true voice: the one it overlaps most."""
    overlap: dict[tuple[str, str], float] = {}
    for t in turns:
        for s, e, name in truth:
            shared = min(t["end"], e) - max(t["start"], s)
            if shared > 0:
                key = (t["speaker"], name)
                overlap[key] = overlap.get(key, 0.0) + shared
    best: dict[str, tuple[str, float]] = {}
    for (found, name), seconds in overlap.items():
        if seconds > best.get(found, ("", 0.0))[1]:
            best[found] = (name, seconds)
    return {found: name for found, (name, _) in best.items()}


def _speakers(run_cli, index: Path, recording: str) -> dict:
    return json.loads(run_cli("speakers", recording, "--json", "--index", str(index)).stdout)


def test_speakers_named_carried_searched_and_exported(run_cli, meetings, tmp_path: Path) -> None:
    index = tmp_path / "index"
    library = tmp_path / "library"
    first = copy_media(meetings["meeting-2a"][0], library)
    run_cli("ingest", str(first), "--index", str(index))

    found = _speakers(run_cli, index, "meeting-2a")
    assert [s["label"] for s in found["speakers"]] == ["Speaker 1", "Speaker 2"]
    assert all(s["name"] is None for s in found["speakers"])
    who = _who(found["turns"], _truth(meetings["meeting-2a"][1]))
    assert sorted(who.values()) == ["Alan", "Beth"]
    beth = next(label for label, name in who.items() if name == "Beth")

    # Name Beth; the stored segments show the name at once (no re-ingest).
    out = run_cli("speakers", "rename", "meeting-2a", beth, "Beth", "--index", str(index))
    assert '"Beth"' in out.stdout
    found = _speakers(run_cli, index, "meeting-2a")
    named = {s["label"]: (s["name"], s["status"]) for s in found["speakers"]}
    assert named[beth] == ("Beth", "confirmed")
    hits = json.loads(run_cli("search", "the budget", "--speaker", "Beth", "--json",
                              "--index", str(index)).stdout)["results"]
    assert hits and {h["speaker"] for h in hits} == {"Beth"}

    # A second meeting: Beth's voice is recognised and suggested; Evan stays unnamed.
    second = copy_media(meetings["meeting-2b"][0], library)
    run_cli("ingest", str(second), "--index", str(index))
    found = _speakers(run_cli, index, "meeting-2b")
    who = _who(found["turns"], _truth(meetings["meeting-2b"][1]))
    status = {who[s["name"] or s["label"]]: (s["name"], s["status"]) for s in found["speakers"]}
    assert status["Beth"] == ("Beth", "suggested")
    assert status["Evan"] == (None, None)
    hits = json.loads(run_cli("search", "weekly update", "--speaker", "Beth", "--k", "20",
                              "--json", "--index", str(index)).stdout)["results"]
    assert {h["title"] for h in hits} == {"Meeting 2a", "Meeting 2b"}

    # Export: the names are in the captions and subtitles, times parse back.
    vtt = run_cli("export", "meeting-2b", "--format", "vtt", "--index", str(index)).stdout
    captions = webvtt.from_buffer(io.StringIO(vtt))
    assert "Beth" in {c.voice for c in captions} and len(captions) >= 6
    target = tmp_path / "m.srt"
    run_cli("export", "meeting-2b", "--format", "srt", "-o", str(target), "--index", str(index))
    subs = list(srt.parse(target.read_text()))
    assert len(subs) == len(captions)
    assert all(a.start <= b.start for a, b in zip(subs, subs[1:]))
    rttm = run_cli("speakers", "meeting-2b", "--rttm", "--index", str(index)).stdout
    rows = [line.split() for line in rttm.splitlines()]
    assert rows and all(r[0] == "SPEAKER" and len(r) == 10 for r in rows)
    assert "Beth" in {r[7] for r in rows}

    # Mistakes get a sentence, not a traceback.
    bad = run_cli("speakers", "rename", "meeting-2b", "Speaker 9", "X", "--index", str(index),
                  check=False)
    assert bad.returncode == 2 and "no speaker" in bad.stderr + bad.stdout
    other = next(s["label"] for s in found["speakers"] if s["name"] is None)
    clash = run_cli("speakers", "rename", "meeting-2b", other, "beth", "--index", str(index),
                    check=False)
    assert clash.returncode == 2 and "already names another speaker" in clash.stderr + clash.stdout


def test_voices_lend_names_only_to_recordings_with_the_same_audience(tmp_path: Path) -> None:
    from clipcite.retrieval.catalog import Recording
    from clipcite.retrieval.index import Index
    from clipcite.retrieval.speakers import SpeakerInput, SpeakerStore

    index = Index(tmp_path / "index")
    store = SpeakerStore(index.catalog.connection)
    voice = np.ones(4, dtype=np.float32) / 2
    for n, groups in enumerate(([], ["hr"])):
        rec = Recording(media_id=f"m{n}", path=f"/r{n}.wav", title=f"R{n}", status="indexed",
                        groups=groups, gen=f"g{n}")
        index.catalog.begin_generation(rec.gen)
        store.add_generation(rec.gen, [(0.0, 5.0, "Speaker 1")],
                             [SpeakerInput("Speaker 1", 5.0, voice)])
        index.catalog.commit_generation(rec)
        store.set_name(rec, "Speaker 1", f"Name{n}")
    assert set(store.voices([])) == {"Name0"}  # a public recording: public names only
    assert set(store.voices(["hr"])) == {"Name0", "Name1"}
    assert set(store.voices(["hr", "sales"])) == {"Name0"}  # sales may not see the hr one
    # A replaced generation's rows go; the visible one's stay.
    index.catalog.begin_generation("g9")
    store.add_generation("g9", [(0.0, 1.0, "Speaker 1")], [SpeakerInput("Speaker 1", 1.0, voice)])
    rec = index.catalog.get("m0")
    rec.gen = "g9"
    index.catalog.commit_generation(rec)
    assert store.forget_unused() == 1
    assert [t.speaker for t in store.turns(index.catalog.get("m0"))] == ["Speaker 1"]
