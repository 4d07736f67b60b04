"""What a conversation turn is made of: the user's and the assistant's turns, the route a
message takes, the reply, and the events a turn reports while it runs; and what the summary
path needs of the assistant (`Answering`), so that it does not import the agent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from clipcite.assistant.dates import Period
from clipcite.assistant.evidence import Citation
from clipcite.retrieval.filters import Filters
from clipcite.retrieval.schema import Moment
from clipcite.retrieval.search import Searcher


@dataclass
class Turn:
    role: str  # "user" | "assistant"
    content: str
    # What an assistant turn cited: "what did she say next?" continues from there. A history
    # kept as text only is read for its "Title, 00:14–00:17" labels instead.
    citations: list[Citation] = field(default_factory=list)


@dataclass
class Route:
    intent: str
    question: str
    queries: list[str]
    recording: str | None = None
    speaker: str | None = None
    # A follow-up read with the question before it ("Who's writing the QA tester ad? Why do
    # we need one?"): searched and judged alongside the router's rewrite, which the 1.5B
    # model often leaves as it was ("Why do we need one?").
    in_context: str | None = None
    period: Period | None = None  # when the recordings were made ("last month")
    # A recording the user names by name and kind ("the HR phone call"), and the ones of the
    # caller's it matches: the search and a summary keep to those, and a name that matches
    # none is said so (Assistant.turn), never swapped for another recording.
    named: str | None = None
    media_ids: tuple[str, ...] = ()


@dataclass
class Reply:
    answer: str
    citations: list[Citation] = field(default_factory=list)
    intent: str = "answer"
    queries: list[str] = field(default_factory=list)
    found: list[Moment] = field(default_factory=list)  # what the search returned
    dropped: list[int] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"answer": self.answer, "citations": [c.to_json() for c in self.citations],
                "intent": self.intent, "queries": self.queries}


@dataclass
class Event:
    """What a turn reports while it runs: "route", "token" (answer text), then "reply"."""

    kind: str
    data: Any


class Answering(Protocol):
    """The assistant as the summary path uses it (assistant.agent.Assistant is one)."""

    searcher: Searcher
    chat: Any
    filters: Filters

    def support(self, sentence: str, snippet: str) -> float: ...

    def search(self, route: Route, within: Filters | None = None) -> list[Moment]: ...

    def answer(self, route: Route, timings: dict[str, float], t0: float,
               within: Filters | None = None) -> Iterator[Event]: ...
