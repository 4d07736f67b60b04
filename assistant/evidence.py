"""Numbered evidence in, checked citations out.

The model sees snippets numbered [1]..[n] and cites numbers only. The program maps a number to
its snippet's recording and times, drops numbers that do not exist, and drops a citation whose
snippet does not support its sentence, so every citation shown points at real evidence.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from clipcite.assistant.quantities import agree, quantities
from clipcite.retrieval.schema import Moment, clock, label

log = logging.getLogger(__name__)

Support = Callable[[str, str], float]  # (sentence, snippet) -> 0..1
# A citation stays only if its snippet supports the sentence at least this well (0..1).
SUPPORT_THRESHOLD = 0.35
# A sentence left without a valid citation is cited at its best-supporting line only above
# this (stricter than the check of a citation the model gave: here the program picks it).
ATTRIBUTE_THRESHOLD = 0.5
# A citation moves to another evidence line that shares this many more of the sentence's
# content words (and at least ATTRIBUTE_THRESHOLD of them): the 1.5B model often cites the
# line beside the one it read ("because it has the oldest stock system [1]" citing "We can
# start the pilot on April 7th", the line after the one that says it).
REPIN_MARGIN = 0.3

# A sentence saying what the lines do not say (the answer prompt's words for a part it cannot
# answer).
_ABSENCE = re.compile(r"(?:\bnot|\bnever|n't) (?:been |specifically |explicitly )?mention",
                      re.I)
_MARK = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
# A sentence ends at . ! ? (and its citation marks) before a capital: "ext. 4417" goes on.
_SENTENCE = re.compile(r"(?<=[.!?\]])\s+(?=[A-Z\"“])")


# Recorded text reaches a model only inside this block, each line's words in “quotes”: the
# prompts say that what is inside is data to answer from, never instructions to follow.
EVIDENCE_OPEN, EVIDENCE_CLOSE = "<evidence>", "</evidence>"
# Characters with which a recording could close its quote, end the block, or forge a line
# number or marker of ours: each becomes a look-alike that means nothing to the format.
_NEUTRAL = str.maketrans({"“": "'", "”": "'", '"': "'", "«": "'", "»": "'", "<": "‹",
                          ">": "›", "[": "(", "]": ")", "{": "(", "}": ")"})


def plain(text: str) -> str:
    """Text from a recording (or a title or name) on one line, with nothing in it that could
    end a quotation or the evidence block, or pass for a line number."""
    return " ".join(text.split()).translate(_NEUTRAL)


def quote(text: str) -> str:
    """Text from a recording as one quotation the model cannot step out of."""
    return f"“{plain(text)}”"


def evidence_block(body: str) -> str:
    return f"{EVIDENCE_OPEN}\n{body}\n{EVIDENCE_CLOSE}"


def render_evidence(moments: Sequence[Moment], max_chars: int = 220, start: int = 1,
                    quoted: bool = False) -> str:
    """Numbered snippets ("[1] Title, 00:24–00:29 (Speaker): text"), from `start`. `quoted`:
    each text in quotes inside the evidence block, as every prompt gets them."""
    lines = []
    for n, m in enumerate(moments, start):
        who = f" ({m.speaker})" if m.speaker else ""
        kind = {"slides": " [on screen]", "frames": " [on screen]", "audio": " [sound]"}.get(
            m.modality, "")
        if quoted:
            who = f" ({plain(m.speaker)})" if m.speaker else ""
            lines.append(f"[{n}] {plain(label(m))}{who}{kind}: {_quoted(m, max_chars)}")
        else:
            lines.append(f"[{n}] {label(m)}{who}{kind}: {snippet_text(m)[:max_chars]}")
    return evidence_block("\n".join(lines)) if quoted else "\n".join(lines)


def render_passages(groups: Sequence[Sequence[Moment]], max_chars: int = 220) -> str:
    """Numbered lines grouped by the stretch of a recording they come from, inside the
    evidence block: each group is a heading ("Q3 planning, 00:24–00:41:") and its lines
    ("[2] Maria: “text”"), numbered across groups in order, so the model reads a hit with the
    lines around it and still cites the one line that says what it writes."""
    out: list[str] = []
    n = 1
    for group in groups:
        if not group:
            continue
        out.append(f"{plain(group[0].title)}, {clock(group[0].start)}–{clock(group[-1].end)}:")
        for m in group:
            who = f"{plain(m.speaker)}: " if m.speaker else ""
            kind = {"slides": "[on screen] ", "frames": "[on screen] ", "audio": "[sound] "}.get(
                m.modality, "")
            out.append(f"[{n}] {kind}{who}{_quoted(m, max_chars)}")
            n += 1
    return evidence_block("\n".join(out))


def fit_groups(groups: Sequence[Sequence[Moment]], max_chars: int) -> list[list[Moment]]:
    """The groups, best first, that render_passages shows in about `max_chars` (the first
    always): a group that would not fit is left out, and a smaller one after it may still."""
    kept: list[list[Moment]] = []
    used = 0
    for group in groups:
        size = len(render_passages([group]))
        if kept and used + size > max_chars:
            continue
        kept.append(list(group))
        used += size
    return kept


def render_lines(lines: Sequence[tuple[int, Moment]], speakers: bool = True) -> str:
    """A recording's numbered lines ("[3] Maria: “text”") inside the evidence block, for the
    summary prompts (whole lines: a summary quotes them)."""
    return evidence_block("\n".join(
        f"[{n}] {plain(m.speaker) + ': ' if speakers and m.speaker else ''}{quote(m.text)}"
        for n, m in lines))


def _quoted(moment: Moment, max_chars: int) -> str:
    """A moment's words in quotes, and the slide shown meanwhile in quotes of its own, within
    `max_chars` together (the speech first: it is what is cited)."""
    said, shown = snippet_parts(moment)
    said = said[:max_chars]
    shown = shown[:max(0, max_chars - len(said) - 14)]
    return f"{quote(said)} (on screen: {quote(shown)})" if shown else quote(said)


def snippet_text(moment: Moment) -> str:
    """What the model reads for a moment, and what a citation of it is checked against."""
    said, shown = snippet_parts(moment)
    # Speech said while a slide was up is cited at the speech; what the slide shows often
    # holds the fact ("Room 2.14"), so it comes along.
    return f"{said} [on screen: {shown}]" if shown else said


def snippet_parts(moment: Moment) -> tuple[str, str]:
    """A moment's own text, and the text of the slide shown meanwhile ("" if none)."""
    text = _compact(moment.text.splitlines()) if moment.modality == "slides" else moment.text
    shown = [e["text"] for e in moment.evidence if e.get("modality") == "slides"]
    if moment.modality != "transcript" or not shown:
        return " ".join(text.split()), ""
    return " ".join(text.split()), " ".join(_compact(shown).split())


