"""What every browser session of the web app shares (settings, users, the background services,
a catalog reader) and the rights questions every page asks: who may see, add and change what."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from clipcite.ingestion.transcripts import TRANSCRIPT_EXTENSIONS
from clipcite.ui.media_server import CatalogReader
from clipcite.ui.settings import Settings
from clipcite.ui.users import Users
from clipcite.ui.web.attachments import (
    MB, MEDIA_SUFFIXES, discard_upload, safe_filename, too_big_message, unique_path)
from clipcite.ui.web.render import NO_CHANGE_RIGHT, NO_UPLOAD_RIGHT
from clipcite.ui.web.services import Archive, Engine, ExampleReader, Ingester

log = logging.getLogger("clipcite.web")

LISTING_EXAMPLE = "Which recordings are in the library?"


def example_questions(visible: list[Any]) -> list[str]:
    """Questions to try, about recordings this person can search (newest first), so that an
    example never asks about something that is not in the library."""
    recent = sorted(visible, key=lambda r: r.recorded_at or r.ingested_at or 0, reverse=True)
    questions = [LISTING_EXAMPLE]
    if recent:
        questions.insert(0, f"Summarize “{recent[0].title}”.")
        other = recent[1] if len(recent) > 1 else recent[0]
        questions.append(f"What was decided in “{other.title}”?")
    return questions


class WebContext:
    """What every browser session shares: settings, users, engine, ingester, catalog reader."""

    def __init__(self, settings: Settings, users: Users | None = None,
                 library_dir: Path | None = None) -> None:
        self.settings, self.users = settings, users
        self.library_dir = Path(library_dir or Path(settings.index_dir).parent / "library")
        self.library_dir.mkdir(parents=True, exist_ok=True)
        self.max_upload_mb = float(settings.upload_limit_mb)
        self.reader = CatalogReader(settings.index_dir)
        self.engine = Engine(settings)
        self.ingester = Ingester(settings, self.library_dir, on_indexed=(
            self.engine.prepare_summaries if settings.web_summaries else None))
        self.archive = Archive(settings)
        self.examples = ExampleReader(settings)

    def groups(self, username: str | None) -> frozenset[str] | None:
        return None if self.users is None else self.users.groups_for(username)

    def recordings(self, username: str | None) -> list[Any]:
        groups = self.groups(username)
        return [r for r in self.reader.catalog.all() if r.visible_to(groups)]

    def searchable(self, username: str | None) -> list[Any]:
        """What this person's questions can reach: the chat filters' choices."""
        return self.reader.catalog.visible(self.groups(username))

    def may_upload(self, username: str | None) -> bool:
        """Without a users file the one person at this machine may do everything."""
        if self.users is None:
            return True
        user = self.users.get(username)
        return user is not None and user.may_upload

    def may_change(self, username: str | None, rec: Any) -> bool:
        """Re-ingest, rename speakers in, or delete `rec` (see ui/users.py for the roles)."""
        if self.users is None:
            return True
        user = self.users.get(username)
        return user is not None and rec.visible_to(user.access) and user.may_change(rec.groups)

    def add_uploads(self, username: str | None, files: list) -> list[tuple[bool, str]]:
        """Copies uploaded files into the library and queues them, for the uploader's groups;
        (done, sentence) for the page. The upload folder keeps nothing, added or not."""
        sources = [Path(f if isinstance(f, str) else getattr(f, "name", f)) for f in files]
        try:
            if not self.may_upload(username):
                log.warning("upload refused: %r may not add recordings", username)
                return [(False, NO_UPLOAD_RIGHT)]
            if not files:
                return [(False, "Choose one or more audio or video files first.")]
            saved, said = [], []
            for f, src in zip(files, sources):
                name = safe_filename(getattr(f, "orig_name", None) or src.name)
                if not name.lower().endswith(MEDIA_SUFFIXES + TRANSCRIPT_EXTENSIONS):
                    said.append((False, f"“{name}” is not an audio or video file or a .vtt or "
                                        ".srt transcript, so it was not added."))
                    continue
                size = src.stat().st_size
                if size > self.max_upload_mb * MB:  # Gradio checks too; never trust it alone
                    said.append((False, too_big_message(name, size, self.max_upload_mb)))
                    continue
                dst = unique_path(self.library_dir, name)
                shutil.copyfile(src, dst)
                saved.append(dst)
            if saved:
                groups = self.groups(username)
                self.ingester.submit("ingest", username, paths=saved,
                                     groups=sorted(groups) if groups else None)
                said.append((True, f"Adding {len(saved)} file(s). You can keep asking "
                                   "questions meanwhile."))
            return said
        finally:
            for src in sources:
                discard_upload(src)

    def change(self, username: str | None, kind: str, media_id: str) -> tuple[bool, str]:
        """Queues a re-ingest or delete if this person may do it; (done, sentence)."""
        rec = next((r for r in self.recordings(username) if r.media_id == media_id), None)
        if rec is None:
            return False, "That recording is no longer in the library."
        if not self.may_change(username, rec):
            log.warning("%s refused: %r may not change %s", kind, username, media_id)
            return False, NO_CHANGE_RIGHT
        self.ingester.submit(kind, username, media_id=media_id)
        return True, "Removing the recording…" if kind == "delete" else "Reading it again…"

    def progress(self, username: str | None) -> Any:
        return self.ingester.state.seen_by(username, everyone=self.users is None)


def username_of(request: Any) -> str | None:
    """The signed-in name of a Gradio request (None without sign-in)."""
    return getattr(request, "username", None) if request is not None else None
