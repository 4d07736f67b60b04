"""Cutting word-timed transcripts into citable segments.

Citations point at segments, so a segment must be a moment, not a block of minutes: it ends at
a sentence end, a long pause or a change of speaker, and never runs past MAX_SECONDS. A
sentence of one or two words ("Hello?") is kept with what follows, so that no segment is too
thin to be found by meaning.
"""

from __future__ import annotations

from dataclasses import dataclass

from retrieval.schema import TRANSCRIPT, Segment

MAX_SECONDS = 30.0
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


def _to_segment(words: list[Word]) -> Segment:
    text = " ".join(w.text.strip() for w in words if w.text.strip())
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


def segment_words(words: list[Word], max_seconds: float = MAX_SECONDS,
                  pause_seconds: float = PAUSE_SECONDS) -> list[Segment]:
    """Group timed words into transcript segments (see module docstring for the rules)."""
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
