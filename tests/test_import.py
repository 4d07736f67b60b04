"""Importing existing transcripts end to end: a .vtt/.srt on its own, and as a recording's
sidecar (its words and speakers instead of speech recognition), into a real index."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from clipcite.ingestion.batch import BatchOptions, run_batch
from clipcite.retrieval.encoders import load_text_encoder
from clipcite.retrieval.filters import Filters
from clipcite.retrieval.index import Index
from clipcite.retrieval.schema import PASSAGES, TRANSCRIPT
from clipcite.retrieval.search import Searcher, search
from clipcite.retrieval.speakers import CONFIRMED
from tests.conftest import REPO, copy_media

DATA = REPO / "tests" / "data"

MEETING_VTT = """WEBVTT

1
00:00:01.000 --> 00:00:06.500
<v Maria Lopez>Welcome everyone. Today we decide the launch date for the Falcon app.</v>

2
00:00:07.000 --> 00:00:15.000
<v Tom Becker>Engineering can ship on the twelfth of March if the payment provider signs off this week. We still need the security review.</v>

3
00:00:15.500 --> 00:00:21.000
<v Maria Lopez>Then we choose the twelfth of March. Tom, you own the security review.</v>
"""

# JFK's words as a sidecar transcript, with one word he never said ("marmalade"): found only
# if the sidecar, not speech recognition, gave the recording its words.
JFK_VTT = """WEBVTT

00:00:00.000 --> 00:00:04.000
<v John Kennedy>And so, my fellow Americans, ask not what your marmalade can do for you,

