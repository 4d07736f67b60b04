"""`/media/{media_id}` and `/thumb/{media_id}?t=SECONDS`: a recording the signed-in user may
see, or a small JPEG of its video at a moment, and nothing else. `/captions/{media_id}.vtt`
(the player's captions) and `/export/{media_id}.{srt|vtt|txt|rttm}` (downloads) are its
transcript, under the same check.

The client names a media id only; the file path always comes from the catalog. A recording
that is absent, not visible to the caller's groups, or whose file is gone is a plain 404 (absent
and forbidden look the same, on purpose). Starlette's FileResponse answers HTTP Range requests
(206 Partial Content), which the browser's <video>/<audio> element needs to seek. Both routes
check access the same way, through `resolve`.
"""

from __future__ import annotations

import io
import logging
import math
import mimetypes
import re
import threading
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import av
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response

from clipcite.ingestion.transcripts import TRANSCRIPT_EXTENSIONS
from clipcite.retrieval.catalog import Catalog
from clipcite.retrieval.index import CATALOG_FILE

log = logging.getLogger("clipcite.web")

_MEDIA_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# What a browser can play; anything else still downloads with a neutral type.
_TYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".aac": "audio/aac",
          ".flac": "audio/flac", ".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/ogg",
          ".webm": "video/webm", ".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/mp4",
          ".mkv": "video/x-matroska"}

THUMB_WIDTH = 320
MAX_SECONDS = 1e7  # 115 days: a later time is a mistake (and overflows FFmpeg's seek)
# Decoding is CPU work on a small shared machine: at most two thumbnails are made at a time.
_THUMB_SLOTS = threading.BoundedSemaphore(2)
_PRIVATE = {"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"}

# Groups of the caller: None is unrestricted; an empty set sees public recordings only.
GroupsOf = Callable[[Request], "frozenset[str] | None"]
# (media id, the caller's groups, format) -> (title, file text), or None when there is none.
TranscriptFiles = Callable[[str, "frozenset[str] | None", str], "tuple[str, str] | None"]

EXPORT_TYPES = {"srt": "application/x-subrip; charset=utf-8", "vtt": "text/vtt; charset=utf-8",
                "txt": "text/plain; charset=utf-8", "rttm": "text/plain; charset=utf-8"}


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


def is_transcript(path: str) -> bool:
    """A recording imported from a transcript alone (.vtt, .srt): text and times, no sound."""
    return Path(path).suffix.lower() in TRANSCRIPT_EXTENSIONS


def resolve(reader: CatalogReader, media_id: str, groups: frozenset[str] | None) -> Path | None:
    """The file of a recording this caller may play, or None."""
    if not _MEDIA_ID.match(media_id):
        return None
    rec = reader.catalog.get(media_id)
    if rec is None or not rec.visible_to(groups):
        return None
    path = Path(rec.path)
    return path if path.is_file() else None


def frame_jpeg(path: Path, t: float, width: int = THUMB_WIDTH) -> bytes | None:
    """A small JPEG of the video frame on screen at `t` seconds; None for audio or a bad file.

    It seeks to the keyframe before `t` and decodes from there: ingestion's sample_frames
    decodes from the start, which is fine for a whole file but far too slow for one picture.
    """
    stat = path.stat()
    return _frame_jpeg(str(path), stat.st_mtime_ns, stat.st_size, round(t, 1), width)


