"""CLAP audio-text embeddings, shared by ingestion (audio windows) and retrieval (text queries).

No registry package ships CLAP weights, so audio search is off unless the user names a model:
a transformers CLAP folder (ClapModel + ClapProcessor saved with save_pretrained), a laion-clap
.pt checkpoint (needs the laion-clap package), or a hub name such as "laion/clap-htsat-unfused"
(downloads; needs a network). Recordings are embedded in ~10 s windows, CLAP's input length.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from math import gcd
from pathlib import Path

import numpy as np

from clipcite.retrieval.optional import need

log = logging.getLogger("clipcite.clap")

OFF_MESSAGE = ("audio search (CLAP) is off: no model configured (set clap_model to a "
               "transformers CLAP folder or a laion-clap checkpoint)")
INPUT_RATE = 16000  # what ingestion decodes to (Whisper's rate)
BATCH = 8  # windows per forward pass: ~8 x 480k samples, so a 1-hour file stays bounded
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_said_off = False


class ClapLoadError(RuntimeError):
    """A configured CLAP model cannot be loaded; the message names it and says why."""


def audio_windows(duration: float, window: float = 10.0,
                  hop: float = 10.0) -> list[tuple[float, float]]:
    """(start, end) windows covering `duration` seconds, `hop` apart.

    A short tail is re-anchored to end at `duration` with a full window (overlapping the one
    before) rather than embedded as a sliver CLAP would repeat-pad: every window of a recording
    longer than `window` holds `window` seconds of real sound.
    """
    if duration <= 0 or window <= 0 or hop <= 0:
        return []
    spans: list[tuple[float, float]] = []
    start = 0.0
    while start < duration:
        end = min(start + window, duration)
        if end - start < window / 2 and spans:
            start = max(0.0, duration - window)
        span = (round(float(start), 3), round(float(end), 3))
        if not spans or span != spans[-1]:
            spans.append(span)
        if end >= duration:
            break
        start += hop
    return spans


class ClapEncoder(ABC):
    """Shared windowing, resampling and batching; a backend embeds waveforms at its own rate."""

    name: str
    dim: int
    rate: int  # the model's sample rate (48 kHz for CLAP)
    max_seconds: float  # the model's input length; longer input would be cropped at random

    def __init__(self, threads: int = 0, batch_size: int = BATCH) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.batch_size = batch_size

    def embed_audio(self, audio: np.ndarray, windows: list[tuple[float, float]],
                    sample_rate: int = INPUT_RATE) -> np.ndarray:
        """One L2-normalised float32 row per (start, end) window of mono `audio`."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"CLAP expects mono audio (1-D), got shape {audio.shape}")
        out = np.zeros((len(windows), self.dim), dtype=np.float32)
        # Each window is cut and resampled on its own, so memory is one batch, not the file,
        # and a window's vector does not depend on its batch.
        longest = int(self.max_seconds * sample_rate)
        for i in range(0, len(windows), self.batch_size):
            waves = [self._resample(self._cut(audio, s, e, sample_rate)[:longest], sample_rate)
                     for s, e in windows[i:i + self.batch_size]]
            with self._torch.no_grad():
                out[i:i + len(waves)] = self._embed_waves(waves)
        return _normalise(out)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """One L2-normalised float32 row per text (a query such as "applause")."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._torch.no_grad():
            return _normalise(np.asarray(self._embed_texts(list(texts)), dtype=np.float32))

    def _cut(self, audio: np.ndarray, start: float, end: float, rate: int) -> np.ndarray:
        a, b = max(0, round(start * rate)), min(len(audio), round(end * rate))
        # A window past the end (a caller rounding) embeds as a moment of silence, not a crash.
        return audio[a:b] if b > a else np.zeros(rate // 10, dtype=np.float32)

    def _resample(self, wave: np.ndarray, rate: int) -> np.ndarray:
        if rate == self.rate:
            return wave
        from scipy.signal import resample_poly

        g = gcd(self.rate, rate)
        out = resample_poly(wave, self.rate // g, rate // g).astype(np.float32)
        return out[:int(self.max_seconds * self.rate)]

    @abstractmethod
    def _embed_waves(self, waves: list[np.ndarray]) -> np.ndarray:
        """One row per waveform at `self.rate` (a backend's model call)."""

    @abstractmethod
    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        """One row per text (a backend's model call)."""


class TransformersClap(ClapEncoder):
    """transformers' ClapModel + ClapProcessor from a saved folder or a hub name."""

    def __init__(self, source: str, name: str, threads: int = 0, batch_size: int = BATCH) -> None:
        super().__init__(threads, batch_size)
        from clipcite.retrieval.clip import _prepare_torchvision

        _prepare_torchvision()  # transformers imports torchvision's transforms when present
        need("transformers", "CLAP sound search")
        from transformers import ClapModel, ClapProcessor
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # per-load weight bars would flood the ingest output
        try:
            self._model = ClapModel.from_pretrained(source).eval()
            self._processor = ClapProcessor.from_pretrained(source)
        except Exception as err:  # noqa: BLE001 - many causes, one message for the user
            raise ClapLoadError(f"cannot load CLAP model {source!r}: {_first_line(err)}") from err
        features = self._processor.feature_extractor
        config = self._model.config
        self.name = name
        self.dim = int(config.projection_dim)
        self.rate = int(features.sampling_rate)
        self.max_seconds = float(features.nb_max_samples) / self.rate
        # A fused model takes 4 stacked mels, an unfused one 1; choose by the model, not by a
        # processor file that may have been saved with the other setting.
        self._truncation = "fusion" if config.audio_config.enable_fusion else "rand_trunc"
        tokenizer = self._processor.tokenizer
        self._max_tokens = min(int(tokenizer.model_max_length),
                               int(config.text_config.max_position_embeddings) - 2)

    def _embed_waves(self, waves: list[np.ndarray]) -> np.ndarray:
        feats = self._processor.feature_extractor(
            waves, sampling_rate=self.rate, truncation=self._truncation, return_tensors="pt")
        # Every window fits the input, so none is "longer"; the extractor marks one at random
        # for fusion training, which would make vectors depend on the batch.
        is_longer = self._torch.zeros_like(feats["is_longer"])
        out = self._model.get_audio_features(input_features=feats["input_features"],
                                             is_longer=is_longer)
        return _pooled(out, self._torch)

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        enc = self._processor.tokenizer(texts, padding=True, truncation=True,
                                        max_length=self._max_tokens, return_tensors="pt")
        out = self._model.get_text_features(input_ids=enc["input_ids"],
                                            attention_mask=enc["attention_mask"])
        return _pooled(out, self._torch)


class LaionClap(ClapEncoder):
    """A laion-clap checkpoint through the laion_clap package (HTSAT audio, RoBERTa text).

    laion_clap builds its text tower from the hub's roberta-base, so offline it needs that in
    the Hugging Face cache; a converted transformers folder needs nothing.
    """

    def __init__(self, checkpoint: Path, threads: int = 0, batch_size: int = BATCH) -> None:
        super().__init__(threads, batch_size)
        try:
            import laion_clap
        except ImportError as err:
            raise ClapLoadError(
                f"{checkpoint} looks like a laion-clap checkpoint but the laion-clap package is "
                "not installed; install it, or convert the checkpoint to a transformers CLAP "
                "folder") from err
        state = _laion_state(checkpoint)
        fusion = any(".fusion_model." in k or k.startswith("audio_branch.mel_conv")
                     for k in state)
        width = state.get("audio_branch.patch_embed.proj.weight")
        amodel = "HTSAT-base" if width is not None and width.shape[0] == 128 else "HTSAT-tiny"
        try:
            module = laion_clap.CLAP_Module(enable_fusion=fusion, amodel=amodel, device="cpu")
            module.model.load_state_dict(state)
        except Exception as err:  # noqa: BLE001 - a hub miss (roberta-base) or a shape mismatch
            raise ClapLoadError(f"cannot load laion-clap checkpoint {checkpoint} ({amodel}, "
                                f"fusion={fusion}): {_first_line(err)}") from err
        module.eval()
        self._module = module
        self.name = f"laion_clap:{checkpoint.name}"
        self.dim = int(module.model_cfg["embed_dim"])
        self.rate = int(module.model_cfg["audio_cfg"]["sample_rate"])
        self.max_seconds = 480000 / self.rate  # laion_clap's fixed input length

    def _embed_waves(self, waves: list[np.ndarray]) -> np.ndarray:
        return np.asarray(self._module.get_audio_embedding_from_data(x=waves, use_tensor=False))

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        # laion_clap squeezes the batch axis away for a single text; embed it twice instead.
        rows = self._module.get_text_embedding(texts if len(texts) > 1 else texts * 2)
        return np.asarray(rows)[:len(texts)]


def _laion_state(checkpoint: Path) -> dict:
    import torch

    try:
        raw = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - not a torch file, or pickled objects
        raise ClapLoadError(f"cannot read laion-clap checkpoint {checkpoint}: "
                            f"{_first_line(err)}") from err
    state = raw.get("state_dict", raw) if isinstance(raw, dict) else raw
    if not isinstance(state, dict):
        raise ClapLoadError(f"{checkpoint} holds no state dict")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state.pop("text_branch.embeddings.position_ids", None)  # a buffer newer transformers drop
    return state


def _pooled(out, torch) -> np.ndarray:
    # transformers 5 returns an output object whose pooler_output is the projection; 4.x a tensor.
    feats = out if isinstance(out, torch.Tensor) else out.pooler_output
    return feats.float().numpy()


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def load_clap(model: str | None, threads: int = 0) -> ClapEncoder | None:
    """The configured CLAP encoder, or None (audio search off, said once) when none is named.

    `model` is a transformers CLAP folder, a laion-clap .pt checkpoint, or a hub name (only
    tried when no such local path exists; needs a network). Raises ClapLoadError otherwise.
    """
    global _said_off
    if not model or not model.strip():
        if not _said_off:  # ingestion may ask per file; one line per process is enough
            log.info(OFF_MESSAGE)
            _said_off = True
        return None
    model = model.strip()
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ClapLoadError(
                f"{path} is not a transformers CLAP folder: no config.json (save one with "
                "ClapModel.save_pretrained and ClapProcessor.save_pretrained)")
        return TransformersClap(str(path), f"clap:{path.name}", threads=threads)
    if path.is_file():
        if path.suffix in _CHECKPOINT_SUFFIXES:
            return LaionClap(path, threads=threads)
        raise ClapLoadError(f"{path} is neither a transformers CLAP folder nor a laion-clap "
                            f"checkpoint ({', '.join(_CHECKPOINT_SUFFIXES)})")
    if not _HUB_NAME.match(model) or path.suffix in _CHECKPOINT_SUFFIXES:
        raise ClapLoadError(f"CLAP model {model!r} not found: no such file or folder")
    try:
        return TransformersClap(model, f"clap:{model}", threads=threads)
    except ClapLoadError as err:
        cause = err.__cause__ or err
        raise ClapLoadError(
            f"CLAP model {model!r} is not a local file or folder and could not be fetched from "
            f"the hub (no network?): {_first_line(cause)}; download it once and set clap_model "
            "to its folder") from cause
