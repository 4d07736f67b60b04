"""Search by example: turn an audio clip or a screenshot into what search needs.

A clip is transcribed (its words become the query) and its voice is embedded (moments where the
same voice speaks can rank higher). An image is read by OCR (its text is searched in slides) and,
when CLIP is on, embedded for the frames collection. The same models as ingestion read it, so
an example matches the index the way the recording it was cut from does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from clipcite.ingestion.diarization import diarize
from clipcite.ingestion.extract import ExtractOptions, Models
from clipcite.ingestion.media import SAMPLE_RATE, MediaError, decode_audio, probe
from clipcite.ingestion.ocr import read_text
from clipcite.ingestion.voice import voice_print

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
MAX_CLIP_SECONDS = 120.0  # an example is a short clip; longer input is cut, not refused


@dataclass
class Example:
    kind: str  # "audio" | "image"
    text: str  # the clip's words or the image's on-screen text ("" when none)
    voice: np.ndarray | None = None  # voice print of the clip's main speaker
    image: np.ndarray | None = None  # CLIP vector of the image (CLIP on)


def _is_image(path: Path) -> bool:
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    try:
        with Image.open(path) as img:
            img.verify()
        return True
    except (UnidentifiedImageError, OSError):
        return False


def read_example(path: Path, options: ExtractOptions, models: Models) -> Example:
    """The query parts of an example file; MediaError with a plain reason when unreadable."""
    if not path.is_file():
        raise MediaError("no such file")
    if _is_image(path):
        return _read_image(path, options, models)
    return _read_clip(path, options, models)


def _read_image(path: Path, options: ExtractOptions, models: Models) -> Example:
    try:
        with Image.open(path) as img:
            image = img.convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise MediaError(f"not a readable image ({e})") from None
    text = read_text(image, lang=options.ocr_lang) if options.ocr else ""
    vector = None
    if models.clip is not None:
        vector = np.asarray(models.clip.embed_images([image])[0], dtype=np.float32)
    return Example("image", " ".join(text.split()), image=vector)


def _read_clip(path: Path, options: ExtractOptions, models: Models) -> Example:
    info = probe(path)
    if not info.has_audio:
        raise MediaError("no sound track to search by (give a clip or an image)")
    audio, _ = decode_audio(path)
    audio = audio[: int(MAX_CLIP_SECONDS * SAMPLE_RATE)]
    transcript = models.transcriber.transcribe(audio, language=options.language)
    text = " ".join(w.text.strip() for w in transcript.words if w.text.strip())
    voice = None
    if options.diarize:
        found = diarize(audio, models.speaker_encoder, options.speakers)
        if found.turns:
            # The clip's main voice: the speaker who talks longest in it.
            spoken: dict[str, float] = {}
            for turn in found.turns:
                spoken[turn.speaker] = spoken.get(turn.speaker, 0.0) + turn.end - turn.start
            voice = voice_print(found.prints[max(spoken, key=spoken.__getitem__)][None, :])
    if not text and voice is None:
        raise MediaError("no speech found in the clip")
    return Example("audio", text, voice=voice)
