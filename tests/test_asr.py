"""Speech: the packaged models, their assembly, and the language setting."""

from __future__ import annotations

from pathlib import Path

import pytest

import numpy as np

from clipcite.ingestion.asr import AsrOptions, load_transcriber, windows
from clipcite.ingestion.media import SAMPLE_RATE, decode_audio
from clipcite.ingestion.models import BASE_SHA256, ModelError, base_path, resolve_faster_whisper, sha256_file


def _text(words) -> str:
    return " ".join(w.text.strip() for w in words).lower().replace(",", "")


def test_tiny_en_transcribes_jfk_with_word_times(media: Path, models):
    audio, _ = decode_audio(media / "jfk.flac")
    words = models.transcriber.transcribe(audio, language="en").words
    assert "ask not what your country can do for you" in _text(words)
    assert all(0 <= w.start <= w.end <= 11.1 for w in words)
    assert [w.start for w in words] == sorted(w.start for w in words)


def test_long_audio_is_cut_into_windows_in_its_quietest_moments():
    rng = np.random.default_rng(0)
    sound = rng.normal(0, 0.1, 70 * SAMPLE_RATE).astype(np.float32)
    gaps = (8.0, 19.0, 33.0, 47.5, 60.0)
    for gap in gaps:  # quiet stretches of 0.8 s, where a cut belongs
        sound[int(gap * SAMPLE_RATE):int((gap + 0.8) * SAMPLE_RATE)] *= 0.01
    ranges = windows(sound, max_seconds=20)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(sound)
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))  # contiguous, no overlap
    assert all(end - start <= 20 * SAMPLE_RATE for start, end in ranges)
    cuts = [start / SAMPLE_RATE for start, _ in ranges[1:]]
    # Each cut is the middle of a quiet half second, so inside a gap, 0.25 s from its edges.
    assert len(cuts) == 4
    assert all(any(g + 0.2 <= c <= g + 0.6 for g in gaps) for c in cuts), cuts
    assert windows(sound[:5 * SAMPLE_RATE], max_seconds=20) == [(0, 5 * SAMPLE_RATE)]


def test_windows_keep_every_word_on_the_recording_clock(media: Path, models):
    """Three JFK sentences 2 s apart in 15-second windows: the same words as one pass would
    give, each copy at its own time, and progress reported on the whole recording's clock."""
    jfk, _ = decode_audio(media / "jfk.flac")
    gap = np.zeros(2 * SAMPLE_RATE, dtype=np.float32)
    audio = np.concatenate([jfk, gap, jfk, gap, jfk])
    period = (len(jfk) + len(gap)) / SAMPLE_RATE
    transcriber, seen = models.transcriber, []
    transcriber.window_seconds = 15
    try:
        words = transcriber.transcribe(audio, language="en", on_progress=seen.append).words
    finally:
        del transcriber.window_seconds
    assert len(windows(audio, 15)) == 3
    assert _text(words).count("ask not what your country can do for you") == 3
    asks = [w.start for w in words if w.text.strip().lower() == "ask"][::2]  # "ask not ..."
    assert len(asks) == 3
    assert asks[1] - asks[0] == pytest.approx(period, abs=0.3)
    assert asks[2] - asks[1] == pytest.approx(period, abs=0.3)
    assert [w.start for w in words] == sorted(w.start for w in words)
    assert seen == sorted(seen) and seen[-1] > 2 * period


def test_base_is_assembled_once_and_hash_checked(tmp_path: Path):
    folder = base_path(tmp_path)
    assert sha256_file(folder / "model.bin") == BASE_SHA256
    assert {p.name for p in folder.iterdir()} >= {"model.bin", "config.json", "tokenizer.json"}
    mtime = (folder / "model.bin").stat().st_mtime_ns
    assert base_path(tmp_path) == folder and (folder / "model.bin").stat().st_mtime_ns == mtime
    assert not list(folder.glob("*.part"))


@pytest.mark.slow
def test_base_transcribes_with_a_chosen_and_a_detected_language(media: Path, cache_dir: Path):
    transcriber = load_transcriber(AsrOptions(model="base"), cache_dir)
    audio, _ = decode_audio(media / "jfk.flac")
    chosen = transcriber.transcribe(audio, language="en")
    assert "ask not what your country can do for you" in _text(chosen.words)
    detected = transcriber.transcribe(audio, language=None)
    assert detected.language == "en"


def test_tiny_en_is_given_no_hotwords(media: Path, cache_dir: Path):
    """tiny.en skips speech when prompted (eval/asr_wer.py): hotwords change nothing for it."""
    transcriber = load_transcriber(AsrOptions(model="tiny.en"), cache_dir)
    audio, _ = decode_audio(media / "jfk.flac")
    plain = transcriber.transcribe(audio, language="en").words
    hinted = transcriber.transcribe(audio, language="en", hotwords="Zentrix, Quillbase").words
    assert not transcriber.reads_hotwords
    assert [(w.text, w.start) for w in hinted] == [(w.text, w.start) for w in plain]


def test_model_folder_without_weights_is_refused(tmp_path: Path):
    (tmp_path / "m").mkdir()
    with pytest.raises(ModelError, match="no model.bin"):
        resolve_faster_whisper(str(tmp_path / "m"), tmp_path)


def test_unknown_backend_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown speech backend"):
        load_transcriber(AsrOptions(backend="vosk"), tmp_path)
