"""The assistant: one turn = route, search, answer from numbered evidence, check citations.

With the local model every decision is schema-constrained JSON (a "router"), because a 1.5B
model picks tools reliably only when constrained (8/8 vs 6/8 free-form, 0/5 llama.cpp
function calling). The model never sees a path or a timestamp it could copy wrongly: it cites
snippet numbers, and the program attaches each snippet's own recording and times.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np

from clipcite.assistant.evidence import (SUPPORT_THRESHOLD, Citation, CitationChecker, clock,
                                         fit_groups, label, render_passages, snippet_parts,
                                         word_overlap)
from clipcite.assistant.dates import recorded_period
from clipcite.assistant.llm import LLMError, ServiceError
from clipcite.assistant.named import (KINDS, identified, matching, named_recording, several,
                                      unavailable)
from clipcite.assistant.parts import question_parts
from clipcite.assistant.prompts import render, render_messages
from clipcite.assistant.turns import Event, Reply, Route, Turn
from clipcite.assistant.research import merge, research
from clipcite.assistant.summary import summarize_turn, topic_words
from clipcite.retrieval import tools
from clipcite.retrieval.filters import Filters, narrowed
from clipcite.retrieval.schema import TRANSCRIPT, Moment
from clipcite.retrieval.search import Searcher

log = logging.getLogger("clipcite.assistant")

INTENTS = ("find", "answer", "summarize", "list", "smalltalk", "out_of_scope")
ROUTE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "intent": {"type": "string", "enum": list(INTENTS)},
        "question": {"type": "string"},
        "queries": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 5},
        "recording": {"type": ["string", "null"]},
        "speaker": {"type": ["string", "null"]},
    },
    # recording and speaker are left out when the message names none: writing out two nulls
    # took ~12 of the router's ~31 generated tokens (~1.5 s on 2 cores).
    "required": ["intent", "question", "queries"],
}
# A first message is already standalone: not asking the model to restate it saves ~15 generated
# tokens (~1 s on 2 cores), the largest part of the router's time once its prompt is cached.
FIRST_ROUTE_SCHEMA: dict[str, Any] = {
    **ROUTE_SCHEMA,
    "properties": {k: v for k, v in ROUTE_SCHEMA["properties"].items() if k != "question"},
    "required": [k for k in ROUTE_SCHEMA["required"] if k != "question"],
}
REFUSAL = "NOT MENTIONED"  # how prompts/answer.md asks the model to say "not in the snippets"
REFUSAL_WORDS = ("Not", "NOT", "not", " Not")  # how that reply's first token may be written
EVIDENCE_K = 5
PART_K = 2  # moments searched for each part of a multi-part question (assistant/parts.py)
MAX_MESSAGE_CHARS = 2000
# A hit reaches the model only if it is about the question: e5 query-passage cosine of the
# line, or of the best top passage around it (a question about a discussion matches the
# stretch more than any one of its lines), calibrated by eval/gate.py on the tuning halves
# (QMSum, development answers). On the check halves it lets 0.84 of answerable QMSum questions
# through and refuses 0.89 of absent ones (lines alone at 0.83: 0.73 and 0.83), and every
# absent development one.
RELEVANCE_THRESHOLD = 0.8425
PASSAGE_GATE_K = 5  # top passages whose similarity counts for the moments inside them
# Two methods where one is unsure: with a model that judges (the packaged local model), a
# question whose best hit scores within JUDGE_BAND is decided by that score moved by
# judged_shift(p, JUDGE_WEIGHT), p being the model's own readiness to answer from the evidence
# it would read (one minus the probability that its answer starts "Not mentioned"); it passes
# at GATE_THRESHOLD. Outside the band the judgement could not change the decision.
# Chosen together by eval/gate.py --judge on the tuning halves (e5 alone: RELEVANCE_THRESHOLD).
GATE_THRESHOLD = 0.87
JUDGE_WEIGHT = 0.11
JUDGE_BAND = (0.79, 0.88)  # the band eval/gate.py judged (BAND) when it chose the two above
# A hit is read with the lines around it that belong to it: the other half of a two-part
# answer ("...and why?") is often the next line, by the same or another speaker.
CONTEXT_LINES = 1  # lines either side of a hit
CONTEXT_SECONDS = 20.0  # ...said this close to it
MIN_CONTEXT_WORDS = 3  # "Mm-hmm." and "Yeah." carry nothing to cite
# The answer prompt's evidence stops at about this many characters (~3 a prompt token), best
# hits first: its tokens are read at ~100 a second on 2 cores before the first word, and on
# long meetings' long lines they were most of the slowest first words (QMSum p95 11-12 s). On
# the 90-question answer set's tuning half the p80 of the evidence was 1,235 characters.
EVIDENCE_CHARS = 1200


# A message that leans on the one before: a pronoun or "one" ("why do we need one?"), or an
# opening such as "and ..." / "what about ...".
_REFERS_BACK = re.compile(
    r"\b(it|its|he|him|his|she|her|they|them|their|that|this|those|these|there|one)\b"
    r"|^\W*(and|but|so|also|what about|how about|why)\b", re.IGNORECASE)


# Words that always mean a whole-recording summary; the 1.5B router sent "what were the action
# items in the planning meeting?" to a top-5 answer, which cannot list them all.
_SUMMARY_WORDS = re.compile(r"\b(summari[sz]e|summary|recap|action items|overview|key points)\b",
                            re.I)


# "What did she say next?", "and right after that?", "what came before that?": the answer is
# in the lines beside what was last cited, which a search for the words would not find.
_SPOKEN = (r"(say|said|says|ask|asked|answer|answered|reply|replied|respond|responded|happen|"
           r"happened|come|came|follow|followed|talk|talked|mention|mentioned)")
_AFTER = re.compile(rf"\b{_SPOKEN}\b.*\b(next|after that|afterwards|right after|straight after)"
                    r"\b|^\W*(and\s+)?(then|next|after that)\W*$", re.I)
_BEFORE = re.compile(rf"\b{_SPOKEN}\b.*\b(before that|just before|right before|beforehand)\b"
                     r"|^\W*(and\s+)?before that\W*$", re.I)
_IMMEDIATELY = re.compile(r"\b(right|straight|just|immediately|directly) (after|before)\b", re.I)
_OTHER_PERSON = re.compile(r"\b(the other|someone else|somebody else|the others)\b", re.I)


def judged_shift(p: float, weight: float) -> float:
    """How far the model's readiness to answer (p) moves a question's e5 score: weight x
    (confidence - 0.5), the confidence being how many orders of magnitude, out of 3, the
    refusal's probability lies below one. Read on a log scale because the readiness
    saturates: on the 90-question set most answerable questions gave 0.97-1.00, the absent
    ones 0.30-0.99."""
    confidence = min(1.0, -math.log10(max(1.0 - p, 1e-3)) / 3)
    return weight * (confidence - 0.5)


def candidates(moments: Sequence[Moment], scores: Sequence[float]) -> list[Moment]:
    """The moments a judged question would be answered from: those that pass on their own
    score, else every one in or above JUDGE_BAND (search order kept: the judgement reads the
    very prompt the answer is written from)."""
    return ([m for m, s in zip(moments, scores) if s >= RELEVANCE_THRESHOLD]
            or [m for m, s in zip(moments, scores) if s >= JUDGE_BAND[0]])


_LABEL = re.compile(r"([^\[\]\n,]+?), (\d+(?::\d\d){1,2})–(\d+(?::\d\d){1,2})")
NEIGHBOUR_LINES = 4


# What an answer quoted from recordings: anything in quotes, and a summary's quoted items
# ("- Maria: text [3]").
_QUOTED = re.compile(r"“[^”]*”|\"[^\"\n]*\"")
_QUOTED_ITEM = re.compile(r"^\s*[-*•]\s.*\[\d+\]\W*$", re.M)
_MARKS = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")


def own_words(turn: Turn) -> str:
    """A turn as the router and the name checks read it: the user's words, or the assistant's
    answer without what it quoted from recordings (the lines it cited, quotes, a summary's
    quoted items), so that no recording can steer how the next message is routed. A
    recording that said "ignore all previous instructions ..." had turned "What is the
    quarterly budget?" into a summary that obeyed it, via the summary quoted in the history."""
    text = turn.content
    if turn.role != "assistant":
        return text
    for cited in turn.citations:
        said = " ".join(cited.text.split())
        if said:
            text = re.sub(re.escape(said).replace(r"\ ", r"\s+"), " ", text, flags=re.I)
    text = _MARKS.sub("", _QUOTED.sub(" ", _QUOTED_ITEM.sub("", text)))
    return "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())


