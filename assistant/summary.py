"""Summaries that cover a whole recording: map over its transcript lines, then reduce.

Top-k search would summarise only what matched; a map step over each chunk of the transcript
finds points, decisions and action items everywhere, each tied to the line that says it, so
every item is cited by construction. A long recording is mapped over lines that represent
each stretch of it (a bounded number of model calls, whatever its length). A summary of one
topic ("the discussion about the budget") is answered from where that topic is discussed.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from clipcite.assistant.evidence import (SUPPORT_THRESHOLD, Citation, CitationChecker, clock,
                                evidence_block, plain, quote, render_lines)
from clipcite.assistant.llm import LLMError
from clipcite.assistant.named import matching
from clipcite.assistant.prompts import render_messages
from clipcite.assistant.summary_cache import SummaryCache
from clipcite.assistant.turns import Answering, Event, Reply, Route
from clipcite.retrieval import tools
from clipcite.retrieval.keyword import STOPWORDS
from clipcite.retrieval.schema import Moment

log = logging.getLogger("clipcite.assistant")

CHUNK_CHARS = 900  # keeps each local-model call near 350 prompt tokens (~6 s on 2 cores)
# At most this many map calls per summary (~6 s each with the local model on 2 cores): a
# short recording (SUMMARY_CHARS) never needs more; a long one asked for one kind of item
# ("what were the action items?") is read in this many chunks spread evenly over it, each the
# one of its stretch with the most lines worded as that kind.
MAX_MAP_CALLS = 8
# A whole recording longer than this is summarised from lines that stand for it (one per
# stretch of it), not all of them: mapping a 60-minute meeting line by line took ~6 minutes.
SUMMARY_CHARS = 4500
SECTION_CHARS = 300  # one representative line per this much of the budget
# A line stands for its stretch only if it says something: "Oh, I see, but the a but the but
# the" was the most central line of a stretch of a real meeting (it is like every line a bit).
MIN_POINT_WORDS = 6  # distinct content words
_FILLERS = frozenset("uh um mm hmm mm-hmm yeah yes okay ok oh like know mean right well just "
                     "really actually sort kind gonna wanna got get yep nope huh ah eh".split())
_LINES = {"type": "array", "items": {"type": "integer"}}
POINTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "decisions": _LINES,
        "actions": {"type": "array", "items": {
            "type": "object",
            "properties": {"line": {"type": "integer"}, "due": {"type": ["string", "null"]}},
            "required": ["line", "due"]}},
        "points": _LINES,
    },
    "required": ["decisions", "actions", "points"],
}


@dataclass
class Point:
    """A line the map step picked: its number in the recording's lines and what it is."""

    line: int
    kind: str  # "point" | "decision" | "action"
    owner: str | None = None
    due: str | None = None


def pick_recording(assistant: Answering, route: Route) -> tools.RecordingSummary | None:
    """The recording a summary is of: the one the user named (Assistant.turn resolved it), a
    title the router read that matches exactly one of the caller's recordings by its words
    (a near title is another recording: "HR phone call" is not "Phone call"), a title in the
    question, else the recording of the best search hit."""
    recs = tools.list_recordings(assistant.searcher, assistant.filters)
    if not recs:
        return None
    if route.media_ids:
        return next((r for r in recs if r.media_id == route.media_ids[0]), None)
    if route.recording:
        named = matching(recs, route.recording)
        if len(named) == 1:
            return named[0]
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


# Words that ask for a summary, or name a recording as a whole, rather than a topic in it.
_GENERIC = frozenset("""
summarise summarize summary summaries recap overview key main points point brief briefly short
give me please tell us what was were is are the a an of in on at for to about from and or whole
entire full complete all everything meeting meetings recording recordings call session video
training talk talks discussion discussions discussed discuss conversation today today's this
that it its happened happen went say said over up them they we our you your
""".split())


def topic_words(question: str, title: str) -> list[str]:
    """The words of a summary request that name a topic ("the remote's materials"), not the
    request itself, the kind of item asked for or the recording's title; [] for "Summarize
    the whole meeting"."""
    text = question.lower()
    for words in _ASKED_FOR.values():
        text = words.sub(" ", text)
    named = set(re.findall(r"[a-z0-9]+", title.lower()))
    return [w for w in re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text)
            if w.split("'")[0] not in _GENERIC and w.split("'")[0] not in STOPWORDS
            and w not in named and len(w) > 1]