def _compact(rows: Sequence[str]) -> str:
    """Slide lines each carry the slide's title ("Laptop and Access Card: Room 2.14"); the
    title is said once, so that the snippet's characters (and the local model's prompt tokens)
    go to what the slide says."""
    rows = list(dict.fromkeys(r.strip() for text in rows for r in text.splitlines()
                              if r.strip()))
    if len(rows) < 2:
        return "\n".join(rows)
    title = rows[0].split(": ", 1)[0]
    prefix = f"{title}: "
    if not all(r.startswith(prefix) or r == title for r in rows):
        return "\n".join(rows)
    return prefix + "; ".join(r[len(prefix):] for r in rows if r != title)


@dataclass
class Citation:
    n: int
    media_id: str
    path: str
    title: str
    start: float
    end: float
    text: str
    speaker: str | None = None

    def to_json(self) -> dict:
        return {"n": self.n, "media_id": self.media_id, "path": self.path, "title": self.title,
                "start": round(self.start, 3), "end": round(self.end, 3), "text": self.text}


@dataclass
class CheckedAnswer:
    text: str
    citations: list[Citation] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)  # numbers that were invalid or unsupported
    unsupported: list[str] = field(default_factory=list)  # sentences left with no citation


_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset("the a an and or of to in on at for is are was were be it this that with as "
                  "by from we you they he she i our their his her will would can could".split())


