"""When a question says the recordings were made: "what did Ken say last month?".

A 1.5B router guessed dates badly (and cannot know today's date), so the phrases are read here,
against a `now` the caller passes: "last week", "yesterday", "3 days ago", "in the last 10
days", "this month", "in March", "in May 2025", "since September", "in 2025". A phrase counts
only beside past speech or a kind of recording (_about_recording): in "how many people fell for
a fake login page last year?" or "when do we launch in March?" the date is what was said.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december"]
_MONTH = r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?" \
         r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
_UNITS = {"day": 1, "days": 1, "week": 7, "weeks": 7}
_NUMBERS = {"a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
            "eight": 8, "nine": 9, "ten": 10}

_RELATIVE = re.compile(r"\b(yesterday|today|(this|last|past) (week|month|year))\b", re.I)
_AGO = re.compile(r"\b(\d+|a|one|two|three|four|five|six|seven|eight|nine|ten) "
                  r"(days?|weeks?) ago\b", re.I)
_RECENT = re.compile(r"\b(?:in the )?(?:last|past) (\d+|two|three|four|five|six|seven|ten) "
                     r"(days|weeks)\b", re.I)
_IN_MONTH = re.compile(rf"\b(?:in|from|during|since) {_MONTH}\.?(?:,? (\d{{4}}))?\b", re.I)
_IN_YEAR = re.compile(r"\b(?:in|from|during|since) (20\d\d|19\d\d)\b", re.I)
# What makes a date phrase about the recording: past speech anywhere in the message ("what did
# Ken say last month?"), or a kind of recording right before or after it ("last week's
# meeting", "recordings from 2024"). "How many fell for a fake page last year?" and "when do
# we launch in March?" ask about what was said, and stay unfiltered.
_SPOKE = re.compile(
    r"\b(said|talked|discussed|mentioned|decided|agreed|asked|told|spoke|presented|covered|"
    r"recorded|came up)\b|\bdid\b[^.?!]*\b(say|talk|discuss|mention|decide|agree|ask|tell|"
    r"present|cover|speak)\b", re.I)
_RECORDING = r"(meeting|call|session|sync|stand-?up|review|presentation|recording|interview|" \
             r"workshop|webinar|demo)s?"
_NOUN_AFTER = re.compile(rf"(?:'s|’s)?\s+{_RECORDING}\b", re.I)
_NOUN_BEFORE = re.compile(rf"\b{_RECORDING}\b(?:\s+[\w']+){{0,3}}\s*$", re.I)


@dataclass(frozen=True)
class Period:
    after: float | None  # Unix seconds, inclusive
    before: float | None  # Unix seconds, exclusive
    phrase: str  # the words that said it ("last month")


def recorded_period(message: str, now: datetime) -> Period | None:
    """The recording period a message names, or None. `now` is the asker's local time."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for pattern, read in ((_RELATIVE, _read_relative), (_AGO, _read_ago),
                          (_RECENT, _read_recent), (_IN_MONTH, _read_month),
                          (_IN_YEAR, _read_year)):
        for found in pattern.finditer(message):
            if _about_recording(message, found):
                return read(found, day)
    return None


def _about_recording(message: str, found: re.Match) -> bool:
    """Whether a date phrase says when something was recorded: beside past speech ("what did
    Ken say", "what was discussed") or a recording ("last week's meeting", "calls from May")."""
    return bool(_SPOKE.search(message) or _NOUN_AFTER.match(message[found.end():])
                or _NOUN_BEFORE.search(message[:found.start()]))


def _read_relative(found: re.Match, day: datetime) -> Period:
    return _relative(found.group(0).lower(), day, found.group(0))


def _read_ago(found: re.Match, day: datetime) -> Period:
    n = _count(found.group(1)) * _UNITS[found.group(2).lower()]
    start = day - timedelta(days=n)
    # "3 days ago" is that day; "2 weeks ago" is that week (Monday to Monday).
    if found.group(2).lower().startswith("week"):
        start -= timedelta(days=start.weekday())
        return _period(start, start + timedelta(days=7), found.group(0))
    return _period(start, start + timedelta(days=1), found.group(0))


def _read_recent(found: re.Match, day: datetime) -> Period:
    n = _count(found.group(1)) * _UNITS[found.group(2).lower()]
    return _period(day - timedelta(days=n), None, found.group(0))


def _read_month(found: re.Match, day: datetime) -> Period:
    month = _month_number(found.group(1))
    year = int(found.group(2)) if found.group(2) else (
        day.year if month <= day.month else day.year - 1)  # the latest one not ahead
    start = datetime(year, month, 1, tzinfo=day.tzinfo)
    since = found.group(0).lower().startswith("since")
    return _period(start, None if since else _add_months(start, 1), found.group(0))


def _read_year(found: re.Match, day: datetime) -> Period:
    start = datetime(int(found.group(1)), 1, 1, tzinfo=day.tzinfo)
    since = found.group(0).lower().startswith("since")
    end = None if since else datetime(start.year + 1, 1, 1, tzinfo=day.tzinfo)
    return _period(start, end, found.group(0))


def _relative(words: str, day: datetime, phrase: str) -> Period:
    if words == "today":
        return _period(day, day + timedelta(days=1), phrase)
    if words == "yesterday":
        return _period(day - timedelta(days=1), day, phrase)
    which, unit = words.split()
    if unit == "week":
        monday = day - timedelta(days=day.weekday())
        start = monday if which == "this" else monday - timedelta(days=7)
        if which == "past":  # "the past week": the last seven days
            return _period(day - timedelta(days=7), None, phrase)
        return _period(start, start + timedelta(days=7), phrase)
    if unit == "month":
        first = day.replace(day=1)
        if which == "past":
            return _period(_add_months(day, -1), None, phrase)
        start = first if which == "this" else _add_months(first, -1)
        return _period(start, _add_months(start, 1), phrase)
    first = day.replace(month=1, day=1)
    if which == "past":  # on 29 February a year back is the 28th (replace(year=) raised)
        return _period(_add_months(day, -12), None, phrase)
    start = first if which == "this" else first.replace(year=first.year - 1)
    return _period(start, start.replace(year=start.year + 1), phrase)


def _period(start: datetime, end: datetime | None, phrase: str) -> Period:
    return Period(start.timestamp(), end.timestamp() if end else None, phrase)


def _add_months(when: datetime, months: int) -> datetime:
    index = when.year * 12 + when.month - 1 + months
    year, month = divmod(index, 12)
    last_day = [31, 29 if _leap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month]
    return when.replace(year=year, month=month + 1, day=min(when.day, last_day))


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _count(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBERS[word.lower()]


def _month_number(word: str) -> int:
    word = word.lower()
    return next(i for i, name in enumerate(_MONTHS, 1) if name.startswith(word[:3]))
