"""Speech to timed words, behind one small interface with two backends.

faster-whisper (CTranslate2, int8) is the default: 3-5x faster than openai-whisper on CPU and it
carries Silero VAD. openai-whisper is the second backend, for users who have its checkpoints.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from clipcite.ingestion.media import SAMPLE_RATE
from clipcite.ingestion.models import resolve_faster_whisper
from clipcite.ingestion.segments import Word

Progress = Callable[[float], None]  # seconds of audio done


@dataclass
class Transcript:
    words: list[Word] = field(default_factory=list)
    language: str | None = None


class Transcriber(Protocol):
    name: str

    def transcribe(self, audio: np.ndarray, language: str | None = None,
                   initial_prompt: str | None = None,
                   on_progress: Progress | None = None,
                   hotwords: str | None = None) -> Transcript: ...


@dataclass
class AsrOptions:
    backend: str = "faster-whisper"  # or "openai-whisper"
    # Packaged name ("base", "tiny.en"), a folder/file path, or a hub name. Whisper base is the
    # default: on noisy multi-voice calls it heard names and numbers 0.80 vs 0.70 and WER
    # 0.20 vs 0.23 (check half, eval/asr_wer.py) at about twice tiny.en's CPU time.
    model: str = "base"
    compute_type: str = "int8"
    beam_size: int = 5
    threads: int = 0  # 0: all cores
    vad: bool = True
    # Whisper re-decodes a window at higher temperatures when it looks like a loop. With VAD and
    # no conditioning on earlier text, loops are rare and the retries cost 40% more time on
    # phone audio for the same words, so they are off unless asked for.
    temperature_fallback: bool = False


# Whisper's feature extractors take the whole signal at once: an hour of audio peaked at 3.9 GB
# (faster-whisper's STFT runs in float64). Longer audio is transcribed in windows cut in silence.
WINDOW_SECONDS = 300.0
_CUT_SEARCH_SECONDS = 30.0  # a window's end is the quietest moment in its last 30 s
_FRAME = SAMPLE_RATE // 20  # 50 ms energy frames
_QUIET_FRAMES = 10  # the quietest 0.5 s


def windows(audio: np.ndarray, max_seconds: float = WINDOW_SECONDS) -> list[tuple[int, int]]:
    """(start, end) sample ranges, each at most `max_seconds`, that cover `audio`; each cut
    falls in the middle of the quietest half second before the limit, so no word is split."""
    limit = int(max_seconds * SAMPLE_RATE)
    search = min(int(_CUT_SEARCH_SECONDS * SAMPLE_RATE), limit // 2)
    ranges, start = [], 0
    while len(audio) - start > limit:
        lo = start + limit - search
        frames = audio[lo:start + limit][: search // _FRAME * _FRAME].reshape(-1, _FRAME)
        energy = np.convolve((frames.astype(np.float64) ** 2).mean(axis=1),
                             np.ones(_QUIET_FRAMES), mode="valid")
        cut = lo + (int(np.argmin(energy)) + _QUIET_FRAMES // 2) * _FRAME
        ranges.append((start, cut))
        start = cut
    ranges.append((start, len(audio)))
    return ranges


Window = Callable[[np.ndarray, str | None, Progress | None], Transcript]  # one window's words


def in_windows(audio: np.ndarray, window: Window, language: str | None,
               on_progress: Progress | None = None,
               max_seconds: float = WINDOW_SECONDS) -> Transcript:
    """Transcribe window by window and join the words on the recording's clock. With no
    language given, the first window's detected language is kept for the rest."""
    words: list[Word] = []
    for start, end in windows(audio, max_seconds):
        offset = start / SAMPLE_RATE
        progress = None if on_progress is None else (
            lambda seconds, offset=offset: on_progress(offset + seconds))
        part = window(audio[start:end], language, progress)
        language = language or part.language
        words += [replace(w, start=w.start + offset, end=w.end + offset) for w in part.words]
    return Transcript(words=words, language=language)


# Silero VAD's default threshold (0.5) drops quiet far-field speech in meetings; 0.35 keeps it
# without turning music into words.
_VAD_PARAMETERS = {"threshold": 0.35, "min_silence_duration_ms": 500, "speech_pad_ms": 200}


