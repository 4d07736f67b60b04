"""Finding recordings on disk and naming them."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from clipcite.ingestion.media import MEDIA_EXTENSIONS
from clipcite.ingestion.transcripts import TRANSCRIPT_EXTENSIONS, find_sidecar

_READABLE = MEDIA_EXTENSIONS | frozenset(TRANSCRIPT_EXTENSIONS)


def discover(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """Media files under the given paths, and the paths that do not exist.

    Folders are walked recursively for known media and transcript extensions; a file named
    explicitly is taken whatever its extension (the user asked for it, and it gets a clear
    error if it is not media). A transcript beside a media file of the batch (same stem) is
    that recording's sidecar, not a recording of its own.
    """
    found: list[Path] = []
    missing: list[Path] = []
    seen: set[Path] = set()
    for p in paths:
        if p.is_dir():
            candidates = sorted(f for f in p.rglob("*")
                                if f.suffix.lower() in _READABLE and not f.is_dir()
                                and not any(part.startswith(".") for part in f.relative_to(p).parts))
        elif p.exists() or p.is_symlink():
            candidates = [p]
        else:
            missing.append(p)
            continue
        for f in candidates:
            key = Path(os.path.abspath(f))  # absolute and without "..", symlinks kept
            if key not in seen:
                seen.add(key)
                found.append(key)
    sidecars = {sidecar_of(f) for f in found if f.suffix.lower() not in TRANSCRIPT_EXTENSIONS}
    return [f for f in found if f not in sidecars], missing


def sidecar_of(media: Path) -> Path | None:
    """The transcript file that comes with a media file, as an absolute path, if any."""
    found = find_sidecar(media)
    return Path(os.path.abspath(found)) if found is not None else None


def media_id_for(path: Path) -> str:
    """A stable id from the absolute path: the same file keeps its id when its content changes."""
    return hashlib.sha256(os.path.abspath(path).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def content_hash(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def title_from_path(path: Path) -> str:
    """"q3-planning_meeting.mp4" -> "Q3 planning meeting"."""
    words = re.sub(r"[_\-.]+", " ", path.stem).split()
    title = " ".join(words) or path.name
    return title[0].upper() + title[1:] if title.islower() or title[0].islower() else title
