"""The quantities a text states, however they are written: "$45,000", "45 thousand dollars",
"forty-five thousand", "45k" and "4.2%" / "four point two percent" read alike.

Used to check a cited sentence against its line: a sentence that states a number its line
does not hold ("The travel budget is five thousand euros [3]" citing "They want a credit of
$15,000") is not backed by that line, however alike the two read to e5.
"""

from __future__ import annotations

import re

_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * (i + 2) for i, w in enumerate(
    "twenty thirty forty fifty sixty seventy eighty ninety".split())}
_SCALES = {"hundred": 100, "thousand": 1_000, "k": 1_000, "million": 1_000_000,
           "billion": 1_000_000_000, "bn": 1_000_000_000}
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[a-z]+", re.I)
_A_SCALE = re.compile(r"\ban? (hundred|thousand|million|billion)\b", re.I)


def _digits(token: str) -> float | None:
    if not token[0].isdigit():
        return None
    # "45,000" and "1,238" group thousands; "4.2" and "12,5" (a decimal comma) do not.
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+", token):
        return float(token.replace(",", ""))
    try:
        return float(token.replace(",", "."))
    except ValueError:
        return None


def quantities(text: str) -> set[float]:
    """Every number the text states, as a value. A lone "one" is left out: it is a pronoun
    ("the cheaper one", "each one") far more often than a count."""
    text = _A_SCALE.sub(r"one \1", text.replace("-", " "))  # "a hundred persons"
    tokens = [t.lower() for t in _TOKEN.findall(text)]
    found: set[float] = set()
    value: float | None = None  # the number being read
    part = 0.0  # its part below the last scale word ("forty five" of "forty five thousand")
    words = 0  # number words read into it
    decimals: str | None = None  # digits after "point"

    def close() -> None:
        nonlocal value, part, words, decimals
        if value is not None or words:
            total = (value or 0.0) + part
            if decimals:
                total += float(f"0.{decimals}")
            if not (words == 1 and total == 1 and value is None and not decimals):
                found.add(round(total, 6))
        value, part, words, decimals = None, 0.0, 0, None

    for token in tokens:
        number = _digits(token)
        if number is not None:
            close()
            part, words = number, 2  # digits always count, "1" too
            continue
        if decimals is not None and token in _UNITS:
            decimals += str(_UNITS[token])
            continue
        rest = part % 100  # what a unit or a tens word may still fill
        if token in _UNITS and words and (rest == 0 or rest >= 20 and rest % 10 == 0 and
                                          _UNITS[token] < 10):
            part += _UNITS[token]
            words += 1
        elif token in _TENS and words and rest == 0:
            part += _TENS[token]
            words += 1
        elif token in _SCALES and words and (token not in ("k", "bn") or words == 2):
            scale = _SCALES[token]
            if scale == 100:
                part *= 100
            else:
                value = (value or 0.0) + (part or 1.0) * scale
                part = 0.0
            words += 1
        elif token == "point" and words and decimals is None:
            decimals = ""
        elif token == "and" and words and (value is not None or part >= 100):
            continue  # "two thousand and five"
        else:
            close()
            if token in _UNITS:
                part, words = _UNITS[token], 1
            elif token in _TENS:
                part, words = _TENS[token], 1
    close()
    return found


def agree(stated: set[float], held: set[float]) -> bool:
    """Whether a line holding these quantities can back a sentence that states those: it
    states one of them, or no number at all (the sentence's number may come from another
    cited line)."""
    return not stated or not held or bool(stated & held)
