"""The index schema shared by ingestion (which writes it) and retrieval (which reads it).

Every segment in every collection carries the same metadata keys, so one filter works on all
collections. Chroma metadata values must be scalars or arrays of one scalar type, and None is
not allowed, so an unknown speaker is stored as "" and mapped back to None on read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TRANSCRIPT = "transcript"
SLIDES = "slides"
FRAMES = "frames"
AUDIO = "audio"  # ~10 s windows of sound (CLAP), when a CLAP model is configured
# Overlapping windows of consecutive transcript segments (a stretch of discussion, speakers
# named): searched to find *where* a topic is discussed, never cited themselves; they lift the
# transcript segments inside them (retrieval/search.py).
PASSAGES = "passages"
MODALITIES: tuple[str, ...] = (TRANSCRIPT, SLIDES, FRAMES, AUDIO, PASSAGES)
# Collections whose documents are searchable text (BM25 and text embeddings).
TEXT_MODALITIES: tuple[str, ...] = (TRANSCRIPT, SLIDES, PASSAGES)


@dataclass
class Segment:
    """One searchable piece of a recording: a few sentences, a slide, or a keyframe."""

    modality: str
    start: float
    end: float
    text: str
    speaker: str | None = None  # the shown name: "Maria", or "Speaker 2" until named
    speaker_label: str | None = None  # the diarization cluster ("Speaker 2"); renames find it
    # A passage's transcript segments, as indices into the same generation's transcript list.
    first: int | None = None
    last: int | None = None


@dataclass
class RecordingInfo:
    """What every segment of a recording repeats about it (denormalised for filtering)."""

    media_id: str
    path: str
    title: str
    recorded_at: float
    tags: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)


def segment_id(media_id: str, gen: str, modality: str, index: int) -> str:
    return f"{media_id}:{gen}:{modality}:{index}"


def segment_metadata(rec: RecordingInfo, seg: Segment, gen: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "media_id": rec.media_id,
        "path": rec.path,
        "title": rec.title,
        "start": float(seg.start),
        "end": float(seg.end),
        "speaker": seg.speaker or "",
        "speaker_label": seg.speaker_label or "",
        "modality": seg.modality,
        "recorded_at": float(rec.recorded_at),
        "gen": gen,
    }
    if seg.first is not None and seg.last is not None:
        meta["first"], meta["last"] = int(seg.first), int(seg.last)
    # Chroma rejects empty arrays, so an empty list is simply left out.
    if rec.tags:
        meta["tags"] = list(rec.tags)
    if rec.groups:
        meta["groups"] = list(rec.groups)
    return meta


@dataclass
class Moment:
    """A stretch of one recording that answers a query, with the evidence that says so."""

    media_id: str
    path: str
    title: str
    start: float
    end: float
    score: float
    modality: str
    text: str
    speaker: str | None = None
    # Every hit merged into the moment: {modality, start, end, text, speaker}. Not part of the
    # search JSON contract; the assistant and UI use it to show slides beside speech.
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The stable search-result contract (see README, "Search JSON")."""
        return {
            "media_id": self.media_id,
            "path": self.path,
            "title": self.title,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "score": self.score,
            "modality": self.modality,
            "text": self.text,
            "speaker": self.speaker,
        }


def clock(seconds: float) -> str:
    """A time in a recording as people read it: "04:07", "1:02:03"."""
    seconds = int(max(0.0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def label(moment: Moment) -> str:
    """How a citation reads: "Q3 planning meeting, 00:24–00:29"."""
    return f"{moment.title}, {clock(moment.start)}–{clock(moment.end)}"
