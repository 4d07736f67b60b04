"""Cutting word-timed transcripts into citable segments.

Citations point at segments, so a segment must be a moment, not a block of minutes: it ends at
a sentence end, a long pause or a change of speaker, and never runs past MAX_SECONDS. A
sentence of one or two words ("Hello?") is kept with what follows, so that no segment is too
thin to be found by meaning. Diarization's turn boundaries are a few hundred milliseconds off,
which cut sentences in two ("we're ready to" | "begin."): a whole sentence therefore takes the
speaker who says most of it before segments are cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from clipcite.retrieval.schema import PASSAGES, TRANSCRIPT, Segment

# About a subtitle's longest (7-8 s). tiny.en runs two sentences together when it misses the
# full stop ("...from the software center and ever approve a sign-in request..."); as one
# 8.3 s segment, neither half's question found it (dev set Hit@1 0.773 -> 0.818 at 8 s).
MAX_SECONDS = 8.0
PAUSE_SECONDS = 0.7
MIN_WORDS = 3
MAX_SENTENCES = 4
# Nobody speaks 10 words a second: a run that fast is Whisper writing text into a sliver of
# audio (a hallucinated "Thank you." at the end of a clip), not speech.
MAX_WORDS_PER_SECOND = 10.0
_SENTENCE_END = (".", "?", "!", "…")
_CLAUSE_END = (",", ";", ":", "—", "-")


@dataclass
class Word:
    start: float
    end: float
    text: str
    speaker: str | None = None


def _ends_sentence(word: Word) -> bool:
    return word.text.rstrip().rstrip('"\')]').endswith(_SENTENCE_END)


def join_words(words: list[Word]) -> str:
    """The words as text. Whisper starts each word with a space; a piece without one that
    starts with punctuation ("-in" after " sign", ",000" after " $30", "%") continues the word
    before it, so that "sign-in", "$30,000" and "80%" read (and are searched) as written."""
    text = ""
    for w in words:
        piece = w.text
        if not piece.strip():
            continue
        if text and not piece[0].isspace() and not piece[0].isalnum():
            text += piece.rstrip()
        else:
            text += (" " if text else "") + piece.strip()
    return text


def _to_segment(words: list[Word]) -> Segment:
    text = join_words(words)
    return Segment(modality=TRANSCRIPT, start=words[0].start, end=words[-1].end,
                   text=text, speaker=words[0].speaker, speaker_label=words[0].speaker)


def _implausible(words: list[Word]) -> bool:
    duration = max(words[-1].end - words[0].start, 1e-3)
    return len(words) >= 2 and len(words) / duration > MAX_WORDS_PER_SECOND


def _best_split(words: list[Word]) -> int:
    """Where to cut an over-long run: after a clause end or at the widest pause, late on."""
    lo = max(1, len(words) // 3)
    best, best_score = len(words) - 1, -1.0
    for i in range(lo, len(words)):
        gap = words[i].start - words[i - 1].end
        score = gap + (0.5 if words[i - 1].text.rstrip().endswith(_CLAUSE_END) else 0.0)
        if score >= best_score:
            best, best_score = i, score
    return best


# A longer "sentence" is a run the recognizer did not punctuate: its speaker changes are kept.
MAX_REALIGN_WORDS = 40
# Only a fragment this short moves to the sentence's main speaker. Two people's whole clauses
# run together when the recognizer misses a full stop ("This is Diane in New Jersey | and I'm
# Sheila in Texas"), and that change of speaker is real.
MAX_FRAGMENT_WORDS = 2


def realign_speakers(words: list[Word], pause_seconds: float = PAUSE_SECONDS) -> list[Word]:
    """Move the stray first or last words of a sentence to the speaker of the rest of it.

    Only sentences that end with . ? ! and have no pause of `pause_seconds` inside are looked
    at (as whisper-diarization's punctuation realignment does); an unpunctuated run keeps the
    speaker changes diarization found, since nothing says they are wrong.
    """
    out = list(words)
    start = 0
    for i, word in enumerate(out):
        ends = _ends_sentence(word)
        paused = i + 1 < len(out) and out[i + 1].start - word.end >= pause_seconds
        if not (ends or paused or i + 1 == len(out)):
            continue
        if ends:
            _one_speaker(out, start, i + 1)
        start = i + 1
    return out


def _one_speaker(words: list[Word], lo: int, hi: int) -> None:
    sentence = words[lo:hi]
    speakers = {w.speaker for w in sentence}
    if len(speakers) < 2 or None in speakers or len(sentence) > MAX_REALIGN_WORDS:
        return
    held: dict[str | None, float] = {}
    for w in sentence:
        held[w.speaker] = held.get(w.speaker, 0.0) + max(w.end - w.start, 0.0)
    main = max(held, key=lambda s: held[s])  # ties: whoever spoke first in the sentence
    run_start = lo
    for j in range(lo, hi + 1):
        if j < hi and words[j].speaker == words[run_start].speaker:
            continue
        if words[run_start].speaker != main and j - run_start <= MAX_FRAGMENT_WORDS:
            for m in range(run_start, j):
                words[m] = replace(words[m], speaker=main)
        run_start = j


def segment_words(words: list[Word], max_seconds: float = MAX_SECONDS,
                  pause_seconds: float = PAUSE_SECONDS) -> list[Segment]:
    """Group timed words into transcript segments (see module docstring for the rules)."""
    words = realign_speakers([w for w in words if w.text.strip()], pause_seconds)
    segments: list[Segment] = []
    current: list[Word] = []
    sentences = 0

    def flush() -> None:
        nonlocal current, sentences
        if current and not _implausible(current):
            segments.append(_to_segment(current))
        current, sentences = [], 0

    for word in words:
        if not word.text.strip():
            continue
        if current:
            prev = current[-1]
            substantial = len(current) >= MIN_WORDS
            if word.speaker != current[0].speaker:
                flush()
            elif word.start - prev.end >= pause_seconds and (substantial or sentences):
                flush()
            elif word.end - current[0].start > max_seconds:
                cut = _best_split(current)
                head, tail = current[:cut], current[cut:]
                current = head
                flush()
                current = tail
                sentences = sum(_ends_sentence(w) for w in tail)
        current.append(word)
        if _ends_sentence(word):
            sentences += 1
            if len(current) >= MIN_WORDS or sentences >= MAX_SENTENCES:
                flush()
    flush()
    return segments


# -- passages ----------------------------------------------------------------------------------
# A passage holds about this many words (~45 s of speech): enough for a question about a
# discussion to find where it happens, small enough that its middle is still on the topic.
PASSAGE_WORDS = 120
_LABEL = re.compile(r"Speaker \d+")


def _speaker_prefix(speaker: str | None) -> str:
    """A name helps a question find a passage ("what did Marketing think"); a diarization
    label ("Speaker 2") is noise to the text model."""
    return "" if not speaker or _LABEL.fullmatch(speaker) else f"{speaker}: "


def passage_text(segments: list[Segment]) -> str:
    """The segments as lines of dialogue: one line per run of one speaker, named."""
    lines: list[str] = []
    last: object = object()
    for seg in segments:
        if seg.speaker != last or not lines:
            lines.append(_speaker_prefix(seg.speaker) + seg.text)
        else:
            lines[-1] += " " + seg.text
        last = seg.speaker
    return "\n".join(lines)


def passages(segments: list[Segment], words: int = PASSAGE_WORDS) -> list[Segment]:
    """Overlapping windows of consecutive transcript segments, each about `words` long; the
    next window starts where this one's first half ends, so every boundary of a discussion
    falls inside some window."""
    sizes = [len(s.text.split()) for s in segments]
    out: list[Segment] = []
    start = 0
    while start < len(segments):
        end, total, half = start, 0, None
        while end < len(segments) and (total < words or end == start):
            total += sizes[end]
            end += 1
            if half is None and total >= words / 2:
                half = end
        window = segments[start:end]
        out.append(Segment(modality=PASSAGES, start=window[0].start, end=window[-1].end,
                           text=passage_text(window), first=start, last=end - 1))
        if end >= len(segments):
            break
        start = max(start + 1, half if half is not None and half < end else end)
    return out
