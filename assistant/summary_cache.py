"""Whole-recording summaries kept per generation, so asking for one is instant.

A summary of an hour-long meeting takes tens of seconds of the local model; it depends only on
the recording's generation (its indexed content), so it is prepared once (`clipcite summaries`,
or `clipcite ingest --summaries`) and read back until the recording changes. Files live in the
index directory (`summaries/<generation>.json`); a replaced generation's file is pruned.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from clipcite.assistant.evidence import Citation

log = logging.getLogger("clipcite.assistant")

VERSION = 2  # bump when the summary's form changes: older files are then not read


class SummaryCache:
    def __init__(self, index_dir: Path) -> None:
        self.directory = Path(index_dir) / "summaries"

    def _path(self, gen: str) -> Path:
        return self.directory / f"{gen}.json"

    def get(self, gen: str) -> tuple[str, list[Citation]] | None:
        """The cached summary (text, citations) of a generation, if there is one."""
        path = self._path(gen)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # unreadable: made again, and written over
            log.warning("summary cache file %s is unreadable", path, exc_info=True)
            return None
        if data.get("version") != VERSION:
            return None
        return data["answer"], [Citation(**c) for c in data["citations"]]

    def put(self, gen: str, answer: str, citations: list[Citation]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {"version": VERSION, "answer": answer,
                                "citations": [vars(c) for c in citations]}
        tmp = self._path(gen).with_suffix(".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self._path(gen))  # readers see the old file or the new, never half

    def prune(self, live: set[str]) -> int:
        """Delete summaries of generations no longer indexed; returns how many."""
        gone = [p for p in self.directory.glob("*.json") if p.stem not in live] \
            if self.directory.is_dir() else []
        for p in gone:
            p.unlink(missing_ok=True)
        return len(gone)
