"""The index schema shared by ingestion (which writes it) and retrieval (which reads it).

Every segment in every collection carries the same metadata keys, so one filter works on all
collections. Chroma metadata values must be scalars or arrays of one scalar type, and None is
not allowed, so an unknown speaker is stored as "" and mapped back to None on read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

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

# Chroma's HNSW settings for every collection. A query's candidate list (ef_search) of 400, not
# Chroma's 100: over real e5 passage vectors (30k QMSum sentences, 237 QMSum queries) the exact
# top 40 is found at 0.973 instead of 0.88 (top 10: 0.983 instead of 0.926) for ~0.5 ms more
# per query; 200 gave 0.939, 800 0.987 at three times the cost. Mutable, so older indexes are
# widened when opened (widen_search).
HNSW_EF_SEARCH = 400


def hnsw_configuration() -> dict[str, Any]:
    """The configuration every collection is created with (cosine distance)."""
    return {"hnsw": {"space": "cosine", "ef_search": HNSW_EF_SEARCH}}


def widen_search(collection: Any) -> None:
    """Give a collection made with a narrower ef_search (before HNSW_EF_SEARCH) the wider one."""
    hnsw = (getattr(collection, "configuration", None) or {}).get("hnsw") or {}
    if (hnsw.get("ef_search") or 0) < HNSW_EF_SEARCH:
        collection.modify(configuration={"hnsw": {"ef_search": HNSW_EF_SEARCH}})


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


def segment_id(media_id: str, gen: str, modality: str, index: int) -> str:
    return f"{media_id}:{gen}:{modality}:{index}"


def split_segment_id(seg_id: str) -> tuple[str, str, str, int] | None:
    """(media id, generation, modality, index) of an id made by segment_id (media ids hold no
    colon), or None for any other string."""
    parts = seg_id.rsplit(":", 3)
    if len(parts) != 4 or not parts[3].isdigit():
        return None
    return parts[0], parts[1], parts[2], int(parts[3])


def segment_metadata(seg: Segment, gen: str) -> dict[str, Any]:
    """What Chroma stores beside a segment's vector: its own fields only. Each stored key
    costs the write (Chroma indexes every metadata value: 828 against 630 segments/s at 100k
    with the recording's fields repeated on every segment), and the catalog holds those once,
    so changing a recording's access rewrites no segment."""
    meta: dict[str, Any] = {
        "start": float(seg.start),
        "end": float(seg.end),
        "speaker": seg.speaker or "",
        "speaker_label": seg.speaker_label or "",
        "gen": gen,
    }
    if seg.first is not None and seg.last is not None:
        meta["first"], meta["last"] = int(seg.first), int(seg.last)
    return meta


class RecordingFields(Protocol):
    """What a recording's catalog row (catalog.Recording) gives every one of its segments."""

    media_id: str
    path: str
    title: str
    recorded_at: float | None
    tags: list[str]
    groups: list[str]


def recording_metadata(rec: RecordingFields, modality: str) -> dict[str, Any]:
    """The recording's fields (from its catalog row) as a read segment's metadata carries them
    (segments written before they were left out hold copies, which these replace)."""
    meta: dict[str, Any] = {"media_id": rec.media_id, "path": rec.path, "title": rec.title,
                            "recorded_at": float(rec.recorded_at or 0.0), "modality": modality}
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
