"""Speech: the packaged models, their assembly, and the language setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestion.asr import AsrOptions, load_transcriber
from ingestion.media import decode_audio
from ingestion.models import BASE_SHA256, ModelError, base_path, resolve_faster_whisper, sha256_file


def _text(words) -> str:
    return " ".join(w.text.strip() for w in words).lower().replace(",", "")


def test_tiny_en_transcribes_jfk_with_word_times(media: Path, models):
    audio, _ = decode_audio(media / "jfk.flac")
    words = models.transcriber.transcribe(audio, language="en").words
    assert "ask not what your country can do for you" in _text(words)
    assert all(0 <= w.start <= w.end <= 11.1 for w in words)
    assert [w.start for w in words] == sorted(w.start for w in words)


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


def test_model_folder_without_weights_is_refused(tmp_path: Path):
    (tmp_path / "m").mkdir()
    with pytest.raises(ModelError, match="no model.bin"):
        resolve_faster_whisper(str(tmp_path / "m"), tmp_path)


def test_unknown_backend_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown speech backend"):
        load_transcriber(AsrOptions(backend="vosk"), tmp_path)
