"""Prompts live in prompts/, one file per purpose, each opening with a comment saying where it
is used. They are loaded by name and filled by plain replacement of {field} markers, so the
JSON braces in their examples need no escaping."""

from __future__ import annotations

import functools
import re
from pathlib import Path

PROMPT_DIR = Path(__file__).resolve().parent.parent / "prompts"
_HEADER = re.compile(r"\A\s*<!--.*?-->\s*", re.S)


@functools.cache
def load_prompt(name: str) -> str:
    path = PROMPT_DIR / f"{name}.md"
    if not path.is_file():
        raise FileNotFoundError(f"no prompt named {name!r} in {PROMPT_DIR}")
    return _HEADER.sub("", path.read_text(encoding="utf-8"), count=1)


def render(name: str, **fields: str) -> str:
    text = load_prompt(name)
    for key, value in fields.items():
        text = text.replace("{" + key + "}", value)
    return text
