"""CLAP audio-text embeddings with a small random model saved at test time (no download)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from clipcite.retrieval import clap
from clipcite.retrieval.clap import ClapEncoder, ClapLoadError, audio_windows, load_clap

RATE = 16000


@pytest.fixture(scope="module")
def tiny_clap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random ClapModel + ClapProcessor folder, saved as a real one would be.

    The tokenizer is RoBERTa's byte-level BPE with only the 256 byte symbols and no merges, so
    it is built offline and still tokenizes any text.
    """
    from tokenizers import pre_tokenizers

    from clipcite.retrieval.clip import _prepare_torchvision

    _prepare_torchvision()
    from transformers import (ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor,
                              RobertaTokenizer)

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    vocab["<mask>"] = len(vocab)
    tokenizer = RobertaTokenizer(vocab=vocab, merges=[], model_max_length=77)
    config = ClapConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "intermediate_size": 64,
                     "max_position_embeddings": 80, "pad_token_id": 1, "bos_token_id": 0,
                     "eos_token_id": 2},
        # HTSAT keeps its real input geometry (64 mels, 256 spec) so 10 s at 48 kHz fits.
        audio_config={"patch_embeds_hidden_size": 16, "depths": [1, 1],
                      "num_attention_heads": [1, 2], "hidden_size": 32, "window_size": 8},
        projection_dim=24)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("clap") / "tiny-clap"
    ClapModel(config).save_pretrained(path)
    # The default extractor says truncation="fusion", which an unfused model cannot take: the
    # encoder must choose by the model.
    ClapProcessor(feature_extractor=ClapFeatureExtractor(),
                  tokenizer=tokenizer).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def encoder(tiny_clap: Path) -> ClapEncoder:
    loaded = load_clap(str(tiny_clap))
    assert loaded is not None
    return loaded


def _recording(seconds: float) -> np.ndarray:
    """A 440 Hz tone, then noise, then a rising chirp: windows that differ."""
    t = np.arange(int(seconds * RATE)) / RATE
    out = 0.3 * np.sin(2 * np.pi * 440 * t)
    noisy = t >= 10
    out[noisy] = np.random.default_rng(0).normal(0, 0.2, noisy.sum())
    chirp = t >= 20
    out[chirp] = 0.3 * np.sin(2 * np.pi * (200 + 100 * (t[chirp] - 20)) * t[chirp])
    return out.astype(np.float32)


@pytest.fixture(scope="module")
def indexed(encoder: ClapEncoder) -> tuple[np.ndarray, list[tuple[float, float]], np.ndarray]:
    audio = _recording(25.0)
    windows = audio_windows(25.0)
    return audio, windows, encoder.embed_audio(audio, windows)


def test_audio_windows():
    assert audio_windows(30.0) == [(0.0, 10.0), (10.0, 20.0), (20.0, 30.0)]
    assert audio_windows(23) == [(0.0, 10.0), (10.0, 20.0), (13.0, 23.0)]  # tail re-anchored
    assert audio_windows(27.5) == [(0.0, 10.0), (10.0, 20.0), (20.0, 27.5)]
    assert audio_windows(4.2) == [(0.0, 4.2)]
    assert audio_windows(23, window=10, hop=5)[-1] == (15.0, 23.0)
    assert audio_windows(0) == []


def test_loads_folder_with_model_geometry(encoder: ClapEncoder, tiny_clap: Path):
    assert encoder.name == "clap:tiny-clap"
    assert encoder.dim == 24 and encoder.rate == 48000 and encoder.max_seconds == 10.0


def test_audio_windows_embedded_normalised_deterministic_and_batch_free(encoder: ClapEncoder,
                                                                        indexed):
    audio, windows, vectors = indexed
    assert vectors.shape == (3, 24) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.abs(vectors[0] - vectors[1]).max() > 1e-3  # tone and noise differ
    one_by_one = np.vstack([encoder.embed_audio(audio, [w]) for w in windows])
    assert np.allclose(vectors, one_by_one, atol=1e-5)
    encoder.batch_size = 2  # batches of 2 + 1 give the same rows
    try:
        assert np.allclose(encoder.embed_audio(audio, windows), vectors, atol=1e-5)
    finally:
        encoder.batch_size = clap.BATCH
    assert encoder.embed_audio(audio, []).shape == (0, 24)


