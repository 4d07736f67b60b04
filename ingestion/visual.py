"""Keyframes, slide text and frame embeddings from a video stream.

Frames are sampled every couple of seconds; a frame becomes a keyframe only when it looks
different from the last keyframe, so a slide shown for five minutes is read once. Each keyframe
is handled as it arrives (OCR, CLIP) and its picture dropped, so memory stays flat however long
the video is. Lines repeated on most slides of a deck (footers, headers) are not slide text.
"""

from __future__ import annotations

import difflib
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from clipcite.retrieval.schema import FRAMES, SLIDES, Segment

# A new picture: more than CHANGED_FRACTION of a 320x180 grey thumbnail's pixels moved by more
# than PIXEL_DELTA levels. Perceptual hashes (pHash) missed slides that share a template and
# differ only in their text; a changed line of text moves 2-4% of the pixels, compression noise
# none, and a moving mouse pointer under 0.1%.
THUMB_SIZE = (320, 180)
PIXEL_DELTA = 32
CHANGED_FRACTION = 0.005
SAME_TEXT_RATIO = 0.9
# A line on more than this share of a deck's slides (and on BOILERPLATE_MIN_SLIDES or more),
# page numbers aside, is a footer or header ("Northwind Traders Security Training 3/6"): it says
# nothing about the slide, yet matched every question about the deck's subject.
BOILERPLATE_SHARE = 0.5
BOILERPLATE_MIN_SLIDES = 3


@dataclass
class Keyframe:
    start: float
    end: float
    text: str
    embedding: list[float] | None = None


@dataclass
class VisualResult:
    keyframes: list[Keyframe] = field(default_factory=list)
    frames_sampled: int = 0
    ocr_seconds: float = 0.0
    clip_seconds: float = 0.0

    def slides(self) -> list[Segment]:
        """One segment per distinct slide text, valid until the text changes."""
        out: list[Segment] = []
        for kf in self.keyframes:
            if not kf.text:
                continue
            if out and out[-1].end >= kf.start - 1e-6 and _same_text(out[-1].text, kf.text):
                out[-1].end = kf.end
                continue
            out.append(Segment(modality=SLIDES, start=kf.start, end=kf.end, text=kf.text))
        return out

    def slide_segments(self) -> list[Segment]:
        """The searchable slide segments: one per line of each slide, led by its title.

        A whole slide embedded as one passage blurs six bullets into one vector, and every
        slide of a deck then looks alike to the encoder; a line ("IT Help Desk: ext. 4417")
        is found by a question about it. Every line keeps its slide's time on screen.
        """
        out: list[Segment] = []
        slides = self.slides()
        repeated = boilerplate_lines([s.text for s in slides])
        for slide in slides:
            lines = [ln.strip() for ln in slide.text.splitlines()
                     if ln.strip() and _line_key(ln) not in repeated]
            if not lines:
                continue
            title, rest = lines[0], lines[1:]
            out.append(Segment(modality=SLIDES, start=slide.start, end=slide.end, text=title))
            out.extend(Segment(modality=SLIDES, start=slide.start, end=slide.end,
                               text=f"{title}: {line}") for line in rest)
        return out

    def frame_segments(self) -> list[tuple[Segment, list[float]]]:
        return [(Segment(modality=FRAMES, start=kf.start, end=kf.end, text=kf.text),
                 kf.embedding) for kf in self.keyframes if kf.embedding is not None]


def _line_key(line: str) -> str:
    """A line with its numbers and spacing ignored ("Training 2/6" == "Training 3/6")."""
    return " ".join(re.sub(r"\d+", "#", line.casefold()).split())


def boilerplate_lines(slides: list[str]) -> set[str]:
    """Keys (_line_key) of the lines repeated on most slides of a deck: footers, headers."""
    if len(slides) < BOILERPLATE_MIN_SLIDES:
        return set()
    counts = Counter(key for text in slides
                     for key in {_line_key(ln) for ln in text.splitlines() if ln.strip()})
    return {key for key, n in counts.items()
            if n >= BOILERPLATE_MIN_SLIDES and n > BOILERPLATE_SHARE * len(slides)}


def _same_text(a: str, b: str) -> bool:
    return a == b or difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() >= SAME_TEXT_RATIO


def thumbnail(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L").resize(THUMB_SIZE, Image.BILINEAR), dtype=np.int16)


def changed(a: np.ndarray, b: np.ndarray, fraction: float = CHANGED_FRACTION) -> bool:
    return float((np.abs(a - b) > PIXEL_DELTA).mean()) > fraction


def extract_keyframes(
    frames: Iterable[tuple[float, Image.Image]],
    duration: float,
    read_text: Callable[[Image.Image], str] | None,
    embed_images: Callable[[list[Image.Image]], list[list[float]]] | None,
    embed_batch: int = 8,
) -> VisualResult:
    """Walk sampled frames, keep the ones that change, and read and embed each of them."""
    result = VisualResult()
    last: np.ndarray | None = None
    pending: list[tuple[Keyframe, Image.Image]] = []

    def embed_pending() -> None:
        if embed_images is not None and pending:
            t0 = time.perf_counter()
            vectors = embed_images([img for _, img in pending])
            result.clip_seconds += time.perf_counter() - t0
            for (kf, _), vec in zip(pending, vectors):
                kf.embedding = vec
        pending.clear()

    for t, image in frames:
        result.frames_sampled += 1
        thumb = thumbnail(image)
        if last is not None and not changed(last, thumb):
            continue
        last = thumb
        if result.keyframes:
            result.keyframes[-1].end = t
        t0 = time.perf_counter()
        text = read_text(image) if read_text is not None else ""
        result.ocr_seconds += time.perf_counter() - t0
        kf = Keyframe(start=t, end=duration, text=text)
        result.keyframes.append(kf)
        if embed_images is not None:
            pending.append((kf, image.copy()))
            if len(pending) >= embed_batch:
                embed_pending()
    embed_pending()
    if result.keyframes:
        result.keyframes[-1].end = max(duration, result.keyframes[-1].start)
    return result
