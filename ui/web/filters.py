"""The chat's "Limit the search" choices turned into Filters, with the person's groups always
applied and every choice checked against what they may see."""

from __future__ import annotations

import datetime as dt
from typing import Any

from clipcite.retrieval.filters import Filters
from clipcite.ui import searching
from clipcite.ui.web.render import fmt_date


# -- chat filters ------------------------------------------------------------------------------
class FilterError(ValueError):
    """A chat filter that cannot be used, in one sentence that says what to do."""


def parse_day(text: str | None, label: str) -> dt.date | None:
    """A YYYY-MM-DD date typed or picked in the page (ui.searching.parse_day), its error in
    words for the person."""
    try:
        return searching.parse_day(text)
    except ValueError:
        raise FilterError(f"I could not read the date “{(text or '').strip()}” in “{label}”. "
                          "Write it as year-month-day, for example 2024-03-31, or clear "
                          "it.") from None


def chat_filters(groups: frozenset[str] | None, visible: list[Any], recordings: list | None,
                 tags: list | None, date_from: str | None, date_to: str | None) -> Filters:
    """The Filters of one question: the person's groups always, then what they chose.

    Chosen recordings are kept only if this person may see them (the page's choices are not
    trusted); "until" includes the whole of that day.
    """
    allowed = {r.media_id for r in visible}
    chosen = tuple(dict.fromkeys(i for i in recordings or () if i in allowed))
    if recordings and not chosen:
        raise FilterError("The recordings chosen under “Limit the search” are no longer in the "
                          "library. Clear that choice or pick other recordings.")
    first, last = parse_day(date_from, "Recorded from"), parse_day(date_to, "Recorded until")
    if first and last and first > last:
        raise FilterError("The “Recorded from” date is after the “Recorded until” date. Swap "
                          "them, or clear one of them.")
    after, before = searching.day_bounds(first, last)
    return Filters(groups=groups, recordings=chosen, tags=tuple(dict.fromkeys(tags or ())),
                   after=after, before=before)


def is_narrowed(filters: Filters) -> bool:
    return bool(filters.recordings or filters.tags or filters.after is not None
                or filters.before is not None)


def narrowed(filters: Filters, reply: Any) -> str:
    """The note under an answer that cites nothing while "Limit the search" was used."""
    return ("Only the recordings chosen under “Limit the search” were searched."
            if is_narrowed(filters) and not reply.citations else "")


def recording_choices(visible: list[Any]) -> list[tuple[str, str]]:
    return [(f"{r.title} ({fmt_date(r.recorded_at)})", r.media_id) for r in visible]


def tag_choices(visible: list[Any]) -> list[str]:
    return sorted({t for r in visible for t in r.tags}, key=str.lower)


def still_offered(chosen: list | None, choices: list) -> list:
    """The chosen values that are still choices: Gradio rejects a question that sends a value
    no longer offered (a deleted recording), with an error the person cannot act on."""
    values = {c[1] if isinstance(c, tuple) else c for c in choices}
    return [v for v in chosen or () if v in values]