# The router's "list" and "summarize" (whole recordings) are kept only for a message that
# speaks of recordings ("which recordings are there?", "what does the sales training video
# walk you through?"): the 1.5B router listed the recordings for "Where will the team offsite
# be held?", and after a summary in the conversation it summarised again for "What is the
# quarterly budget?" (a question about one fact). Summary words force "summarize" anyway.
_ABOUT_RECORDINGS = re.compile(rf"\b({KINDS}|archive|library|uploads?)\b", re.I)


def _beside(message: str) -> str | None:
    """Which side of the last citation a follow-up asks about: "after" ("what did she say
    next?"), "before" ("...before that?"), or None."""
    after, before = _AFTER.search(message), _BEFORE.search(message)
    return "before" if before and not after else ("after" if after else None)


def _named(value: Any, said: str) -> str | None:
    """A recording or speaker the router read from the conversation, if the conversation does
    name it: the 1.5B model fills these in unasked ("speaker": "unknown", "recording":
    "security officer" for "who is our security officer?"), and a filter nobody asked for can
    only narrow the search wrongly."""
    value = " ".join(str(value or "").split())
    return value if value and value.casefold() in said and \
        value.casefold() not in ("unknown", "none", "null", "n/a") else None


def _without(text: str, phrase: str) -> str:
    """The text with a phrase taken out ("what did Ken say last month?" -> "what did Ken
    say?"), or the text as it was if nothing would be left."""
    out = re.sub(rf"\s*\b{re.escape(phrase)}(?:'s|’s)?\b", "", text, flags=re.IGNORECASE)
    out = " ".join(out.split())
    return out if len(out.split()) >= 2 else text


