"""Several rounds of search, led by a remote model that calls tools.

A model with native function calling reads the question, calls `search_archive` (and
`read_around` a snippet it found) as often as it needs, up to MAX_ROUNDS rounds, and sees what
each call found. What it found becomes the evidence of the usual answer step, so the answer
still cites numbered snippets that the program checks and maps to recordings and times. The
tools run on the caller's filters: a model cannot search outside the user's access groups.
The local 1.5B model does not get this loop (see ChatModel.can_call_tools).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from clipcite.assistant.evidence import render_evidence
from clipcite.assistant.llm import ChatModel, Message, ToolCall
from clipcite.assistant.prompts import render_messages
from clipcite.retrieval import tools
from clipcite.retrieval.filters import Filters, narrowed
from clipcite.retrieval.schema import Moment
from clipcite.retrieval.search import Searcher

log = logging.getLogger("clipcite.assistant")

MAX_ROUNDS = 3
MAX_FOUND = 12  # moments kept for the answer step (the relevance gate picks from these)

TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "search_archive",
        "description": "Search what was said and shown in the meeting recordings and training "
                       "videos. Returns numbered snippets with recording title and time.",
        "parameters": {"type": "object", "properties": {
            "query": {"type": "string", "description": "what to look for, in a few words"},
            "recording": {"type": "string",
                          "description": "optional: part of a recording title to search in"},
        }, "required": ["query"]}}},
    {"type": "function", "function": {
        "name": "read_around",
        "description": "Read what was said just before and after a snippet found earlier.",
        "parameters": {"type": "object", "properties": {
            "snippet": {"type": "integer", "description": "the snippet's number"},
        }, "required": ["snippet"]}}},
]


def research(chat: ChatModel, searcher: Searcher, question: str, filters: Filters,
             k: int) -> list[Moment]:
    """The moments a tool-calling model gathered for the question ([] if it searched nothing)."""
    messages: list[Message] = render_messages("research", question=question)
    found: list[Moment] = []
    for _ in range(MAX_ROUNDS):
        text, calls = chat.call_tools(messages, TOOLS)
        if not calls:
            break
        messages.append({"role": "assistant", "content": text, "tool_calls": [
            {"id": c.id, "name": c.name, "args": c.args} for c in calls]})
        for call in calls:
            first = len(found)
            found = merge(found, _run(call, searcher, filters, k, found))
            shown = found[first:]
            reply = render_evidence(shown, start=first + 1, quoted=True) if shown else \
                "Nothing new found."
            messages.append({"role": "tool", "tool_call_id": call.id, "content": reply})
    return found[:MAX_FOUND]


def merge(first: Sequence[Moment], then: Sequence[Moment]) -> list[Moment]:
    """`first`, then the moments of `then` that are not already there (same stretch)."""
    out = list(first)
    for m in then:
        if not any(m.media_id == o.media_id and abs(m.start - o.start) < 0.5
                   and abs(m.end - o.end) < 0.5 for o in out):
            out.append(m)
    return out


def _run(call: ToolCall, searcher: Searcher, filters: Filters, k: int,
         found: Sequence[Moment]) -> list[Moment]:
    if call.name == "search_archive":
        query = str(call.args.get("query") or "").strip()
        if not query:
            return []
        recording = str(call.args.get("recording") or "").strip()
        if recording:
            filters = narrowed(searcher.index, filters, title=recording)
        return tools.search_all(searcher, query, k, filters)
    if call.name == "read_around":
        try:
            n = int(call.args.get("snippet"))
        except (TypeError, ValueError):  # the model's argument is no number: nothing to read
            log.warning("read_around called with %r", call.args.get("snippet"), exc_info=True)
            return []
        if not 1 <= n <= len(found):
            return []
        m = found[n - 1]
        try:
            return tools.get_context(searcher, m.media_id, m.start, m.end, padding=15.0,
                                     filters=filters)
        except tools.NotFound:  # removed since it was found
            log.warning("read_around: %s cannot be read", m.media_id, exc_info=True)
            return []
    return []