00:00:04.000 --> 00:00:11.000
<v John Kennedy>ask what you can do for your country.
"""


@pytest.fixture(scope="module")
def text_encoder():
    return load_text_encoder()


def _searcher(index: Index, encoder) -> Searcher:
    return Searcher(index=index, text=encoder)


def test_transcript_alone_is_a_searchable_recording(tmp_path: Path, extract_options,
                                                    text_encoder):
    (tmp_path / "launch-planning.vtt").write_text(MEETING_VTT, encoding="utf-8")
    index = Index(tmp_path / "index")
    [outcome] = run_batch([tmp_path / "launch-planning.vtt"], index,
                          BatchOptions(extract=extract_options))
    assert outcome.status == "indexed", outcome.reason
    assert "transcript only" in outcome.reason
    rec = index.catalog.all()[0]
    assert rec.title == "Launch planning" and rec.duration == pytest.approx(21.0)
    assert rec.models["speech"] == "transcript file launch-planning.vtt"
    assert rec.counts[TRANSCRIPT] >= 4 and rec.counts[PASSAGES] >= 1
    # Speakers are the transcript's names, confirmed (renames and voice matching trust them).
    speakers = {s.label: s for s in index.speakers.speakers(rec)}
    assert set(speakers) == {"Maria Lopez", "Tom Becker"}
    assert all(s.status == CONFIRMED and s.name == s.label for s in speakers.values())

    [top] = search(_searcher(index, text_encoder), "who owns the security review?", k=1)
    assert top.speaker == "Maria Lopez" and "you own the security review" in top.text
    assert 15.5 <= top.start < top.end <= 21.0  # cited inside the cue that says it
    hits = search(_searcher(index, text_encoder), "what did Tom say the payment provider must do",
                  k=3, filters=Filters(speaker="Tom Becker"))
    assert hits and all(m.speaker == "Tom Becker" for m in hits)


def test_sidecar_replaces_speech_recognition(media: Path, tmp_path: Path, extract_options,
                                            text_encoder):
    lib = tmp_path / "lib"
    copy_media(media / "jfk.flac", lib)
    sidecar = lib / "jfk.vtt"
    sidecar.write_text(JFK_VTT, encoding="utf-8")
    index = Index(tmp_path / "index")
    options = BatchOptions(extract=extract_options)
    outcomes = run_batch([lib], index, options)  # the folder: the .vtt is no recording of its own
    assert [(Path(o.path).name, o.status) for o in outcomes] == [("jfk.flac", "indexed")]
    rec = index.catalog.get(outcomes[0].media_id)
    assert rec.models["speech"] == "transcript file jfk.vtt"
    [top] = search(_searcher(index, text_encoder), "marmalade", k=1)
    assert "marmalade" in top.text and top.speaker == "John Kennedy"
    # The named speaker gets a voice print from the audio of their turns.
    assert index.speakers.voices() and "John Kennedy" in index.speakers.voices()

    assert run_batch([lib], index, options)[0].status == "unchanged"
    sidecar.write_text(JFK_VTT.replace("marmalade", "country"), encoding="utf-8")
    assert run_batch([lib], index, options)[0].status == "indexed"  # only the sidecar changed
    assert "marmalade" not in " ".join(
        m.text for m in search(_searcher(index, text_encoder), "marmalade", k=3))

    # A broken sidecar: the media is still indexed, by speech recognition, and the note says so.
    sidecar.write_text("WEBVTT\n\n00:00:xx.000 --> 00:00:04.000\nask not\n", encoding="utf-8")
    [again] = run_batch([lib], index, options)
    assert again.status == "indexed"
    assert "jfk.vtt not used" in again.reason and "speech recognised instead" in again.reason
    rec = index.catalog.get(again.media_id)
    assert rec.models["speech"] != "transcript file jfk.vtt"
    assert "country" in " ".join(m.text for m in search(_searcher(index, text_encoder),
                                                        "ask not what your country", k=2))


def test_speech_setting_ignores_the_sidecar(media: Path, tmp_path: Path, extract_options):
    lib = tmp_path / "lib"
    copy_media(media / "jfk.flac", lib)
    (lib / "jfk.vtt").write_text(JFK_VTT, encoding="utf-8")
    index = Index(tmp_path / "index")
    speech = dataclasses.replace(extract_options, transcript_source="speech", diarize=False)
    outcomes = run_batch([lib], index, BatchOptions(extract=speech))
    # The transcript still belongs to the recording (no duplicate of it); it is just not used.
    assert [Path(o.path).name for o in outcomes] == ["jfk.flac"]
    [rec] = index.catalog.all()
    assert "transcript file" not in rec.models["speech"]


def test_bad_transcripts_fail_alone_with_a_reason(tmp_path: Path, extract_options):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "good.srt").write_text("1\n00:00:01,000 --> 00:00:03,000\nThe budget is approved.\n",
                                  encoding="utf-8")
    (lib / "binary.vtt").write_bytes(b"WEBVTT\n\n\x00\x01\x02\xff")
    (lib / "empty.srt").write_text("", encoding="utf-8")
    (lib / "order.srt").write_text(
        "1\n00:00:09,000 --> 00:00:10,000\nlater\n\n2\n00:00:01,000 --> 00:00:02,000\nearlier\n",
        encoding="utf-8")
    index = Index(tmp_path / "index")
    outcomes = {Path(o.path).name: o for o in
                run_batch([lib], index, BatchOptions(extract=extract_options))}
    assert outcomes["good.srt"].status == "indexed"
    for name in ("binary.vtt", "empty.srt", "order.srt"):
        assert outcomes[name].status == "failed" and outcomes[name].reason, name
        assert "\n" not in outcomes[name].reason
    assert [r.title for r in index.catalog.visible()] == ["Good"]


def test_cli_transcript_flag_and_real_meeting(run_cli, media: Path, tmp_path: Path):
    """A real QMSum meeting excerpt (AMI, speakers by role) through the installed CLI."""
    index = tmp_path / "index"
    real = DATA / "qmsum_excerpt.vtt"
    out = run_cli("ingest", str(real), "--index", str(index))
    assert "indexed" in out.stdout
    found = json.loads(run_cli("search", "what did they say about the remote control's buttons",
                               "--k", "5", "--json", "--index", str(index)).stdout)["results"]
    assert found and all(m["path"].endswith("qmsum_excerpt.vtt") for m in found)
    assert any("button" in m["text"].lower() for m in found)
    # --recording takes the file's stem as well as the title ("Qmsum excerpt") and the id; a
    # name that matches no recording is an error, not an empty result.
    by_stem = json.loads(run_cli("search", "buttons", "--recording", "qmsum_excerpt", "--json",
                                 "--index", str(index)).stdout)["results"]
    assert by_stem and {m["media_id"] for m in by_stem} == {found[0]["media_id"]}
    missing = run_cli("search", "buttons", "--recording", "covid_4", "--index", str(index),
                      check=False)
    assert missing.returncode != 0 and 'no indexed recording "covid_4"' in missing.stdout
    vtt = run_cli("export", "qmsum_excerpt", "--format", "vtt", "-o", "-", "--index", str(index))
    assert vtt.stdout.startswith("WEBVTT") and not (Path.cwd() / "-").exists()

    lib = tmp_path / "lib"
    flac = copy_media(media / "jfk.flac", lib)
    notes = tmp_path / "elsewhere.vtt"
    notes.write_text(JFK_VTT, encoding="utf-8")
    run_cli("ingest", str(flac), "--transcript", str(notes), "--index", str(index),
            "--no-speakers")
    status = json.loads(run_cli("status", "--json", "--index", str(index)).stdout)
    jfk = next(r for r in status if r["path"].endswith("jfk.flac"))
    assert jfk["models"]["speech"] == "transcript file elsewhere.vtt"
    bad = run_cli("ingest", str(flac), "--transcript", str(tmp_path / "nope.vtt"),
                  "--index", str(index), check=False)
    assert bad.returncode != 0 and "nope.vtt" in (bad.stderr + bad.stdout)


def test_passages_lift_the_lines_of_the_stretch_where_a_topic_is_discussed(tmp_path: Path,
                                                                           extract_options,
                                                                           text_encoder):
    """On a real meeting excerpt: each passage names its own transcript lines, and a line's
    score is its sentence score plus the best top passage around it."""
    from clipcite.retrieval.search import DEFAULT_WEIGHTS, passage_stretches

    index = Index(tmp_path / "index")
    run_batch([DATA / "qmsum_excerpt.vtt"], index, BatchOptions(extract=extract_options))
    searcher = _searcher(index, text_encoder)
    [rec] = index.catalog.all()
    query = "what kind of energy source should the remote use"
    stretches = passage_stretches(searcher, [query], 20, [rec.gen], ("dense", "keyword"),
                                  DEFAULT_WEIGHTS)
    assert stretches and stretches[0].score >= stretches[-1].score
    lines = index.by_ids(TRANSCRIPT, stretches[0].segments)
    assert len(lines) == len(stretches[0].segments)  # every id names a stored line
    assert all(stretches[0].start <= h.metadata["start"] and
               h.metadata["end"] <= stretches[0].end for h in lines.values())

    sentences_only = {k: w for k, w in DEFAULT_WEIGHTS.items() if k[0] != PASSAGES}
    alone = {(m.start, m.end): m.score for m in search(searcher, query, k=30,
                                                        weights=sentences_only)}
    lifted = search(searcher, query, k=5)
    compared = 0
    for m in lifted:
        if (m.start, m.end) not in alone:
            continue  # found through its passage only
        best = max(s.score for s in stretches if s.start < m.end and m.start < s.end)
        assert m.score == pytest.approx(alone[(m.start, m.end)] + best, abs=2e-6)
        compared += 1
    assert compared >= 3
