"""Summaries that cover a whole recording: map over every transcript line, then reduce.

Top-k search would summarise only what matched; a map step over each chunk of the transcript
finds points, decisions and action items everywhere, each tied to the line that says it, so
every item is cited by construction.
"""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from assistant.evidence import Citation, clock
from assistant.prompts import render
from retrieval import tools
from retrieval.schema import Moment

if TYPE_CHECKING:
    from assistant.agent import Assistant, Event, Route

CHUNK_CHARS = 900  # keeps each local-model call near 350 prompt tokens (~6 s on 2 cores)
POINTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"points": {"type": "array", "items": {
        "type": "object",
        "properties": {
            "line": {"type": "integer"},
            "kind": {"type": "string", "enum": ["point", "decision", "action"]},
            "text": {"type": "string"},
            "owner": {"type": ["string", "null"]},
            "due": {"type": ["string", "null"]},
        },
        "required": ["line", "kind", "text", "owner", "due"]}}},
    "required": ["points"],
}
SUPPORT_THRESHOLD = 0.3


def pick_recording(assistant: Assistant, route: Route) -> tools.RecordingSummary | None:
    recs = tools.list_recordings(assistant.searcher, assistant.filters)
    if not recs:
        return None
    if route.recording:
        titles = {r.title.lower(): r for r in recs}
        close = difflib.get_close_matches(route.recording.lower(), list(titles), n=1, cutoff=0.4)
        if close:
            return titles[close[0]]
        for r in recs:
            if route.recording.lower() in r.title.lower():
                return r
    named = _title_in(route.question, recs)
    if named is not None:
        return named
    found = assistant.search(route)
    if found:
        return next(r for r in recs if r.media_id == found[0].media_id)
    return None


def _title_in(question: str, recs: list[tools.RecordingSummary]) -> tools.RecordingSummary | None:
    """The recording whose title the question names, at least by its main words ("the
    planning meeting" for "Q3 planning meeting"); the router does not always pass it on, and a
    search for "action items" finds whichever recording says "action"."""
    words = set(re.findall(r"[a-z0-9]+", question.lower()))
    scored = []
    for rec in recs:
        title = [w for w in re.findall(r"[a-z0-9]+", rec.title.lower()) if len(w) > 2]
        scored.append((sum(w in words for w in title) / len(title) if title else 0.0, rec))
    scored.sort(key=lambda pair: pair[0], reverse=True)
    if not scored or scored[0][0] < 0.5 or (len(scored) > 1 and scored[1][0] == scored[0][0]):
        return None  # nothing named, or "the meeting" with several meetings
    return scored[0][1]


def chunks(lines: list[Moment], limit: int = CHUNK_CHARS) -> list[list[tuple[int, Moment]]]:
    out: list[list[tuple[int, Moment]]] = [[]]
    size = 0
    for n, m in enumerate(lines, 1):
        if out[-1] and size + len(m.text) > limit:
            out.append([])
            size = 0
        out[-1].append((n, m))
        size += len(m.text)
    return [c for c in out if c]


def map_points(assistant: Assistant, title: str,
               chunk: list[tuple[int, Moment]]) -> list[dict[str, Any]]:
    text = "\n".join(f"[{n}] {m.text}" for n, m in chunk)
    try:
        out = assistant.chat.json([{"role": "user", "content": render(
            "summary_map", title=title, lines=text)}], POINTS_SCHEMA)
    except Exception:  # noqa: BLE001 - one bad chunk must not sink the summary
        return []
    valid = {n for n, _ in chunk}
    return [p for p in out.get("points", []) if isinstance(p, dict) and p.get("line") in valid
            and str(p.get("text", "")).strip()]


def summarize_turn(assistant: Assistant, route: Route,
                   timings: dict[str, float]) -> Iterator[Event]:
    from assistant.agent import Event, Reply

    t = time.perf_counter()
    rec = pick_recording(assistant, route)
    if rec is None:
        reply = Reply("I could not find a recording to summarise.", intent="summarize",
                      queries=route.queries, timings=timings)
        yield Event("token", reply.answer)
        yield Event("reply", reply)
        return
    lines = tools.recording_segments(assistant.searcher, rec.media_id, assistant.filters)
    points: list[dict[str, Any]] = []
    for chunk in chunks(lines):
        points.extend(map_points(assistant, rec.title, chunk))
    citations: list[Citation] = []
    by_line: dict[int, int] = {}
    rendered: dict[str, list[str]] = {"decision": [], "action": [], "point": []}
    for p in points:
        line = lines[p["line"] - 1]
        if assistant.support(p["text"], line.text) < SUPPORT_THRESHOLD:
            continue
        if p["line"] not in by_line:
            by_line[p["line"]] = len(citations) + 1
            citations.append(Citation(by_line[p["line"]], rec.media_id, rec.path, rec.title,
                                      line.start, line.end, line.text, line.speaker))
        if p["kind"] == "action":
            owner = f"{p['owner']}: " if p.get("owner") else ""
            due = f" (by {p['due']})" if p.get("due") else ""
            rendered["action"].append(f"- {owner}{p['text']}{due} [{by_line[p['line']]}]")
            continue
        rendered[p["kind"]].append(f"- {p['text']} [{by_line[p['line']]}]")
    overview = ""
    if rendered["point"] or rendered["decision"]:
        overview = assistant.chat.complete([{"role": "user", "content": render(
            "summary_reduce", title=rec.title,
            points="\n".join(rendered["point"] + rendered["decision"])[:1500])}]).strip()
    length = f" ({clock(rec.duration or 0)})" if rec.duration else ""
    parts = [f"Summary of {rec.title}{length}: {overview}".strip()]
    for kind, heading in (("point", "Main points"), ("decision", "Decisions"),
                          ("action", "Action items")):
        if rendered[kind]:
            parts.append(f"{heading}:\n" + "\n".join(rendered[kind]))
    if not citations:
        parts.append("I could not pick out points I can cite from this recording.")
    timings["summarize"] = time.perf_counter() - t
    reply = Reply("\n\n".join(parts), citations, "summarize", route.queries, timings=timings)
    yield Event("token", reply.answer)
    yield Event("reply", reply)
