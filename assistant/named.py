"""A recording the user names ("Summarize the HR phone call"): which visible one it is, if any.

A name counts as a recording's when the user writes it with a kind of recording ("the HR phone
call", "the Q3 planning meeting", "the security training video"); a bare topic ("the budget")
or an indefinite one ("a phishing call") names none. A named recording is matched only among
the recordings the caller may see, on every word of the name that is not a kind or a filler:
"HR phone call" is not "Phone call". Nothing here says whether a recording outside the caller's
groups exists.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from clipcite.retrieval.keyword import STOPWORDS
from clipcite.retrieval.tools import RecordingSummary

KINDS = (r"(?:recordings?|meetings?|calls?|videos?|sessions?|syncs?|stand-?ups?|reviews?|"
         r"presentations?|interviews?|workshops?|webinars?|demos?|trainings?|walkthroughs?|"
         r"briefings?|talks?|clips?|files?)")
_KIND = re.compile(rf"^{KINDS}$", re.I)
# "the HR phone call", "our weekly sync": a definite name of one recording (not "a ... call",
# not "about the ... call", which is a topic).
_DEFINITE = re.compile(rf"(?<!about )\b(?:the|this|that|our|my|your|their)\s+"
                       rf"((?:[\w'’&.-]+\s+){{0,4}}?{KINDS})\b", re.I)
_WORD = re.compile(r"[\w&.-]+", re.I)
# Words of a name that say which recording but not its title.
_FILLERS = frozenset("""which what any every all each these those last latest recent new old
other same first whole entire full one whose summary summarize summarise recap overview""".split())


def words(name: str) -> list[str]:
    """The words of a name that pick a recording out: no kinds, articles or fillers."""
    out = []
    for word in _WORD.findall(name.casefold().replace("’", "'").replace("'s", "")):
        word = word.strip(".-")
        if word and not _KIND.match(word) and word not in STOPWORDS and word not in _FILLERS:
            out.append(word)
    return out


def named_recording(message: str, value: str | None, definite: bool = False) -> str | None:
    """The recording a message names by name and kind, in the message's words, or None.

    `value` is the router's reading of the recording (already checked to be in the
    conversation): it counts when the message writes it as a recording's name, with a kind
    in it or right after it. With `definite` (a summary request, whose object is a
    recording), a "the <words> <kind>" in the message counts too; in a question it is as
    often a topic ("when is the weekly status call?").
    """
    if value:
        at = message.casefold().find(value.casefold())
        if at >= 0:
            before = message[:at].split()[-1:] or [""]
            after = re.match(rf"\s*(?:'s\s+|’s\s+)?({KINDS})\b", message[at + len(value):], re.I)
            name = value if re.search(rf"\b{KINDS}\b", value, re.I) else \
                (f"{value} {after.group(1)}" if after else None)
            if name and words(name) and before[0].casefold() not in ("a", "an", "any", "some",
                                                                      "about"):
                return " ".join(name.split())
    for found in _DEFINITE.finditer(message) if definite else ():
        if words(found.group(1)):
            return " ".join(found.group(1).split())
    return None


def _same(word: str, other: str) -> bool:
    return word == other or word.rstrip("s") == other.rstrip("s")


def matching(recs: Sequence[RecordingSummary], name: str) -> list[RecordingSummary]:
    """The recordings (of those given: the caller's) whose title or file name holds every
    word of the name; an exact title first. [] when the name has no words that pick one."""
    wanted = words(name)
    if not wanted:
        return []
    exact = [r for r in recs if words(r.title) == wanted]
    if exact:
        return exact
    out = []
    for rec in recs:
        stem = re.sub(r"\.\w+$", "", rec.path.rsplit("/", 1)[-1])  # the file's own name
        have = set(words(rec.title)) | set(words(stem))
        if all(any(_same(w, h) for h in have) for w in wanted):
            out.append(rec)
    return out


def identified(recs: Sequence[RecordingSummary], name: str) -> list[RecordingSummary]:
    """The recordings a loose reading of a title picks out: those `matching` the name that
    holds most of their title's words. A topic word that is one word of a title ("budget" of
    "Warehouse app budget", "planning" of "Offsite planning") picks none: narrowed to that
    recording, a question about another recording's budget had been refused."""
    wanted = len(words(name))
    return [r for r in matching(recs, name) if 2 * wanted > len(words(r.title))]


def unavailable(name: str) -> str:
    """The answer when no recording the caller may see has that name: the same whether it
    exists for others or not."""
    shown = " ".join(name.split())[:80]
    return (f"No recording called “{shown}” is available to you. Ask “Which recordings are "
            "there?” to see the ones you can search.")


def several(name: str, recs: Sequence[RecordingSummary]) -> str:
    titles = "; ".join(f"“{r.title}”" for r in recs[:5])
    return (f"Several recordings you can see match “{' '.join(name.split())[:80]}”: {titles}. "
            "Which one do you mean?")