def test_window_found_by_its_sound_elsewhere(encoder: ClapEncoder, indexed):
    """The noise window, cut from a recording where it starts at 40 s, finds window 1."""
    audio, _, index = indexed
    moved = np.concatenate([np.zeros(40 * RATE, np.float32), audio[10 * RATE:20 * RATE]])
    query = encoder.embed_audio(moved, [(40.0, 50.0)])[0]
    assert int(np.argmax(index @ query)) == 1
    assert float(index[1] @ query) == pytest.approx(1.0, abs=1e-5)


def test_texts_embedded_normalised_and_batch_free(encoder: ClapEncoder, indexed):
    texts = ["applause", "music", "a phone ringing"]
    vectors = encoder.embed_texts(texts)
    assert vectors.shape == (3, 24) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors, encoder.embed_texts(texts), atol=1e-6)
    one_by_one = np.vstack([encoder.embed_texts([t]) for t in texts])
    assert np.allclose(vectors, one_by_one, atol=1e-5)  # padding does not change a query
    assert encoder.embed_texts([]).shape == (0, 24)
    scores = indexed[2] @ vectors[0]
    assert scores.shape == (3,)  # a text query ranks audio windows in the same space


def test_off_without_a_model_in_one_line(caplog: pytest.LogCaptureFixture,
                                         monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(clap, "_said_off", False)
    caplog.set_level(logging.INFO, logger="clipcite.clap")
    assert load_clap(None) is None
    assert load_clap("") is None
    lines = [r.getMessage() for r in caplog.records if r.name == "clipcite.clap"]
    assert lines == [clap.OFF_MESSAGE]
    assert "audio search (CLAP) is off: no model configured" in lines[0]


def test_missing_or_wrong_model_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ClapLoadError, match="not found: no such file or folder"):
        load_clap(str(tmp_path / "missing"))
    with pytest.raises(ClapLoadError, match="not found"):
        load_clap(str(tmp_path / "missing.pt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ClapLoadError, match="no config.json"):
        load_clap(str(tmp_path / "empty"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ClapLoadError, match="neither a transformers CLAP folder"):
        load_clap(str(tmp_path / "notes.txt"))


def test_hub_name_offline_names_the_model(monkeypatch: pytest.MonkeyPatch):
    # conftest sets HF_HUB_OFFLINE, so this fails at once without touching a network.
    with pytest.raises(ClapLoadError, match="'clipcite-test/no-such-clap'.*no network"):
        load_clap("clipcite-test/no-such-clap")


@pytest.mark.skipif(importlib.util.find_spec("laion_clap") is not None,
                    reason="laion-clap is installed")
def test_laion_checkpoint_without_the_package_says_so(tmp_path: Path):
    checkpoint = tmp_path / "630k-audioset-best.pt"
    torch.save({"state_dict": {}}, checkpoint)
    with pytest.raises(ClapLoadError, match="laion-clap package is not installed"):
        load_clap(str(checkpoint))


def test_ingest_and_search_the_audio_collection(tiny_clap: Path, media: Path, tmp_path: Path,
                                                run_cli) -> None:
    """Through the real path: `ingest --clap-model` fills `audio`, search reads it back."""
    from clipcite.retrieval import tools
    from clipcite.retrieval.encoders import load_text_encoder
    from clipcite.retrieval.index import Index
    from clipcite.retrieval.schema import AUDIO
    from clipcite.retrieval.search import Searcher
    from tests.conftest import copy_media

    clip = copy_media(media / "jfk.flac", tmp_path / "lib")
    index_dir = tmp_path / "index"
    out = run_cli("ingest", str(clip), "--index", str(index_dir), "--no-speakers",
                  "--clap-model", str(tiny_clap))
    assert "CLAP" not in out.stdout  # configured: no "off" line
    index = Index(index_dir)
    rec = index.catalog.all()[0]
    assert rec.counts[AUDIO] == len(audio_windows(rec.duration)) == 2
    assert rec.models[AUDIO] == "clap:tiny-clap"
    searcher = Searcher(index=index, text=load_text_encoder("multilingual-e5-small"),
                        clap=load_clap(str(tiny_clap)))
    found = tools.search_audio(searcher, "applause", k=5)
    assert {m.modality for m in found} == {AUDIO} and found[0].media_id == rec.media_id
    assert "country" in " ".join(m.text for m in found)  # a window shows the speech inside it
    fused = tools.search_all(searcher, "what can you do for your country", k=10)
    assert AUDIO in {e["modality"] for m in fused for e in m.evidence}

    off = run_cli("ingest", str(clip), "--index", str(tmp_path / "plain"), "--no-speakers")
    assert "CLAP" in off.stdout and "is off" in off.stdout
    assert Index(tmp_path / "plain").catalog.all()[0].counts.get(AUDIO, 0) == 0