def _seconds(text: str) -> float:
    total = 0.0
    for part in text.split(":"):
        total = total * 60 + int(part)
    return total


def _with_example(question: str, example: tools.Example | None) -> str:
    """The question as the answer prompt reads it: the model neither hears nor sees an attached
    clip or screenshot, so what "this" is in "what was said around this?" is told in words."""
    if example is None or not example.text:
        return question
    what = "an attached audio clip that says" if example.kind == "audio" else \
        "an attached screenshot that reads"
    return f"{question}\n(The question is about {what}: “{' '.join(example.text.split())[:300]}”)"


class Assistant:
    def __init__(self, searcher: Searcher, chat: Any, filters: Filters | None = None,
                 k: int = EVIDENCE_K, example: tools.Example | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now().astimezone()) -> None:
        self.searcher = searcher
        self.chat = chat  # assistant.llm ChatModel: stream(), complete(), json()
        self.filters = filters or Filters()
        self.k = k
        # A clip or screenshot attached to the message (ingestion/example.py read it): the turn
        # searches by it as `clipcite search --like` does, and answers from what it finds.
        self.example = example
        self.now = now  # "last month" is read against this (local time)

    def warm_up(self) -> None:
        """Evaluate the fixed start of the router and answer prompts before the first question
        (the local model then reads only each prompt's variable end: ~4 s saved per call)."""
        self.chat.prefill([{"role": "user", "content": render("router_first", message="")}])
        self.chat.prefill([{"role": "user", "content": render(
            "router", history="(none)", message="")}])
        self.chat.prefill(render_messages("answer", evidence="", question=""))

    # -- decisions ---------------------------------------------------------------------------
    def route(self, message: str, history: Sequence[Turn]) -> Route:
        """The message's intent, phrasings and filters, from the user's words and the
        conversation: never from recorded text (own_words)."""
        said_before = [own_words(t) for t in history[-4:]]
        asked = [t.content.strip() for t in history if t.role == "user"]
        refers = bool(asked) and bool(_REFERS_BACK.search(message))
        if refers:
            recent = "\n".join(f"{t.role.capitalize()}: {words[:300]}"
                               for t, words in zip(history[-4:], said_before))
            prompt, schema = render("router", history=recent, message=message), ROUTE_SCHEMA
        else:
            # A message that does not lean on the conversation is routed as a first message:
            # shown a summary in the history, the 1.5B router summarised again for "What is
            # the quarterly budget?" and rewrote "When is the launch date?" as its own
            # example ("When will the customer portal launch?").
            prompt, schema = render("router_first", message=message), FIRST_ROUTE_SCHEMA
        try:
            out = self.chat.json([{"role": "user", "content": prompt}], schema)
        except LLMError:  # a reply that is not the JSON asked for must not lose the question
            log.warning("the router's reply was unusable; answering %r as a question", message,
                        exc_info=True)
            out = {}
        intent = out.get("intent") if out.get("intent") in INTENTS else "answer"
        if _SUMMARY_WORDS.search(message):
            intent = "summarize"
        elif intent in ("list", "summarize") and not _ABOUT_RECORDINGS.search(message):
            intent = "answer"
        question = (out.get("question") or message).strip()
        queries = [q.strip() for q in out.get("queries") or [] if isinstance(q, str) and q.strip()]
        in_context = f"{asked[-1]} {message.strip()}" if refers else None
        if refers and " ".join(question.casefold().split()) == " ".join(message.casefold().split()):
            # Not rewritten: the answer model still needs to know what "one" or "it" is, and
            # the router's phrasings of the bare message ("why need job ad") outvoted the
            # reading in context in the fused search.
            question = f"{message.strip()} (asked right after: {asked[-1]})"
            queries = []
        queries = list(dict.fromkeys([question, *queries]))[:5]
        if in_context:
            queries = list(dict.fromkeys([*queries[:4], in_context]))
        said = " ".join([message, *said_before]).casefold()
        recording = _named(out.get("recording"), said)
        speaker = _named(out.get("speaker"), said)
        period = recorded_period(message, self.now())
        if period:  # the period filters; as words it only pulled the similarity down
            question = _without(question, period.phrase)
            queries = list(dict.fromkeys(_without(q, period.phrase) for q in queries))
        named = named_recording(_without(message, period.phrase) if period else message,
                                recording, definite=intent == "summarize")
        return Route(intent, question, queries, recording,
                     speaker if speaker != recording else None, in_context, period, named)

    def support(self, sentence: str, snippet: str) -> float:
        """How well a snippet backs a sentence: shared content words, or e5 similarity."""
        overlap = word_overlap(sentence, snippet)
        vectors = self.searcher.text.embed_passages([sentence, snippet])
        similarity = float(np.dot(vectors[0], vectors[1]))
        # e5 puts unrelated English pairs near 0.75 and paraphrases above 0.85.
        return max(overlap, min(1.0, max(0.0, (similarity - 0.78) / 0.12)))

    def relevant(self, questions: Sequence[str], moments: Sequence[Moment]) -> list[Moment]:
        """The moments about one of the question's readings: those at RELEVANCE_THRESHOLD or
        above (e5). With a model that judges, a question whose best score is in JUDGE_BAND is
        decided by the score and the model's judgement of the candidates together
        (GATE_THRESHOLD); the candidates are then the moments read."""
        scores = self.relevance(questions, moments)
        best = max(scores, default=0.0)
        passing = [m for m, score in zip(moments, scores) if score >= RELEVANCE_THRESHOLD]
        if not JUDGE_BAND[0] <= best < JUDGE_BAND[1]:  # no judgement could change it
            return passing
        if best + judged_shift(1.0, JUDGE_WEIGHT) < GATE_THRESHOLD:
            return []  # not even the surest judgement would lift it to the gate: none is asked
        chosen = candidates(moments, scores)
        p = self.judge(questions[0], chosen)
        if p is None:  # no model that judges: e5 alone
            return passing
        return chosen if best + judged_shift(p, JUDGE_WEIGHT) >= GATE_THRESHOLD else []

    def judge(self, question: str, moments: Sequence[Moment]) -> float | None:
        """The model's readiness to answer the question from these moments: one minus the
        probability that its answer starts with the refusal, read from the answer prompt it
        would be given (the answer then reuses that prompt's evaluated state: the judgement
        costs one token, not a prompt of its own). None when the model does not say."""
        starting = getattr(self.chat, "first_word_probability", None)
        if starting is None or not moments:
            return None
        p = starting(self._answer_messages(question, self.evidence(moments)), REFUSAL_WORDS)
        return None if p is None else 1.0 - p

    def evidence(self, moments: Sequence[Moment]) -> list[list[Moment]]:
        """What the answer prompt reads of these moments: each with its lines around it, best
        first, up to EVIDENCE_CHARS."""
        return fit_groups(self.with_context(moments), EVIDENCE_CHARS)

    def _answer_messages(self, question: str, groups: list[list[Moment]]) -> list[dict]:
        return render_messages("answer", evidence=render_passages(groups),
                               question=_with_example(question, self.example))

    def relevance(self, questions: Sequence[str], moments: Sequence[Moment],
                  contexts: Sequence[str] = ()) -> list[float]:
        """How much each moment is about one of the question's readings (e5 cosine, best
        reading and part). With `contexts` (one per moment: the moment read with the lines
        around it) the stretch counts too: a question about a discussion matches the stretch
        more than any one line of it."""
        if not moments:
            return []
        # The speech and the slide shown meanwhile are scored apart: joined, a long slide
        # diluted the sentence that answers ("by the end of October" fell below the line).
        parts = [[p for p in snippet_parts(m) if p] for m in moments]
        for i, context in enumerate(contexts):
            if context:
                parts[i].append(context)
        queries = self.searcher.text.embed_queries(list(questions))
        vectors = iter(self.searcher.text.embed_passages([p for ps in parts for p in ps]))
        scores = [max(float(np.max(queries @ next(vectors))) for _ in ps) if ps else 0.0
                  for ps in parts]
        return [max(score, stretch) for score, stretch in
                zip(scores, self.stretch_relevance(questions, moments))]

    def stretch_relevance(self, questions: Sequence[str],
                          moments: Sequence[Moment]) -> list[float]:
        """For each moment, how much the best passage around it (a stretch of several turns)
        is about the question; 0 where no top passage covers it. A question about a
        discussion matches the stretch that holds it more than any one line of it."""
        media = tuple(dict.fromkeys(m.media_id for m in moments))
        if not media:
            return []
        passages = tools.passages_about(self.searcher, list(questions), PASSAGE_GATE_K,
                                        replace(self.filters, recordings=media))
        return [max((p.score for p in passages if p.media_id == m.media_id
                     and p.start < m.end and m.start < p.end), default=0.0) for m in moments]

    def with_context(self, moments: Sequence[Moment]) -> list[list[Moment]]:
        """Each hit with the lines around it (CONTEXT_LINES either side, said within
        CONTEXT_SECONDS), a group per hit in the hits' order; a line already shown is not
        repeated, and a hit keeps its own Moment (with the slide shown meanwhile)."""
        groups: list[list[Moment]] = []
        shown: set[tuple[str, float]] = set()
        for hit in moments:
            if (hit.media_id, hit.start) in shown:
                continue
            lines: list[Moment] = []
            if hit.modality == TRANSCRIPT:
                try:
                    lines = [m for m in tools.get_context(
                        self.searcher, hit.media_id, hit.start, hit.end, CONTEXT_SECONDS,
                        self.filters) if m.modality == TRANSCRIPT]
                except tools.NotFound:  # removed since the search: the hit is read alone
                    log.warning("no context for a hit in %s", hit.media_id, exc_info=True)
                    lines = []
            inside = [i for i, m in enumerate(lines) if m.end > hit.start and m.start < hit.end]
            if not inside:
                groups.append([hit])
                shown.add((hit.media_id, hit.start))
                continue
            lo, hi = max(0, inside[0] - CONTEXT_LINES), inside[-1] + CONTEXT_LINES + 1
            group = []
            for i, line in enumerate(lines[lo:hi], lo):
                key = (line.media_id, line.start)
                if key in shown or i in inside[1:] or (i not in inside and
                                    len(line.text.split()) < MIN_CONTEXT_WORDS):
                    continue
                shown.add(key)
                group.append(hit if i == inside[0] else line)
            if group:
                groups.append(group)
        return groups

    # -- a turn ------------------------------------------------------------------------------
    def turn(self, message: str, history: Sequence[Turn] = ()) -> Iterator[Event]:
        """The events of one turn: its route, the answer's text as it is written, then the
        reply, whose timings always hold "total" (whichever path made it)."""
        t0 = time.perf_counter()
        for event in self._turn(message, history, t0):
            if event.kind == "reply":
                event.data.timings.setdefault("total", time.perf_counter() - t0)
            yield event

    def _turn(self, message: str, history: Sequence[Turn], t0: float) -> Iterator[Event]:
        # A question is a few sentences; a pasted document would overflow the local model's
        # context (4,096 tokens) in every prompt it reaches.
        message = message[:MAX_MESSAGE_CHARS]
        route = self.route(message, history)
        yield Event("route", route)
        timings = {"route": time.perf_counter() - t0}
        # "out_of_scope" is answered from the archive too: the answer path refuses when nothing
        # supports an answer, and the 1.5B router sent real questions there (a question that
        # began "Ignore all previous instructions..." got a small-talk reply that obeyed it).
        nearby = self.neighbours(message, history) if history else []
        if route.named and not nearby and self.example is None:
            named = matching(tools.list_recordings(self.searcher, self.filters), route.named)
            route.media_ids = tuple(r.media_id for r in named)
            if route.intent == "summarize" and not named and \
                    topic_words(message, route.named):
                # A name no recording has, in a request that asks about more than it, is part
                # of a topic ("the ability to deliver teacher training"), not a recording: it
                # is answered from where the topic is discussed, as a summary of one topic of
                # a long recording is, never by summarising whichever recording a search
                # finds ("When is the Pipewell training for the sales team?" had been read as
                # a summary of the security training).
                route.named, route.intent = None, "answer"
            elif route.intent == "summarize" and len(named) != 1:
                # A summary of another recording than the one named is never what was asked.
                yield from self._say(several(route.named, named) if named else
                                     unavailable(route.named), route, timings)
                return
        if nearby:
            yield from self._answer(route, timings, t0, found=nearby,
                                    before=_beside(message) == "before")
        elif self.example is not None:  # an attachment always asks where it was said or shown
            yield from self._answer(route, timings, t0)
        elif route.intent == "list":
            yield from self._list(route, timings)
        elif route.intent == "summarize":
            yield from summarize_turn(self, route, timings)
        elif route.intent == "smalltalk":
            # Small talk only when nothing in the archive is about the message: the 1.5B
            # router sent "Which printer is out of toner?" here.
            searched = self.search(route)
            if self.relevant(self._readings(route), searched):
                yield from self._answer(route, timings, t0, searched=searched)
            else:
                yield from self._smalltalk(message, route, timings)
        else:
            # A name no recording the caller may see has is answered from the recordings they
            # may see, and said only when nothing answers: users describe recordings ("the
            # short inaugural speech clip") as often as they name them, and the citations say
            # which recording an answer is from.
            note = unavailable(route.named) if route.named and not route.media_ids else ""
            yield from _note_if_unanswered(note, self._answer(route, timings, t0))

    def ask(self, message: str, history: Sequence[Turn] = ()) -> Reply:
        reply = None
        for event in self.turn(message, history):
            if event.kind == "reply":
                reply = event.data
        assert reply is not None
        return reply

    # -- intents -----------------------------------------------------------------------------
    def search(self, route: Route, within: Filters | None = None) -> list[Moment]:
        base = within or self.filters
        filters = base
        if route.speaker:
            filters = Filters(**{**filters.__dict__, "speaker": route.speaker})
            if not tools.search_all(self.searcher, route.queries, 1, filters):
                filters = base  # an unknown speaker name must not hide everything
        if route.media_ids:  # the recordings the user named (Assistant.turn)
            filters = replace(filters, recordings=route.media_ids)
        elif route.recording:  # a title the router read, not written as a recording's name
            picked = identified(tools.list_recordings(self.searcher, filters), route.recording)
            if picked:  # a topic word that is also in a title narrows nothing
                filters = replace(filters, recordings=tuple(r.media_id for r in picked))
        filters = self._dated(filters, route)
        if self.example is not None:
            return tools.search_like(self.searcher, self.example, route.question, self.k, filters)
        found = tools.search_all(self.searcher, route.queries, self.k, filters)
        parts = question_parts(route.question)
        for part in parts if len(parts) > 1 else ():
            # Each part's own best lines join the evidence: the fused search of the whole
            # question found the line of the part that matched best, and missed the other.
            found = merge(found, tools.search_all(self.searcher, [part], PART_K, filters))
        if getattr(self.chat, "can_call_tools", False):
            # A model that calls tools searches again as it sees fit (several rounds); the
            # router's phrasings stay as a floor under what it gathers.
            try:
                gathered = research(self.chat, self.searcher, route.question, filters, self.k)
            except (LLMError, ServiceError):  # failed rounds must not lose the answer (a
                # refusing service fails the answer step too, and says so there)
                log.warning("searching with tool calls failed; answering from the router's "
                            "search", exc_info=True)
                gathered = []
            found = merge(gathered, found)
        return found

    def _dated(self, filters: Filters, route: Route) -> Filters:
        """The filters narrowed to the period the message names, unless no recording the
        caller may see was made then (the question is then answered from all of them)."""
        if route.period is None:
            return filters
        after = max((t for t in (filters.after, route.period.after) if t is not None),
                    default=None)
        before = min((t for t in (filters.before, route.period.before) if t is not None),
                     default=None)
        return narrowed(self.searcher.index, filters, after=after, before=before)

    def neighbours(self, message: str, history: Sequence[Turn]) -> list[Moment]:
        """For "what did she say next?" (or "before that?"): the lines right after (before)
        the moment the last answer cited, from that recording; [] for any other message."""
        side = _beside(message)
        anchor = self._last_cited(history) if side else None
        if anchor is None:
            return []
        media_id, start, end = anchor
        try:
            lines = tools.get_context(self.searcher, media_id, start, end, padding=60.0,
                                      filters=self.filters)
        except tools.NotFound:  # gone, or not the caller's: the message is searched instead
            log.warning("the last cited recording %s cannot be read", media_id, exc_info=True)
            return []
        lines = [m for m in lines if m.modality == TRANSCRIPT]
        # The cited line: the one that overlaps the cited stretch most (a label's whole
        # seconds can touch the line before it).
        cited = max(lines, default=None,
                    key=lambda m: min(m.end, end) - max(m.start, start))
        if _OTHER_PERSON.search(message) and cited is not None and cited.speaker:
            lines = [m for m in lines if m.speaker != cited.speaker]
        # "Right after that" is one line: given four, the model answered from the second.
        count = 1 if _IMMEDIATELY.search(message) else NEIGHBOUR_LINES
        if side == "before":
            return [m for m in lines if m.end <= start + 0.5][-count:]
        return [m for m in lines if m.start >= end - 0.5][:count]

    def _last_cited(self, history: Sequence[Turn]) -> tuple[str, float, float] | None:
        for past in reversed(history):
            if past.role != "assistant":
                continue
            if past.citations:
                last = max(past.citations, key=lambda c: c.end)
                return last.media_id, last.start, last.end
            labels = _LABEL.findall(past.content)
            if labels:
                title, start, end = labels[-1]
                titles = {r.title.casefold(): r.media_id
                          for r in tools.list_recordings(self.searcher, self.filters)}
                media_id = titles.get(title.strip(" [(").casefold())
                if media_id:
                    return media_id, _seconds(start), _seconds(end)
            return None
        return None

    def answer(self, route: Route, timings: dict[str, float], t0: float,
               within: Filters | None = None) -> Iterator[Event]:
        """A searched, cited answer, optionally from a narrower set of recordings."""
        yield from self._answer(route, timings, t0, within=within)

    def _readings(self, route: Route) -> list[str]:
        """The question as the relevance gate reads it: whole, each of its parts, and after
        the last one if it leans on it."""
        parts = question_parts(route.question)
        return [route.question, *(parts if len(parts) > 1 else []),
                *([route.in_context] if route.in_context else [])]

    def _say(self, text: str, route: Route, timings: dict[str, float]) -> Iterator[Event]:
        """A reply the program writes itself (no search, no model)."""
        yield Event("token", text)
        yield Event("reply", Reply(text, intent=route.intent, queries=route.queries,
                                   timings=timings))

    def _answer(self, route: Route, timings: dict[str, float], t0: float,
                found: list[Moment] | None = None,
                before: bool | None = None, within: Filters | None = None,
                searched: list[Moment] | None = None) -> Iterator[Event]:
        """Search (unless `found` is given), ask the model, check its citations. `before` is set
        when `found` are the lines after (False) or before (True) the last citation; `within`
        narrows the search (a summary of one topic of one recording); `searched` is this
        route's search, already made."""
        t = time.perf_counter()
        # Lines beside the last citation (a "what next?" follow-up) and moments found by an
        # attached example are what was asked for by construction; searched ones must be
        # about the question.
        gated = found is None and self.example is None
        if found is None:
            found = searched if searched is not None else self.search(route, within)
        timings["search"] = time.perf_counter() - t
        readings = self._readings(route)
        # Each hit is judged on its own words: judged with the lines around it too, the gate
        # let more answerable QMSum questions through (0.79 vs 0.69 on the tuning half) but
        # refused fewer absent ones (0.80 vs 0.86) and let two absent development questions
        # reach the model, which answered them (eval/gate.py --with-context).
        t = time.perf_counter()
        relevant = self.relevant(readings, found) if gated else found
        timings["gate"] = time.perf_counter() - t
        if found and not relevant:  # nothing is about it: no need to ask the model
            reply = self._not_found(route, found, timings)
            yield Event("token", reply.answer)
            timings["total"] = time.perf_counter() - t0
            yield Event("reply", reply)
            return
        if not found:
            reply = Reply("I could not find anything about this in the recordings you can see.",
                          intent=route.intent, queries=route.queries, timings=timings)
            yield Event("token", reply.answer)
            yield Event("reply", reply)
            return
        # The model reads only the snippets about the question: the others could not be cited
        # anyway, cost prompt time (~60 tokens each, ~1 s on 2 cores), and drew the 1.5B
        # model's answers away from the one that holds the fact.
        # Lines beside the last citation are the answer themselves: no context around them.
        groups = self.evidence(relevant) if before is None else [[m] for m in relevant]
        lines = [m for group in groups for m in group]
        messages = self._answer_messages(route.question, groups)
        t = time.perf_counter()
        checker = CitationChecker(lines, self.support, SUPPORT_THRESHOLD, route.question)
        held, deciding, refused = "", True, False
        for delta in self.chat.stream(messages):
            if deciding:  # hold the first characters back until they cannot be a refusal
                held += delta
                probe = " ".join(held.upper().split())
                if len(probe) < len(REFUSAL) and REFUSAL.startswith(probe):
                    continue
                deciding = False
                if probe.startswith(REFUSAL):
                    refused = True
                    break  # stop generating: nothing more is needed
                delta = held
            # Words show as they are written; a sentence's citations once it ends (checked).
            for piece in checker.feed(delta):
                timings.setdefault("first_token", time.perf_counter() - t0)
                yield Event("token", piece)
        if deciding and held.strip():
            refused = REFUSAL.startswith(" ".join(held.upper().split()))
        pieces = checker.feed(held) if deciding and not refused else []
        for piece in [*pieces, *checker.close()]:
            timings.setdefault("first_token", time.perf_counter() - t0)
            yield Event("token", piece)
        timings["generate"] = time.perf_counter() - t
        checked = checker.result
        if refused or not checked.citations:
            reply = (self._not_found(route, found, timings) if before is None
                     else self._verbatim(route, found, before, timings))
            yield Event("token", ("\n" if checked.text else "") + reply.answer)
        else:
            reply = Reply(checked.text, checked.citations, route.intent, route.queries, found,
                          checked.dropped, checked.unsupported, timings)
        timings["total"] = time.perf_counter() - t0
        yield Event("reply", reply)

    def _verbatim(self, route: Route, lines: list[Moment], before: bool,
                  timings: dict[str, float]) -> Reply:
        """The lines themselves, each cited, when the model would not answer from them: they
        are what "what did she say next?" asks for by construction (the 1.5B model sometimes
        refused the single line after "right after that")."""
        parts = ["Just before that, the recording has:" if before else "Next, the recording has:"]
        citations = []
        for n, m in enumerate(lines, 1):
            parts.append(f"{m.speaker or 'Someone'} ({clock(m.start)}): \u201c{m.text}\u201d [{n}]")
            citations.append(Citation(n, m.media_id, m.path, m.title, m.start, m.end, m.text,
                                      m.speaker))
        return Reply("\n".join(parts), citations, route.intent, route.queries, lines,
                     timings=timings)

    def _not_found(self, route: Route, found: list[Moment], timings: dict[str, float]) -> Reply:
        closest = "; ".join(label(m) for m in found[:3])
        return Reply("I could not find this in the archive. The closest moments I found were: "
                     f"{closest}.", intent=route.intent, queries=route.queries, found=found,
                     timings=timings)

    def _smalltalk(self, message: str, route: Route,
                   timings: dict[str, float]) -> Iterator[Event]:
        prompt = render("smalltalk", message=message)
        parts = []
        for delta in self.chat.stream([{"role": "user", "content": prompt}]):
            parts.append(delta)
            yield Event("token", delta)
        yield Event("reply", Reply("".join(parts).strip(), intent=route.intent,
                                   queries=[], timings=timings))

    def _list(self, route: Route, timings: dict[str, float]) -> Iterator[Event]:
        recs = tools.list_recordings(self.searcher, self._dated(self.filters, route))
        if route.recording:
            recs = [r for r in recs if route.recording.lower() in r.title.lower()] or recs
        lines = [f"- {r.title}" + (f" ({clock(r.duration)})" if r.duration else "")
                 for r in recs]
        text = ("These recordings are in the archive:\n" + "\n".join(lines)) if lines else \
            "There are no recordings you can see yet."
        yield Event("token", text)
        yield Event("reply", Reply(text, intent="list", queries=[], timings=timings))


def _note_if_unanswered(note: str, events: Iterator[Event]) -> Iterator[Event]:
    """The events of a reply, with `note` said after it when it cites nothing."""
    for event in events:
        if note and event.kind == "reply" and not event.data.citations:
            yield Event("token", "\n\n" + note)
            event.data.answer = f"{event.data.answer}\n\n{note}"
        yield event

