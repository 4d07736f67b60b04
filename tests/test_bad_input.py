"""Bad input: each file ends with a one-line reason, the batch goes on, nothing indexed changes."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from PIL import Image, ImageDraw, ImageFont

from clipcite.ingestion.batch import BatchOptions, run_batch
from clipcite.retrieval.index import Index
from clipcite.retrieval.schema import MODALITIES
from tests.conftest import CLI, copy_media, ffmpeg


@pytest.fixture(scope="module")
def bad_files(media: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    files: dict[str, Path] = {}
    files["zero"] = d / "zero.mp4"
    files["zero"].write_bytes(b"")
    files["text"] = d / "notes.mp4"
    files["text"].write_text("Agenda: budget, hiring, launch date.\n" * 50)
    whole = d / "whole.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10:duration=11",
           "-i", str(media / "jfk.flac"), "-shortest", "-c:v", "libx264", "-c:a", "aac",
           str(whole))
    files["truncated"] = d / "truncated.mp4"
    files["truncated"].write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    whole.unlink()
    files["blank_no_audio"] = d / "blank.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=navy:size=320x240:rate=10:duration=6", "-an",
           "-c:v", "libx264", str(files["blank_no_audio"]))
    slide = d / "slide.png"
    image = Image.new("RGB", (1280, 720), "white")
    ImageDraw.Draw(image).text((80, 300), "Badge office: room B-214", fill="black",
                               font=ImageFont.load_default(size=64))
    image.save(slide)
    files["slides_no_audio"] = d / "silent slides.mp4"
    ffmpeg("-loop", "1", "-i", str(slide), "-t", "6", "-r", "5", "-an", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(files["slides_no_audio"]))
    files["silence"] = d / "silence.wav"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "8", str(files["silence"]))
    files["music"] = d / "music.ogg"
    ffmpeg("-f", "lavfi", "-i",
           "sine=frequency=440:duration=8,volume=0.3[a];sine=frequency=660:duration=8[b];"
           "[a][b]amix=inputs=2", "-c:a", "libvorbis", str(files["music"]))
    files["short"] = d / "short.wav"
    ffmpeg("-i", str(media / "jfk.flac"), "-t", "0.2", str(files["short"]))
    files["unicode"] = d / "Réunion équipe — 第一.flac"
    shutil.copyfile(media / "jfk.flac", files["unicode"])
    return files


EXPECTED = {
    "zero": "empty file (0 bytes)",
    "text": "not a readable audio or video file",
    "truncated": "truncated or corrupt",
    "blank_no_audio": "no audio track and no on-screen text found",
    "silence": "no speech or on-screen text found",
    "music": "no speech or on-screen text found",
    "short": "too short to index",
}


@pytest.fixture(scope="module")
def batch(bad_files: dict[str, Path], media: Path, tmp_path_factory, extract_options):
    """An index that already holds a good recording, then a batch of bad files run into it."""
    index = Index(tmp_path_factory.mktemp("index"))
    good = copy_media(media / "sample.wav", tmp_path_factory.mktemp("good"))
    run_batch([good], index, BatchOptions(extract=extract_options))
    before = {m: sorted(index.collection(m).get()["ids"]) for m in MODALITIES}
    outcomes = {Path(o.path).name: o for o in
                run_batch(list(bad_files.values()) + [good], index, BatchOptions(extract=extract_options))}
    return index, outcomes, before, good


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_bad_file_fails_with_a_reason(batch, bad_files: dict[str, Path], kind: str):
    index, outcomes, _, _ = batch
    outcome = outcomes[bad_files[kind].name]
    assert outcome.status == "failed"
    assert EXPECTED[kind] in outcome.reason
    assert "\n" not in outcome.reason and len(outcome.reason) < 200
    rec = index.catalog.by_path(str(bad_files[kind]))
    assert rec.status == "failed" and EXPECTED[kind] in rec.error and rec.gen is None


def test_batch_goes_on_and_nothing_indexed_changes(batch, bad_files: dict[str, Path]):
    index, outcomes, before, good = batch
    assert outcomes[good.name].status == "unchanged"
    assert outcomes[bad_files["unicode"].name].status == "indexed"
    silent = outcomes[bad_files["slides_no_audio"].name]
    assert silent.status == "indexed" and "no audio track" in silent.reason
    slides = index.segments("slides", [index.catalog.by_path(str(bad_files["slides_no_audio"])).gen])
    assert [s.text for s in slides] == ["Badge office: room B-214"]
    unicode_rec = index.catalog.by_path(str(bad_files["unicode"]))
    assert unicode_rec.title == "Réunion équipe — 第一"
    after = {m: sorted(index.collection(m).get()["ids"]) for m in MODALITIES}
    good_rec = index.catalog.by_path(str(good))
    for m in MODALITIES:  # the good recording's segments are exactly as they were
        assert [i for i in after[m] if i.startswith(good_rec.media_id)] == \
               [i for i in before[m] if i.startswith(good_rec.media_id)]


def test_failed_files_are_not_retried_until_they_change(batch, bad_files, extract_options):
    index, _, _, _ = batch
    again = run_batch([bad_files["text"]], index, BatchOptions(extract=extract_options))
    assert again[0].status == "unchanged"
    assert "failed before: not a readable audio or video file" in again[0].reason


def test_a_file_that_breaks_later_keeps_its_indexed_segments(tmp_path: Path, media: Path,
                                                             extract_options):
    index = Index(tmp_path / "index")
    rec_path = copy_media(media / "jfk.flac", tmp_path / "lib")
    run_batch([rec_path], index, BatchOptions(extract=extract_options))
    gen = index.catalog.by_path(str(rec_path)).gen
    rec_path.write_text("overwritten by mistake")
    out = run_batch([rec_path], index, BatchOptions(extract=extract_options))
    assert out[0].status == "failed"
    rec = index.catalog.by_path(str(rec_path))
    assert rec.status == "failed" and rec.gen == gen  # still searchable as it was
    assert len(index.segments("transcript", [gen])) == rec.counts["transcript"] > 0


_AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _nobody_can_run_the_cli() -> bool:
    probe = subprocess.run([*_AS_NOBODY, str(CLI), "--help"], capture_output=True, timeout=120)
    return probe.returncode == 0


def test_unreadable_file_as_an_unprivileged_user(media: Path):
    """Root reads any file, so the CLI runs as `nobody` when the tests run as root."""
    if os.geteuid() == 0 and not _nobody_can_run_the_cli():
        pytest.skip(f"`nobody` cannot run {CLI} here (the checkout is private to root)")
    work = Path(tempfile.mkdtemp(prefix="clipcite-perm-"))  # pytest's tmp is private to root
    try:
        work.chmod(0o777)
        locked = copy_media(media / "sample.wav", work / "lib", "locked.wav")
        (work / "lib").chmod(0o777)
        locked.chmod(0)
        index_dir = work / "index"
        cmd = [str(CLI), "ingest", str(locked), "--index", str(index_dir)]
        if os.geteuid() == 0:
            cmd = [*_AS_NOBODY, *cmd]
        env = {**os.environ, "HOME": str(work), "COLUMNS": "200"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "permission denied" in proc.stdout and "locked.wav" in proc.stdout
        assert "Traceback" not in proc.stdout + proc.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)
