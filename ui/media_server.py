"""`/media/{media_id}`: streams a recording the signed-in user may see, and nothing else.

The client names a media id only; the file path always comes from the catalog. A recording
that is absent, not visible to the caller's groups, or whose file is gone is a plain 404 (absent
and forbidden look the same, on purpose). Starlette's FileResponse answers HTTP Range requests
(206 Partial Content), which the browser's <video>/<audio> element needs to seek.
"""

from __future__ import annotations

import mimetypes
import re
import threading
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from retrieval.catalog import Catalog
from retrieval.index import CATALOG_FILE

_MEDIA_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# What a browser can play; anything else still downloads with a neutral type.
_TYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".aac": "audio/aac",
          ".flac": "audio/flac", ".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/ogg",
          ".webm": "video/webm", ".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/mp4",
          ".mkv": "video/x-matroska"}

# Groups of the caller: None is unrestricted; an empty set sees public recordings only.
GroupsOf = Callable[[Request], "frozenset[str] | None"]


class CatalogReader:
    """One catalog connection per thread (SQLite connections stay in their thread)."""

    def __init__(self, index_dir: Path) -> None:
        self.path = Path(index_dir) / CATALOG_FILE
        self._local = threading.local()

    @property
    def catalog(self) -> Catalog:
        cat = getattr(self._local, "catalog", None)
        if cat is None:
            cat = self._local.catalog = Catalog(self.path)
        return cat


def media_type(path: str) -> str:
    suffix = Path(path).suffix.lower()
    return _TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def is_video(path: str) -> bool:
    return media_type(path).startswith("video/")


def resolve(reader: CatalogReader, media_id: str, groups: frozenset[str] | None) -> Path | None:
    """The file of a recording this caller may play, or None."""
    if not _MEDIA_ID.match(media_id):
        return None
    rec = reader.catalog.get(media_id)
    if rec is None or not rec.visible_to(groups):
        return None
    path = Path(rec.path)
    return path if path.is_file() else None


def media_router(reader: CatalogReader, groups_of: GroupsOf) -> APIRouter:
    router = APIRouter()

    @router.get("/media/{media_id}")
    @router.head("/media/{media_id}")
    def media(media_id: str, request: Request) -> FileResponse:
        # A plain def: FastAPI runs it in a worker thread, so the SQLite read does not block.
        try:
            groups = groups_of(request)
        except PermissionError:
            raise HTTPException(404, "No such recording.") from None
        path = resolve(reader, media_id, groups)
        if path is None:
            raise HTTPException(404, "No such recording.")
        return FileResponse(path, media_type=media_type(str(path)),
                            headers={"Cache-Control": "private, max-age=300",
                                     "X-Content-Type-Options": "nosniff"},
                            content_disposition_type="inline")

    return router