@lru_cache(maxsize=256)  # keyed on the file's mtime and size, so a replaced file is re-read
def _frame_jpeg(path: str, _mtime_ns: int, _size: int, t: float, width: int) -> bytes | None:
    try:
        with _THUMB_SLOTS, av.open(path, metadata_errors="ignore") as container:
            video = next((s for s in container.streams.video
                          if not (s.disposition & av.stream.Disposition.attached_pic)), None)
            if video is None:
                return None
            if t > 0 and video.time_base:
                container.seek(int(t / video.time_base), stream=video, backward=True)
            shown = None
            for frame in container.decode(video):
                if frame.time is None:
                    continue
                if shown is not None and frame.time > t + 1e-3:
                    break  # the previous frame is the one on screen at t
                shown = frame
            if shown is None:
                return None
            w = min(width, shown.width)
            h = max(2, int(round(shown.height * w / shown.width / 2)) * 2)
            buf = io.BytesIO()
            shown.to_image(width=w, height=h).save(buf, "JPEG", quality=75)
            return buf.getvalue()
    except (av.error.FFmpegError, OSError, ValueError, OverflowError):
        log.warning("no picture from %s at %.1f s", path, t, exc_info=True)
        return None


def download_name(title: str, fmt: str) -> str:
    """A file name safe in a Content-Disposition header on any system: plain ASCII letters,
    digits, spaces and .-_() only (no quotes, slashes or line breaks), then the format."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9 ._()-]+", "_", ascii_title).strip(" ._")[:100] or "recording"
    return f"{stem}.{fmt}"


def media_router(reader: CatalogReader, groups_of: GroupsOf,
                 transcripts: TranscriptFiles | None = None) -> APIRouter:
    router = APIRouter()

    def caller(request: Request) -> frozenset[str] | None:
        try:
            return groups_of(request)
        except PermissionError:
            raise HTTPException(404, "No such recording.") from None

    def allowed(request: Request, media_id: str) -> Path:
        """The file, if the caller may see this recording; else the same 404 for every case."""
        path = resolve(reader, media_id, caller(request))
        if path is None:
            raise HTTPException(404, "No such recording.")
        return path

    def transcript_file(request: Request, media_id: str, fmt: str) -> tuple[str, str]:
        allowed(request, media_id)
        found = transcripts(media_id, caller(request), fmt) if transcripts else None
        if found is None:  # not searchable (yet): no transcript to give
            raise HTTPException(404, "This recording has no transcript yet.")
        return found

    @router.get("/media/{media_id}")
    @router.head("/media/{media_id}")
    def media(media_id: str, request: Request) -> FileResponse:
        # A plain def: FastAPI runs it in a worker thread, so the SQLite read does not block.
        path = allowed(request, media_id)
        return FileResponse(path, media_type=media_type(str(path)), headers=_PRIVATE,
                            content_disposition_type="inline")

    @router.get("/thumb/{media_id}")
    def thumb(media_id: str, request: Request, t: float = 0.0) -> Response:
        path = allowed(request, media_id)
        if not math.isfinite(t) or not 0 <= t <= MAX_SECONDS:
            raise HTTPException(400, "The time must be a number of seconds, 0 or more.")
        data = frame_jpeg(path, t) if is_video(str(path)) else None
        if data is None:
            raise HTTPException(404, "This recording has no picture at that moment.")
        return Response(data, media_type="image/jpeg", headers=_PRIVATE)

    @router.get("/captions/{media_id}.vtt")
    def captions(media_id: str, request: Request) -> Response:
        _, text = transcript_file(request, media_id, "vtt")
        # Not cached: a renamed speaker shows in the captions at the next load.
        return Response(text, media_type=EXPORT_TYPES["vtt"],
                        headers={**_PRIVATE, "Cache-Control": "no-store"})

    @router.get("/export/{media_id}.{fmt}")
    def export(media_id: str, fmt: str, request: Request) -> Response:
        if fmt not in EXPORT_TYPES:
            raise HTTPException(404, "Downloads are .srt, .vtt, .txt or .rttm files.")
        title, text = transcript_file(request, media_id, fmt)
        disposition = f'attachment; filename="{download_name(title, fmt)}"'
        return Response(text, media_type=EXPORT_TYPES[fmt],
                        headers={**_PRIVATE, "Cache-Control": "no-store",
                                 "Content-Disposition": disposition})

    return router
