"""Search by example (`clipcite search --like FILE`): a real clip, a screenshot, a voice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import copy_media, ffmpeg


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, media: Path, generated: dict) -> Path:
    """sample.wav (a two-person phone call), jfk.flac and the generated slide video."""
    import subprocess

    from tests.conftest import CLI

    library = tmp_path_factory.mktemp("like-lib")
    for src in (media / "sample.wav", media / "jfk.flac",
                generated["dir"] / "security-training.mp4"):
        copy_media(src, library)
    index = tmp_path_factory.mktemp("like") / "index"
    subprocess.run([str(CLI), "ingest", str(library), "--index", str(index), "--speakers", "2"],
                   check=True, capture_output=True, timeout=900)
    return index


def _search(run_cli, index: Path, *args: str) -> list[dict]:
    out = run_cli("search", *args, "--json", "--k", "3", "--index", str(index))
    return json.loads(out.stdout)["results"]


def test_a_clip_cut_from_a_recording_finds_its_moment(archive: Path, media: Path,
                                                      tmp_path: Path, run_cli) -> None:
    clip = tmp_path / "clip.m4a"  # another format than the source, as a user's clip would be
    ffmpeg("-ss", "12.5", "-t", "5.5", "-i", str(media / "sample.wav"), str(clip))
    found = _search(run_cli, archive, "--like", str(clip))
    top = found[0]
    assert top["path"].endswith("sample.wav") and top["modality"] == "transcript"
    assert 11.0 <= top["start"] <= 18.5, top


def test_a_screenshot_finds_its_slide(archive: Path, generated: dict, tmp_path: Path,
                                      run_cli) -> None:
    shot = tmp_path / "shot.png"
    ffmpeg("-ss", "60", "-i", str(generated["dir"] / "security-training.mp4"),
           "-frames:v", "1", str(shot))
    found = _search(run_cli, archive, "--like", str(shot))
    top = found[0]
    assert top["path"].endswith("security-training.mp4") and top["modality"] == "slides"
    assert top["start"] <= 60.0 <= top["end"] + 1.0, top
    assert "security@northwind.example" in " ".join(m["text"] for m in found)


def test_the_examples_voice_lifts_its_speaker(archive: Path) -> None:
    """The same words, searched with either speaker's voice: that speaker's moments lead."""
    from clipcite.retrieval.encoders import load_text_encoder
    from clipcite.retrieval.index import Index
    from clipcite.retrieval.search import Like, Searcher, search

    index = Index(archive)
    rec = next(r for r in index.catalog.all() if r.path.endswith("sample.wav"))
    prints = index.speakers.prints({rec.gen})
    assert len(prints) == 2
    searcher = Searcher(index=index, text=load_text_encoder("multilingual-e5-small"))
    for (_, label), voice in prints.items():
        found = search(searcher, "hello, where are you from", k=5, like=Like(voice=voice))
        speakers = [m.speaker for m in found if m.media_id == rec.media_id]
        assert speakers[0] == label, (label, speakers)


def test_unreadable_examples_get_a_sentence(archive: Path, tmp_path: Path, run_cli) -> None:
    silent = tmp_path / "silence.wav"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "2", str(silent))
    bad = run_cli("search", "--like", str(silent), "--index", str(archive), check=False)
    assert bad.returncode == 2 and "silence.wav" in bad.stderr + bad.stdout
    assert "Traceback" not in bad.stderr
    missing = run_cli("search", "--like", str(tmp_path / "nope.png"), "--index", str(archive),
                      check=False)
    said = " ".join((missing.stderr + missing.stdout).split())
    assert missing.returncode == 2 and "cannot search by nope.png: no such file" in said
