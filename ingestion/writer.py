"""Writing one extracted recording into the index so that search never sees a half state."""

from __future__ import annotations

import time
import uuid

from clipcite.ingestion.extract import Extraction
from clipcite.ingestion.voice import match_voices
from clipcite.retrieval.catalog import Recording
from clipcite.retrieval.index import Index
from clipcite.retrieval.schema import FRAMES, TRANSCRIPT, segment_id, segment_metadata
from clipcite.retrieval.speakers import SpeakerInput, SpeakerStore


def write_recording(index: Index, rec: Recording, extraction: Extraction) -> Recording:
    """Add the new generation's segments, then switch the catalog to it in one transaction.

    Until the switch, search filters the new segments out (their gen is not visible); after
    it, the old generation is invisible and deleted. A crash in between leaves garbage that the
    next run collects, never a mix.
    """
    for modality, name in extraction.models.items():
        if modality in extraction.segments and extraction.segments[modality]:
            index.check_encoder(modality, name)
    speakers = index.speakers
    suggested = suggest_names(speakers, rec, extraction)
    for seg in extraction.segments.get(TRANSCRIPT, []):
        if seg.speaker_label in suggested:
            seg.speaker = suggested[seg.speaker_label][0]
    gen = uuid.uuid4().hex[:12]
    index.catalog.begin_generation(gen)
    counts: dict[str, int] = {}
    for modality, segments in extraction.segments.items():
        counts[modality] = len(segments)
        if not segments:
            continue
        index.add(
            modality,
            ids=[segment_id(rec.media_id, gen, modality, i) for i in range(len(segments))],
            embeddings=extraction.vectors[modality],
            documents=[s.text for s in segments],
            metadatas=[segment_metadata(s, gen) for s in segments],
        )
    speakers.add_generation(gen, extraction.turns, [
        SpeakerInput(label, seconds, vec, label, None, confirmed=True)
        if label in extraction.named else
        SpeakerInput(label, seconds, vec, *suggested.get(label, (None, None)))
        for label, (seconds, vec) in extraction.voices.items()])
    speakers.map_segments(gen, [s.speaker or "" for s in extraction.segments.get(TRANSCRIPT, [])])
    rec.gen = gen
    rec.counts = counts
    rec.models = {k: v for k, v in extraction.models.items()
                  if k != FRAMES or counts.get(FRAMES)}
    rec.ingested_at = time.time()
    retired = index.catalog.commit_generation(rec)
    if retired:
        index.delete_generation(retired)
        index.catalog.forget_garbage(retired)
    speakers.forget_unused()
    return rec


def suggest_names(speakers: SpeakerStore, rec: Recording,
                  extraction: Extraction) -> dict[str, tuple[str, float]]:
    """Known names whose voice print matches a speaker of the new recording (suggestions)."""
    prints = {label: vec for label, (_, vec) in extraction.voices.items()
              if vec is not None and label not in extraction.named}
    return match_voices(prints, speakers.voices(rec.groups))