def representative(lines: list[Moment], vectors: np.ndarray,
                   budget: int = SUMMARY_CHARS) -> list[int]:
    """Indices of lines that stand for a long recording, in time order, within `budget`
    characters: the recording is cut into equal stretches of speech, one per SECTION_CHARS of
    the budget, and each gives its most central line of some length (closest to the mean of
    its lines' vectors), so every part of the meeting is represented, in its own words."""
    sizes = [len(line.text) for line in lines]
    if sum(sizes) <= budget:
        return list(range(len(lines)))
    sections = max(1, budget // SECTION_CHARS)
    total, bounds, acc = sum(sizes), [0], 0
    for i, size in enumerate(sizes):
        acc += size
        if acc >= total * len(bounds) / sections and len(bounds) < sections:
            bounds.append(i + 1)
    bounds.append(len(lines))
    picked: list[int] = []
    spent = 0
    for lo, hi in zip(bounds, bounds[1:]):
        if hi <= lo:
            continue
        centre = vectors[lo:hi].mean(axis=0)
        scores = vectors[lo:hi] @ centre
        order = [lo + int(j) for j in np.argsort(-scores)]
        best = next((i for i in order if _says_something(lines[i].text)), None)
        if best is None:
            continue
        if spent + sizes[best] > budget and picked:
            continue
        picked.append(best)
        spent += sizes[best]
    return sorted(picked)


def _says_something(text: str) -> bool:
    words = {w for w in re.findall(r"[a-z0-9']+", text.lower())
             if w not in STOPWORDS and w not in _FILLERS and len(w) > 2}
    return len(words) >= MIN_POINT_WORDS


def quote_item(point: Point, line: Moment) -> str:
    """A picked line as the overview step reads it: who, then their words in quotes."""
    who = plain(_lead(point, line))
    return f"{who} {quote(line.text)}" if who else quote(line.text)


def capped(parts: list[list[tuple[int, Moment]]], wanted: tuple[str, ...],
           limit: int = MAX_MAP_CALLS) -> list[list[tuple[int, Moment]]]:
    """At most `limit` chunks, one from each of `limit` equal stretches of the recording: the
    one with the most lines worded as a kind wanted (classify()), the middle one on a tie."""
    if len(parts) <= limit:
        return parts
    out = []
    for i in range(limit):
        lo, hi = i * len(parts) // limit, (i + 1) * len(parts) // limit
        middle = (lo + hi) // 2
        out.append(max(range(lo, hi), key=lambda j: (
            sum(classify(m.text) in wanted for _, m in parts[j]), -abs(j - middle))))
    return [parts[j] for j in out]


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


def map_points(assistant: Answering, title: str, chunk: list[tuple[int, Moment]]) -> list[Point]:
    """The lines of a chunk worth a summary, each as a decision, action or point.

    The model picks the lines; what kind each is comes from the line's own wording when it
    says (classify()), because the 1.5B model picks well but labels at random (it filed "Tom
    will write the job posting" as a decision and "Our next meeting is on August 3rd" as an
    action). Owners come from the line's wording; a deadline the line does not contain is
    dropped: it would be the model's, not the recording's.
    """
    text = render_lines(chunk, speakers=False)
    try:
        out = assistant.chat.json(render_messages("summary_map", title=plain(title), lines=text),
                                  POINTS_SCHEMA)
    except LLMError:  # one unusable reply must not sink the summary (a refusing service does)
        log.warning("no usable points from lines %d-%d of %s", chunk[0][0], chunk[-1][0], title,
                    exc_info=True)
        return []
    lines = dict(chunk)
    picked: dict[int, dict[str, Any]] = {}
    for key in ("actions", "decisions", "points"):
        for item in out.get(key) or []:
            n = item.get("line") if isinstance(item, dict) else item
            if n in lines and n not in picked:
                picked[n] = item if isinstance(item, dict) else {}
    points = []
    for n in sorted(picked):
        line = lines[n]
        kind = classify(line.text)
        owner = due = None
        if kind == "action":
            # Not the model's owner: it named "Reception Desk" the owner of "On Monday, please
            # come to the Reception Desk".
            owner = _owner(line)
            due = _said(picked[n].get("due"), line.text) or _due(line.text)
        points.append(Point(n, kind, owner, due))
    return points


# Wording that makes a line an action item or a decision, whatever the model said.
_ASKED = re.compile(r"\b(please|can you|could you|would you|i will|i'll|i am going to|"
                    r"i'm going to)\b", re.I)
_NOT_NAMES = ("We|It|This|That|There|They|You|He|She|I|Our|The|Then|So|And|Now|Today|Tomorrow|"
              "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|January|February|March|"
              "April|May|June|July|August|September|October|November|December")
_NAMED = re.compile(rf"\b(?!(?:{_NOT_NAMES})\b)([A-Z][a-z]+),? (?:will|is going to|needs to|"
                    r"please|can you|could you)\b")
_DECISION = re.compile(r"\b(decided|agreed|approved|decision|we will|we'll|we are going to|"
                       r"we're going to)\b", re.I)
_FIRST_PERSON = re.compile(r"\b(i will|i'll|i am going to|i'm going to)\b", re.I)
_DUE = re.compile(
    r"\b(?:(?:by|before|until|on)\s+)?(?:the\s+)?(?:end of (?:the )?)?(?:monday|tuesday|"
    r"wednesday|thursday|friday|saturday|sunday|tomorrow|tonight|next (?:week|month)|"
    r"january|february|march|april|may|june|july|august|september|october|november|"
    r"december)(?:\s+\d{1,2}(?:st|nd|rd|th)?)?\b", re.I)


def classify(text: str) -> str:
    """"action", "decision" or "point", from how the line is worded."""
    words = " ".join(text.split())
    if _ASKED.search(words) or _NAMED.search(words):
        return "action"
    return "decision" if _DECISION.search(words) else "point"


def _owner(line: Moment) -> str | None:
    named = _NAMED.search(line.text)
    if named:
        return named.group(1)
    return line.speaker if _FIRST_PERSON.search(line.text) else None  # "I will": the speaker


def _due(text: str) -> str | None:
    found = _DUE.search(text)
    return found.group(0) if found else None


_ASKED_FOR = {"action": re.compile(r"\b(action items?|to-?dos?|tasks?|follow-?ups?|next steps)\b",
                                   re.I),
              "decision": re.compile(r"\b(decisions?|decided|agreed)\b", re.I)}


def _asked_for(question: str) -> tuple[str, ...]:
    """The kinds of item a question asks for ("what were the action items?"), or ()."""
    return tuple(kind for kind, words in _ASKED_FOR.items() if words.search(question))


def _lead(point: Point, line: Moment) -> str:
    """Who (and by when) before the quote: the owner of an action, else the speaker."""
    if point.kind != "action":
        return f"{line.speaker}: " if line.speaker else ""
    who = ", ".join(x for x in (point.owner, f"by {point.due}" if point.due else None) if x)
    return f"{who}: " if who else ""


def _said(value: Any, line: str) -> str | None:
    value = " ".join(str(value or "").split())
    return value if value and value.lower() in line.lower() else None


def summarize_turn(assistant: Answering, route: Route,
                   timings: dict[str, float]) -> Iterator[Event]:
    t = time.perf_counter()
    rec = pick_recording(assistant, route)
    if rec is None:
        reply = Reply("I could not find a recording to summarise.", intent="summarize",
                      queries=route.queries, timings=timings)
        yield Event("token", reply.answer)
        yield Event("reply", reply)
        return
    lines: list[Moment] | None = None
    if topic_words(route.question, rec.title):
        lines, vectors = tools.recording_lines_with_vectors(assistant.searcher, rec.media_id,
                                                            assistant.filters)
        if _long(lines):
            # One topic of a long recording ("the discussion about the budget"): answered from
            # where it is discussed, each hit read with the lines around it, as any question
            # is. (A short recording is mapped whole: that reads the topic and costs little.)
            started = t - timings.get("route", 0.0)  # latency counts from the message
            yield from assistant.answer(route, timings, started,
                                        replace(assistant.filters, recordings=(rec.media_id,)))
            return
    wanted = _asked_for(route.question) or ("point", "decision", "action")
    cache = SummaryCache(assistant.searcher.index.directory)
    gen = _generation(assistant, rec.media_id)
    cached = cache.get(gen) if gen and len(wanted) == 3 else None
    if cached is not None:
        answer, citations = cached
    else:
        if lines is None:
            lines, vectors = tools.recording_lines_with_vectors(
                assistant.searcher, rec.media_id, assistant.filters)
        answer, citations = summarize_recording(assistant, rec, wanted, lines, vectors)
        if gen and len(wanted) == 3 and citations:
            cache.put(gen, answer, citations)
    timings["summarize"] = time.perf_counter() - t
    timings.setdefault("first_token", timings["summarize"] + timings.get("route", 0.0))
    reply = Reply(answer, citations, "summarize", route.queries, timings=timings)
    yield Event("token", reply.answer)
    yield Event("reply", reply)


def _long(lines: list[Moment]) -> bool:
    """More speech than a summary maps line by line (SUMMARY_CHARS)."""
    return sum(len(m.text) for m in lines) > SUMMARY_CHARS


def _generation(assistant: Answering, media_id: str) -> str | None:
    rec = assistant.searcher.index.catalog.get(media_id)
    return rec.gen if rec is not None else None


def prepare(assistant: Answering, media_id: str) -> bool:
    """Summarise a whole recording into the cache unless it is there; True if it was made."""
    rec = next((r for r in tools.list_recordings(assistant.searcher, assistant.filters)
                if r.media_id == media_id), None)
    gen = _generation(assistant, media_id)
    cache = SummaryCache(assistant.searcher.index.directory)
    if rec is None or gen is None or cache.get(gen) is not None:
        return False
    lines, vectors = tools.recording_lines_with_vectors(assistant.searcher, media_id,
                                                        assistant.filters)
    answer, citations = summarize_recording(assistant, rec, ("point", "decision", "action"),
                                            lines, vectors)
    if citations:
        cache.put(gen, answer, citations)
    return bool(citations)


def digest(assistant: Answering, rec: tools.RecordingSummary,
           lines: list[Moment]) -> tuple[str, list[Citation]]:
    """A long recording's summary in the model's words, from the lines that stand for it, each
    sentence cited at the lines it comes from (checked as an answer's citations are)."""
    numbered = render_lines(list(enumerate(lines, 1)))
    checker = CitationChecker(lines, assistant.support, SUPPORT_THRESHOLD)
    for delta in assistant.chat.stream(render_messages("summary_digest", title=plain(rec.title),
                                                       lines=numbered)):
        checker.feed(delta)
    checker.close()
    checked = checker.result
    length = f" ({clock(rec.duration or 0)})" if rec.duration else ""
    text = checked.text if checked.citations else \
        "I could not pick out points I can cite from this recording."
    return f"Summary of {rec.title}{length}: {text}", checked.citations


def summarize_recording(assistant: Answering, rec: tools.RecordingSummary,
                        wanted: tuple[str, ...], lines: list[Moment],
                        vectors: np.ndarray) -> tuple[str, list[Citation]]:
    """A recording's summary from its transcript lines (and their vectors): a long one in the
    model's words from the lines that represent it, a short one as an overview and cited
    points, decisions and action items of the kinds wanted."""
    if _long(lines) and len(wanted) == 3:
        return digest(assistant, rec, [lines[i] for i in representative(lines, vectors)])
    points: list[Point] = []
    for chunk in capped(chunks(lines), wanted):
        points.extend(map_points(assistant, rec.title, chunk))
    if not any(p.kind in wanted for p in points):
        wanted = ("point", "decision", "action")  # none of what was asked: say what there is
    citations: list[Citation] = []
    rendered: dict[str, list[str]] = {"decision": [], "action": [], "point": []}
    for p in points:
        if p.kind not in wanted:
            continue
        line = lines[p.line - 1]
        citations.append(Citation(len(citations) + 1, rec.media_id, rec.path, rec.title,
                                  line.start, line.end, line.text, line.speaker))
        rendered[p.kind].append(f"- {_lead(p, line)}{' '.join(line.text.split())} "
                                f"[{len(citations)}]")
    overview = ""
    if len(wanted) == 3 and (rendered["point"] or rendered["decision"]):
        quoted = [f"- {quote_item(p, lines[p.line - 1])}" for p in points
                  if p.kind in ("point", "decision")]
        overview = assistant.chat.complete(render_messages(
            "summary_reduce", title=plain(rec.title),
            points=evidence_block("\n".join(quoted)[:1500]))).strip()
    length = f" ({clock(rec.duration or 0)})" if rec.duration else ""
    parts = [f"Summary of {rec.title}{length}: {overview}".strip()]
    for kind, heading in (("point", "Main points"), ("decision", "Decisions"),
                          ("action", "Action items")):
        if rendered[kind]:
            parts.append(f"{heading}:\n" + "\n".join(rendered[kind]))
    if not citations:
        parts.append("I could not pick out points I can cite from this recording.")
    return "\n\n".join(parts), citations
