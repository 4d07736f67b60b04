"""Which recordings a search may look at: the caller's access groups first, then filters.

Every retrieval tool gets its recordings from `visible_recordings`, so access groups are
enforced below the tools: a recording outside the caller's groups yields no segment, title or
path, whatever the query or filter.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from clipcite.retrieval.catalog import Recording
from clipcite.retrieval.index import Index


@dataclass(frozen=True)
class Filters:
    groups: frozenset[str] | None = None  # the caller's access groups; None: unrestricted
    recordings: tuple[str, ...] = ()  # media ids, file paths or titles (any of them)
    title: str | None = None  # a case-insensitive part of the title
    after: float | None = None  # recorded at or after (Unix seconds)
    before: float | None = None  # recorded before (Unix seconds)
    tags: tuple[str, ...] = ()  # any of these tags
    speaker: str | None = None  # segments spoken by this speaker


def _matches_recording(rec: Recording, wanted: tuple[str, ...]) -> bool:
    lowered = {w.lower() for w in wanted}
    return (rec.media_id in wanted or rec.path in wanted or rec.title.lower() in lowered)


def narrowed(index: Index, filters: Filters, **changes: Any) -> Filters:
    """The filters with `changes` applied, or as they were if no recording the caller may see
    would pass them: a title or period guessed from a question must not hide everything."""
    narrow = dataclasses.replace(filters, **changes)
    return narrow if visible_recordings(index, narrow) else filters


def visible_recordings(index: Index, filters: Filters) -> list[Recording]:
    """Searchable recordings that the caller may see and that pass the recording filters."""
    out = []
    for rec in index.catalog.visible(filters.groups):
        if filters.recordings and not _matches_recording(rec, filters.recordings):
            continue
        if filters.title and filters.title.lower() not in rec.title.lower():
            continue
        when = rec.recorded_at or 0.0
        if filters.after is not None and when < filters.after:
            continue
        if filters.before is not None and when >= filters.before:
            continue
        if filters.tags and not set(filters.tags).intersection(rec.tags):
            continue
        out.append(rec)
    return out