class _Windowed(ABC):
    """A backend that reads one window at a time (`_window`); `transcribe` takes any length."""

    window_seconds = WINDOW_SECONDS

    def transcribe(self, audio: np.ndarray, language: str | None = None,
                   initial_prompt: str | None = None,
                   on_progress: Progress | None = None,
                   hotwords: str | None = None) -> Transcript:
        """Timed words. `initial_prompt` is text said before the recording (Whisper reads it
        before the first 30 s only); `hotwords` are words to expect, read before every 30 s."""
        return in_windows(audio, lambda part, lang, progress: self._window(
            part, lang, initial_prompt, hotwords, progress), language, on_progress,
            self.window_seconds)

    @abstractmethod
    def _window(self, audio: np.ndarray, language: str | None, initial_prompt: str | None,
                hotwords: str | None, on_progress: Progress | None) -> Transcript:
        """One window of at most `window_seconds`, timed from its own start."""


# Packaged models that lose speech when given hotwords: tiny.en skipped 20 s of a noisy call
# (tuning-half WER 0.198 -> 0.242, eval/asr_wer.py), as it did with a title as the prompt.
NO_HOTWORDS = frozenset({"tiny.en", "tiny-en"})


class FasterWhisperTranscriber(_Windowed):
    def __init__(self, options: AsrOptions, cache_dir: Path) -> None:
        from faster_whisper import WhisperModel

        self.options = options
        self.reads_hotwords = options.model not in NO_HOTWORDS
        location = resolve_faster_whisper(options.model, cache_dir)
        self._model = WhisperModel(location, device="cpu", compute_type=options.compute_type,
                                   cpu_threads=options.threads)
        self.name = f"faster-whisper:{options.model}"

    def _window(self, audio: np.ndarray, language: str | None, initial_prompt: str | None,
                hotwords: str | None, on_progress: Progress | None) -> Transcript:
        segments, info = self._model.transcribe(
            audio, language=language, beam_size=self.options.beam_size,
            vad_filter=self.options.vad, vad_parameters=_VAD_PARAMETERS,
            word_timestamps=True, initial_prompt=initial_prompt or None,
            hotwords=(hotwords or None) if self.reads_hotwords else None,
            condition_on_previous_text=False,
            temperature=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0) if self.options.temperature_fallback
            else 0.0,
        )
        words: list[Word] = []
        for seg in segments:  # a generator: decoding happens as we iterate
            for w in seg.words or []:
                words.append(Word(start=float(w.start), end=float(w.end), text=w.word))
            if on_progress is not None:
                on_progress(float(seg.end))
        return Transcript(words=words, language=info.language)


class OpenAIWhisperTranscriber(_Windowed):
    """openai-whisper with a checkpoint by path (or a model name, which downloads)."""

    def __init__(self, options: AsrOptions) -> None:
        import torch

        from clipcite.ingestion.whisper_convert import load_converted
        from clipcite.retrieval.optional import need

        whisper = need("whisper", "The openai-whisper speech backend")

        self.options = options
        path = Path(options.model).expanduser()
        if path.is_file():
            self._model = load_converted(path)
        else:
            self._model = whisper.load_model(options.model, device="cpu")
        if options.threads:
            torch.set_num_threads(options.threads)
        self.name = f"openai-whisper:{path.name if path.is_file() else options.model}"

    def _window(self, audio: np.ndarray, language: str | None, initial_prompt: str | None,
                hotwords: str | None, on_progress: Progress | None) -> Transcript:
        # openai-whisper has no hotwords, and they are not put in the prompt instead: the
        # vocabulary as a prompt made base loop on a phone call (eval/asr_wer.py).
        result = self._model.transcribe(
            audio, language=language, word_timestamps=True, fp16=False,
            initial_prompt=initial_prompt or None, condition_on_previous_text=False,
            beam_size=self.options.beam_size, best_of=self.options.beam_size, verbose=None,
        )
        words = [Word(start=float(w["start"]), end=float(w["end"]), text=w["word"])
                 for seg in result["segments"] for w in seg.get("words", [])]
        if on_progress is not None:
            on_progress(len(audio) / SAMPLE_RATE)
        return Transcript(words=words, language=result.get("language"))


def load_transcriber(options: AsrOptions, cache_dir: Path) -> Transcriber:
    if options.backend == "faster-whisper":
        return FasterWhisperTranscriber(options, cache_dir)
    if options.backend == "openai-whisper":
        return OpenAIWhisperTranscriber(options)
    raise ValueError(f"unknown speech backend {options.backend!r} "
                     "(choose faster-whisper or openai-whisper)")
