"""What both interfaces (the CLI and the web app) need to search: the index and the searcher
the settings name, and the one reading of a date filter. Light to import: the models load
when a searcher is opened, not when this module is."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clipcite.retrieval.index import Index
    from clipcite.retrieval.search import Searcher
    from clipcite.ui.settings import Settings


def open_index(settings: Settings) -> Index:
    """The index the settings name (its Chroma vectors in index_dir, or on chroma_url)."""
    from clipcite.retrieval.index import Index

    return Index(settings.index_dir, chroma_url=settings.chroma_url)


def open_searcher(settings: Settings) -> Searcher:
    """A Searcher over the settings' index with the query encoders ingest used."""
    from clipcite.retrieval.archive import open_searcher_at

    return open_searcher_at(settings.index_dir, text_model=settings.text_model,
                            chroma_url=settings.chroma_url, clip_model=settings.clip_model,
                            clip_weights=settings.clip_weights, clap_model=settings.clap_model)


# A date picker sends a time after the day ("2024-03-14 00:00:00"); only the day counts.
_DAY = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")


def parse_day(text: str | None) -> dt.date | None:
    """A YYYY-MM-DD date (None when blank); ValueError when it is not one. Each interface
    words that error its own way."""
    text = (text or "").strip()
    if not text:
        return None
    m = _DAY.match(text)
    return dt.date.fromisoformat(m.group(1) if m else text)


def day_start(day: dt.date) -> float:
    """The start of a day in this machine's time zone, as Unix seconds."""
    return time.mktime(day.timetuple())


def day_bounds(first: dt.date | None, last: dt.date | None) -> tuple[float | None, float | None]:
    """Filters' `after` and `before` for "recorded from `first` until `last`": `last` counts
    whole (before is the start of the next day)."""
    return (day_start(first) if first else None,
            day_start(last + dt.timedelta(days=1)) if last else None)
