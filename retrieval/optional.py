"""Parts of clipcite that come from optional packages, and the command that installs each: a
missing one is named with that command, never left as a bare ModuleNotFoundError."""

from __future__ import annotations

import importlib
from types import ModuleType

INSTALL = {
    "open_clip": "pip install 'clipcite[clip]'",
    "transformers": "pip install 'clipcite[clap]'",
    "ray": "pip install 'clipcite[ray]'",
    "whisper": "pip install --no-deps openai-whisper==20250625 (its other needs come with "
               "'clipcite[openai-whisper]')",
    # pip cannot declare "without its dependencies" (pyproject.toml says why).
    "resemblyzer": "pip install --no-deps resemblyzer==0.1.4 webrtcvad-wheels",
}


class MissingPart(ImportError):
    """An optional package a feature needs is not installed; the message says how to add it."""


def need(module: str, feature: str) -> ModuleType:
    """`module`, imported; MissingPart naming `feature` and the install command if it is not
    installed."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if e.name is not None and e.name.split(".")[0] != module.split(".")[0]:
            raise  # the package is there but something inside it is missing: not ours to name
        raise MissingPart(f"{feature} needs the {module} package, which is not installed: "
                          f"{INSTALL[module.split('.')[0]]}") from e