def content_words(text: str) -> set[str]:
    """The words that carry a sentence's content, cut to 6 letters ("approved" ~ "approve")."""
    return {w[:6] for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1}


def word_overlap(sentence: str, snippet: str) -> float:
    """The share of the sentence's content words that the snippet has too."""
    words = content_words(sentence)
    return len(words & content_words(snippet)) / len(words) if words else 0.0


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]


# A sentence is complete once its end mark (and any citation marks after it) is followed by
# white space: "... in March [2]. Next" or "... in March. [2] Next".
_COMPLETE = re.compile(r"^(.*?[.!?](?:\s*\[[\d,\s]+\])*)\s+(?=[A-Z\"“])", re.S)


class CitationChecker:
    """Checks an answer sentence by sentence, so checked text can stream as it is written."""

    def __init__(self, evidence: Sequence[Moment], support: Support, threshold: float,
                 question: str = "") -> None:
        self.evidence, self.support, self.threshold = evidence, support, threshold
        self._asked = quantities(question)  # numbers the question gives are not claims
        self._texts = [snippet_text(m) for m in evidence]  # read once per answer, not per
        self._held = [quantities(t) for t in self._texts]  # sentence
        self.kept: dict[int, int] = {}  # evidence number -> citation number shown
        self.result = CheckedAnswer("")
        self._buffer = ""
        self._shown = ""  # the words of the sentence being written already shown

    def feed(self, delta: str) -> list[str]:
        """Add generated text; return what can be shown of it now, in order: the words of the
        sentence being written, each once it is complete (citation marks left out), and at a
        sentence's end the rest of it with the citations checked. Joined, the pieces read as
        the checked answer (`result.text`); a sentence's citations change, its words do not."""
        self._buffer += delta
        out = []
        while (m := _COMPLETE.match(self._buffer)) is not None:
            out += self._ended(self.sentence(m.group(1)), " ")
            self._buffer = self._buffer[m.end():]
        # Words are shown up to the last complete one before any unfinished mark ("[1,").
        opened = self._buffer.rfind("[")
        settled = self._buffer[:opened] if opened > self._buffer.rfind("]") else self._buffer
        words = _plain(settled)
        ready = words[:max(words.rfind(" "), 0)]
        if len(ready) > len(self._shown) and ready.startswith(self._shown):
            out.append(ready[len(self._shown):])
            self._shown = ready
        return out

    def close(self) -> list[str]:
        """The rest of the answer, checked (see feed)."""
        rest, self._buffer = self._buffer.strip(), ""
        return self._ended(self.sentence(rest) if rest else "", "")

    def _ended(self, text: str, after: str) -> list[str]:
        """What is left to show of a finished sentence, given the words already shown."""
        shown, self._shown = self._shown, ""
        if not text:
            return []
        if not text.startswith(shown):  # cannot happen: words shown are never rewritten
            log.warning("streamed words %r do not start the checked sentence %r", shown, text)
            return [" " + text + after]
        return [text[len(shown):] + after]

    def _attributed(self, plain: str, stated: set[float]) -> list[int]:
        """The line that best supports a sentence left without a valid citation, if it
        supports it well (ATTRIBUTE_THRESHOLD): a small model often answers from the lines
        and forgets the numbers, especially over several lines ("Summarize the discussion
        about ..."), or cites the line next to the one it read."""
        if not self.evidence:
            return []
        if len(plain.split()) < 4:
            # Too short to judge by its words, unless it is a figure only one line states
            # ("140 [1]", the line above "But only 140 of those sign-ups became paying
            # customers" cited).
            holders = [i + 1 for i, held in enumerate(self._held) if stated and stated <= held]
            return holders if len(holders) == 1 else []
        # A line the program picks for a sentence that states a number must state it too.
        scores = [self.support(plain, text) if not stated or stated & held else 0.0
                  for text, held in zip(self._texts, self._held)]
        best = max(range(len(scores)), key=scores.__getitem__)
        return [best + 1] if scores[best] >= ATTRIBUTE_THRESHOLD else []

    def _repinned(self, plain: str, stated: set[float], cited: list[int]) -> list[int]:
        """Each citation, or the line that says the sentence clearly more in its words
        (REPIN_MARGIN), with no other number than it states."""
        shared = [word_overlap(plain, text) for text in self._texts]
        out: list[int] = []
        for n in cited:
            free = [i for i, held in enumerate(self._held)
                    if i + 1 not in cited and i + 1 not in out and agree(stated, held)]
            best = max(free, key=shared.__getitem__, default=None)
            moved = best is not None and shared[best] >= ATTRIBUTE_THRESHOLD and \
                shared[best] - shared[n - 1] >= REPIN_MARGIN
            out.append(best + 1 if moved else n)
        return out

    def _backs(self, plain: str, stated: set[float], n: int) -> bool:
        """Evidence line n backs its sentence: alike enough, and no other number than it
        states ("five thousand euros" is not backed by "a credit of $15,000", however alike
        e5 finds the two: the 1.5B model cited such lines for invented amounts)."""
        return (agree(stated, self._held[n - 1]) and
                self.support(plain, self._texts[n - 1]) >= self.threshold)

    @property
    def pending(self) -> str:
        return self._buffer

    def sentence(self, sentence: str) -> str:
        plain = _plain(sentence)
        numbers = [int(x) for m in _MARK.finditer(sentence) for x in m.group(1).split(",")]
        if _ABSENCE.search(plain):
            # "The recordings do not mention who approved it." (prompts/answer.md asks for
            # this when only part of a question is answered): it cites nothing, and is not
            # attributed to the line that shares its words.
            self.result.dropped.extend(dict.fromkeys(numbers))
            self.result.text = f"{self.result.text} {plain}".strip()
            return plain
        stated = quantities(plain) - self._asked
        supported = [n for n in dict.fromkeys(numbers) if 1 <= n <= len(self.evidence) and
                     self._backs(plain, stated, n)]
        self.result.dropped.extend(n for n in dict.fromkeys(numbers) if n not in supported)
        if not supported and plain:
            # No number, or none that holds: the line that does say it, if one clearly does
            # (the 1.5B model cites a neighbour of the line it read, or forgets the number).
            supported = self._attributed(plain, stated)
        supported = self._repinned(plain, stated, supported)
        good = []
        for n in supported:
            if n not in self.kept:
                self.kept[n] = len(self.kept) + 1
                m = self.evidence[n - 1]
                self.result.citations.append(Citation(self.kept[n], m.media_id, m.path, m.title,
                                                      m.start, m.end, m.text, m.speaker))
            good.append(self.kept[n])
        if not plain:
            return ""
        if not good:
            self.result.unsupported.append(plain)
        marks = "".join(f"[{g}]" for g in good)
        # The marks go before the sentence's own full stop, unless that stop ends an
        # abbreviation ("at 10 a.m." must not become "at 10 a.m [1].").
        last = plain.split()[-1] if plain.split() else ""
        if marks and plain[-1] in ".!?" and not (plain[-1] == "." and "." in last[:-1]):
            text = f"{plain[:-1]} {marks}{plain[-1]}"
        else:
            text = f"{plain} {marks}".strip()
        self.result.text = f"{self.result.text} {text}".strip()
        return text


def check_citations(answer: str, evidence: Sequence[Moment], support: Support,
                    threshold: float) -> CheckedAnswer:
    """Keep citations that exist and support their sentence; renumber them 1..k in order."""
    checker = CitationChecker(evidence, support, threshold)
    for sentence in split_sentences(answer):
        checker.sentence(sentence)
    return checker.result


def _plain(sentence: str) -> str:
    """A sentence's words without its citation marks, as the reply shows them."""
    return _strip_space(_MARK.sub("", sentence))


def _strip_space(text: str) -> str:
    return re.sub(r"\s+([.,;:!?])", r"\1", " ".join(text.split()))
