"""Multi-part questions: "What was decided, and why?" asks two things, and the answer to the
second is often said in another line than the first. Each part is searched on its own so the
evidence holds both, and the answer prompt asks for every part.

Parts are found by the question's form, not its topic: a second question word (or auxiliary)
after "and", ";" or a question mark starts a new part. A part that is only a question word
("...and why?") borrows the first part's words, since it asks about the same thing.
"""

from __future__ import annotations

import re

_ASKS = (r"what|who|whom|whose|when|where|why|how|which|did|does|do|is|are|was|were|will|"
         r"would|can|could|should|has|have|had")
# Not a plain ", " before a question word: "When we met, what did..." is one question.
_JOINT = re.compile(rf"(?:\?\s+|;\s*|,?\s+and\s+(?:also\s+)?|,\s+also\s+)"
                    rf"(?=(?:(?:by|for|from|to|in|at|on|with|until)\s+)?(?:{_ASKS})\b)", re.I)
_WORD = re.compile(r"[a-z0-9']+")
_FUNCTION = frozenset(_ASKS.split("|")) | frozenset(
    "the a an and or of to in on at for it this that with as be by about much many long "
    "often by from until there they we you i he she them us our".split())
MAX_PARTS = 3


def content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _FUNCTION]


def question_parts(question: str) -> list[str]:
    """The question's parts, each a searchable phrase; [question] when it asks one thing."""
    pieces = [p.strip(" ,;?") for p in _JOINT.split(" ".join(question.split()))]
    pieces = [p for p in pieces if p]
    if len(pieces) < 2 or len(pieces) > MAX_PARTS:
        return [question]
    parts = [pieces[0]]
    for piece in pieces[1:]:
        if len(content_words(piece)) < 2:  # "and why", "and when": about the same thing
            piece = f"{piece} {' '.join(content_words(parts[-1]))}"
        parts.append(piece)
    return parts
