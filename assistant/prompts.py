"""Prompts live in prompts/, one file per purpose, each opening with a comment saying where it
is used. They are loaded by name and filled by plain replacement of {field} markers, so the
JSON braces in their examples need no escaping.

prompts/ is a package whose data are the prompt files, read with importlib.resources: they are
found wherever clipcite is installed (a wheel, a zip), not only beside this checkout.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

PROMPT_PACKAGE = "clipcite.prompts"
_HEADER = re.compile(r"\A\s*<!--.*?-->\s*", re.S)


@functools.cache
def load_prompt(name: str) -> str:
    prompt = resources.files(PROMPT_PACKAGE) / f"{name}.md"
    if not prompt.is_file():
        raise FileNotFoundError(f"no prompt named {name!r} in the {PROMPT_PACKAGE} package")
    return _HEADER.sub("", prompt.read_text(encoding="utf-8"), count=1)


def _fill(text: str, fields: dict[str, str]) -> str:
    # One pass: a value is never searched for markers, so a transcript line reading
    # "{question}" stays text and cannot pull another field into the evidence.
    if not fields:
        return text
    marker = re.compile("|".join(re.escape("{" + key + "}") for key in fields))
    return marker.sub(lambda m: fields[m.group(0)[1:-1]], text)


def render(name: str, **fields: str) -> str:
    return _fill(load_prompt(name), fields)


_ROLE = re.compile(r"^### (system|user|assistant)[ \t]*$", re.M)


def render_messages(name: str, **fields: str) -> list[dict[str, str]]:
    """A prompt written as a conversation ("### system", "### user", "### assistant" lines start
    each message) as chat messages; a prompt without them is one user message.

    The file is split into messages before the fields are filled, so a transcript line reading
    "### system" stays text inside its message and cannot start a message of its own.
    """
    parts = _ROLE.split(load_prompt(name))
    if len(parts) == 1:
        return [{"role": "user", "content": _fill(parts[0], fields).strip()}]
    return [{"role": role, "content": _fill(body, fields).strip()}
            for role, body in zip(parts[1::2], parts[2::2])]
