"""`clipcite serve`: the web app for people who do not use a terminal.

Three pages. **Ask**: a chat whose answers stream in, each citation a chip ("Q3 planning meeting ·
00:24") that plays that moment in the player beside the chat (with captions), with a thumbnail of
the screen beside the cited text when the moment was found on a slide or frame; "Limit the
search" narrows a question to chosen recordings, tags or recording dates; a voice clip or a
screenshot attached to a message is searched by as `clipcite search --like` does (alone, the
moments it matches are the answer). **Recording**: one
recording with captions, its whole transcript (click a line to play it; the line being played is
highlighted), slide thumbnails along a timeline, speakers to name, a search within it and
downloads; reached by its own list, from the Library, or by a citation's "open the whole
recording" link (`/?recording=ID&t=SECONDS`). **Library**: what is indexed, uploads (ingested in
the background while chat keeps working; `upload_limit_mb` caps their size), re-ingest and
delete. Every failure reaches the page as a sentence, never a traceback.

Threads: the models load once per process into one *engine* thread that owns the searcher
(SQLite connections stay in the thread that made them), and answers run there one at a time;
attachments are read (speech, voice, OCR) in one more thread with the ingestion models;
ingestion runs in its own thread with its own index handle; the media route and the library
table read the catalog through per-thread connections; the recording page, captions and
downloads read (and rename speakers) in one more thread with its own index handle. Access groups
of the signed-in user go into Filters(groups=...) for every answer, listing, filter choice,
recording page, media, thumbnail, caption and download request.
"""

from __future__ import annotations

import datetime as dt
import html
import ipaddress
import json
import logging
import os
import queue
import re
import shutil
import threading
import time
import unicodedata
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import gradio as gr  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402

from assistant.evidence import clock  # noqa: E402
from retrieval.filters import Filters  # noqa: E402
from retrieval.schema import FRAMES, SLIDES  # noqa: E402
from ui.media_server import CatalogReader, is_video, media_router  # noqa: E402
from ui.settings import Settings  # noqa: E402
from ui.users import Users, load_users  # noqa: E402

log = logging.getLogger("clipcite.web")

MEDIA_SUFFIXES = (".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".oga", ".opus", ".webm",
                  ".mp4", ".m4v", ".mov", ".mkv", ".avi", ".wma", ".wmv")
MB = 1024 * 1024  # as Gradio counts a "mb" in max_file_size
TOO_BIG_ADVICE = ("Make it smaller (for example, save only the sound, or the video at a lower "
                  "quality), or ask your administrator to raise the upload limit.")
# A file attached to a chat message is searched by, never added to the library.
ATTACH_TOO_BIG_ADVICE = ("Attach a shorter clip (a few seconds of speech is enough) or a smaller "
                         "picture, or ask your administrator to raise the upload limit.")
EXAMPLES = [
    "What did we decide about the launch date?",
    "Which recordings are in the library?",
    "Summarize the most recent meeting.",
    "Where in the training video is the expense form explained?",
]


class SetupError(ValueError):
    """A reason the server will not start, in one sentence."""


def plain_error(e: BaseException) -> str:
    """One line a person can read: what happened, without a traceback."""
    text = " ".join(str(e).split())[:240]
    return text or type(e).__name__


_ASK_ADMIN = "if it keeps happening, tell your administrator."
# Failures of the LLM service, told apart by class name so that no client library is imported
# here (openai, httpx and the standard library each have their own classes for these).
# Timeouts come first: openai's APITimeoutError is a kind of APIConnectionError.
_LLM_PROBLEMS = (
    (("APITimeoutError", "TimeoutException", "Timeout", "TimeoutError"),
     f"The answering service took too long to reply. Please try again; {_ASK_ADMIN}"),
    (("APIConnectionError", "ConnectError", "ConnectionError"),
     "The answering service (the language model) cannot be reached right now. Please try "
     f"again in a few minutes; {_ASK_ADMIN}"),
    (("AuthenticationError", "PermissionDeniedError"),
     "The answering service refused this app's key. Please tell your administrator: the "
     "LLM key in the settings needs checking."),
    (("RateLimitError",),
     "The answering service is busy with too many requests. Please wait a minute and ask "
     "again."),
)


def _class_names(e: BaseException) -> set[str]:
    """Class names of an error, its bases and the errors it was raised from."""
    names: set[str] = set()
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        names.update(k.__name__ for k in type(e).__mro__)
        e = e.__cause__ or e.__context__
    return names


def friendly_error(e: BaseException) -> str:
    """What went wrong and what to do, in words for people who never see a traceback."""
    names = _class_names(e)
    for classes, sentence in _LLM_PROBLEMS:
        if names.intersection(classes):
            return sentence
    return (f"Sorry, I could not answer that: {plain_error(e)}. Please try again in a moment; "
            f"{_ASK_ADMIN}")


# -- the engine: models loaded once, answers run in one thread ---------------------------------
_DONE = object()


class Engine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="clipcite-engine")
        self.searcher: Any = None
        self.chat: Any = None
        self._loaded: Future = self._pool.submit(self._load)

    def _load(self) -> None:
        from assistant.agent import Assistant
        from assistant.llm import load_chat_model
        from ui.cli import open_searcher

        self.searcher = open_searcher(self.settings)
        self.chat = load_chat_model(self.settings.llm_config())
        Assistant(self.searcher, self.chat).warm_up()  # the first question reads less prompt

    def wait_ready(self, timeout: float | None = None) -> None:
        self._loaded.result(timeout)

    def turn(self, message: str, history: list, filters: Filters,
             example: Any = None) -> Iterator[Any]:
        """The assistant's events for one turn (searching by `example`, an attached clip or
        screenshot, when given); an exception arrives as an exception item."""
        from assistant.agent import Assistant

        out: queue.Queue = queue.Queue()

        def run() -> None:
            try:
                self._loaded.result()
                assistant = Assistant(self.searcher, self.chat, filters=filters, example=example)
                for event in assistant.turn(message, history):
                    out.put(event)
            except BaseException as e:  # noqa: BLE001 - reported to the page, logged here
                log.exception("answering %r failed", message)
                out.put(e)
            finally:
                out.put(_DONE)

        self._pool.submit(run)
        while (item := out.get()) is not _DONE:
            yield item

    def call(self, fn: Any, *args: Any, timeout: float = 120) -> Any:
        """fn(searcher, *args) in the engine thread, which owns the searcher and its encoder."""
        def run() -> Any:
            self._loaded.result()
            return fn(self.searcher, *args)

        return self._pool.submit(run).result(timeout)


class ExampleReader:
    """Reads clips and screenshots attached in the chat with ingestion/example.py's
    read_example, the function behind `clipcite search --like`. Its models (speech, voices, OCR,
    CLIP) load at the first attachment and stay; reading runs in a thread of its own, so a clip's
    speech recognition does not hold up answers in the engine thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="clipcite-examples")
        self._models: Any = None

    def read(self, path: Path, timeout: float = 300) -> Any:
        """The Example of a file; MediaError with a plain reason when it cannot be read."""
        def run() -> Any:
            from ingestion.example import read_example
            from ingestion.extract import Models

            options = self.settings.extract_options()
            if self._models is None:
                self._models = Models(options)
            return read_example(path, options, self._models)

        return self._pool.submit(run).result(timeout)


# -- one recording: transcript, slides, speakers, files ----------------------------------------
@dataclass
class RecordingView:
    rec: Any
    lines: list[Any]  # transcript Moments, in time order
    slides: list[Any]  # slide Moments, in time order
    speakers: list[Any]  # retrieval.speakers.Speaker


class Archive:
    """Reads recordings and renames speakers in one thread with its own index handle (its
    SQLite connections must stay in the thread that made them). Every call names the caller's
    groups; a recording they may not see is None, exactly like one that does not exist."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="clipcite-archive")
        self._index: Any = None

    def _run(self, fn: Any, *args: Any) -> Any:
        def run() -> Any:
            if self._index is None:
                from retrieval.index import Index

                self._index = Index(self.settings.index_dir, chroma_url=self.settings.chroma_url)
            return fn(self._index, *args)

        return self._pool.submit(run).result(120)

    @staticmethod
    def _find(index: Any, media_id: str, groups: frozenset[str] | None) -> Any:
        from retrieval.filters import visible_recordings

        return next((r for r in visible_recordings(index, Filters(groups=groups))
                     if r.media_id == media_id), None)

    def view(self, media_id: str, groups: frozenset[str] | None) -> RecordingView | None:
        """Everything the recording page shows, or None."""
        from retrieval import tools

        def read(index: Any) -> RecordingView | None:
            rec = self._find(index, media_id, groups)
            if rec is None:
                return None
            return RecordingView(rec, tools.transcript(index, rec), tools.slides(index, rec),
                                 tools.speakers(index, rec))

        return self._run(read)

    def rename(self, media_id: str, groups: frozenset[str] | None, speaker: str,
               name: str) -> str:
        """Names a speaker (or confirms a suggestion); returns the name. Raises SpeakerError
        with a sentence when the name cannot be used, LookupError when the recording is gone."""
        from retrieval import tools

        def write(index: Any) -> str:
            rec = self._find(index, media_id, groups)
            if rec is None:
                raise LookupError(media_id)
            return tools.rename_speaker(index, rec, speaker, name).shown

        return self._run(write)

    def file(self, media_id: str, groups: frozenset[str] | None,
             fmt: str) -> tuple[str, str] | None:
        """(title, text) of a transcript download (srt, vtt, txt or rttm), or None."""
        from retrieval import tools
        from ui.export import render

        def read(index: Any) -> tuple[str, str] | None:
            rec = self._find(index, media_id, groups)
            if rec is None:
                return None
            return rec.title, render(fmt, tools.transcript(index, rec),
                                     tools.speaker_turns(index, rec), rec.path)

        return self._run(read)


# -- ingestion in the background ---------------------------------------------------------------
@dataclass
class JobState:
    running: bool = False
    current: str = ""
    stage: str = ""
    fraction: float = 0.0
    done: int = 0
    total: int = 0
    messages: list[str] = field(default_factory=list)  # newest last, plain sentences
    version: int = 0  # bumps whenever the catalog changed


class _WebReporter:
    def __init__(self, state: JobState) -> None:
        self.state = state

    def batch_started(self, files) -> None:
        self.state.total += len(files)

    def file_started(self, path: Path) -> None:
        self.state.current, self.state.stage, self.state.fraction = path.name, "starting", 0.0

    def file_progress(self, path: Path, stage: str, fraction: float) -> None:
        self.state.current, self.state.stage = path.name, stage
        self.state.fraction = max(0.0, min(1.0, fraction))

    def file_finished(self, outcome) -> None:
        self.state.done += 1
        self.state.version += 1
        name = Path(outcome.path).name
        if outcome.status == "indexed":
            n = sum(outcome.counts.values())
            self.state.messages.append(f"“{name}” is ready to search ({n} passages).")
        elif outcome.status == "unchanged":
            note = f" It failed before: {outcome.reason}" if outcome.reason else ""
            self.state.messages.append(f"“{name}” was already up to date.{note}")
        elif outcome.status == "failed":
            self.state.messages.append(f"“{name}” could not be added: {outcome.reason}. "
                                       "Check that it is a complete audio or video file.")


class Ingester:
    """One background thread that adds, re-reads and deletes recordings, one job at a time."""

    def __init__(self, settings: Settings, library_dir: Path) -> None:
        self.settings, self.library_dir = settings, library_dir
        self.state = JobState()
        self._jobs: queue.Queue = queue.Queue()
        self._index: Any = None
        threading.Thread(target=self._loop, name="clipcite-ingest", daemon=True).start()

    def submit(self, kind: str, **args: Any) -> None:
        self.state.running = True
        self._jobs.put((kind, args))

    def wait_idle(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while (self.state.running or not self._jobs.empty()) and time.monotonic() < deadline:
            time.sleep(0.2)

    def _loop(self) -> None:
        while True:
            kind, args = self._jobs.get()
            self.state.running = True
            try:
                if self._index is None:
                    from retrieval.index import Index

                    self._index = Index(self.settings.index_dir, chroma_url=self.settings.chroma_url)
                getattr(self, f"_{kind}")(**args)
            except BaseException as e:  # noqa: BLE001 - the thread must live on
                log.exception("library job %s failed", kind)
                self.state.messages.append(f"Something went wrong: {plain_error(e)}. "
                                           "Please try again; if it keeps happening, tell "
                                           "your administrator.")
            finally:
                self.state.version += 1
                if self._jobs.empty():
                    self.state.running = False
                    self.state.current, self.state.stage = "", ""
                    self.state.done = self.state.total = 0

    def _ingest(self, paths: list[Path], groups: list[str] | None) -> None:
        from ingestion.batch import BatchOptions, run_batch

        options = BatchOptions(extract=self.settings.extract_options(), groups=groups,
                               workers=1, file_timeout=self.settings.file_timeout)
        run_batch(paths, self._index, options, _WebReporter(self.state))

    def _reingest(self, media_id: str) -> None:
        rec = self._index.catalog.get(media_id)
        if rec is None:
            return
        self._index.catalog.forget_content(media_id)
        self._ingest([Path(rec.path)], None)

    def _delete(self, media_id: str) -> None:
        rec = self._index.catalog.get(media_id)
        if rec is None:
            return
        self._index.remove_recording(media_id)
        path = Path(rec.path)
        removed_file = False
        try:  # only files this app uploaded are deleted from disk
            if path.resolve().parent == self.library_dir.resolve() and path.is_file():
                path.unlink()
                removed_file = True
        except OSError:
            pass
        self.state.messages.append(f"“{rec.title}” was removed from the library"
                                   + (" and its file deleted." if removed_file else "."))


def safe_filename(name: str) -> str:
    """A plain file name: no folders, no control or odd characters, a media suffix kept."""
    name = unicodedata.normalize("NFKC", Path(name.replace("\\", "/")).name)
    stem, suffix = os.path.splitext(name)
    stem = re.sub(r"[^\w\- .()]+", "_", stem).strip(" ._") or "recording"
    suffix = re.sub(r"[^\w.]+", "", suffix.lower())[:8]
    return f"{stem[:100]}{suffix}"


def too_big_message(name: str, size: int, limit_mb: float,
                    outcome: str = "it was not added", advice: str = TOO_BIG_ADVICE) -> str:
    return (f"“{name}” is {size / MB:.1f} MB, more than the {limit_mb:g} MB allowed, so "
            f"{outcome}. {advice}")


# -- a clip or screenshot attached to a chat message -------------------------------------------
class AttachmentError(ValueError):
    """An attachment that cannot be searched by, in one sentence naming the file."""


def split_message(message: Any) -> tuple[str, list[Path]]:
    """The typed text and the attached files of the chat box (a MultimodalTextbox value)."""
    if isinstance(message, dict):
        files = [Path(f if isinstance(f, str) else f.get("path", "")) for f in
                 message.get("files") or []]
        return (message.get("text") or "").strip(), [f for f in files if str(f) not in ("", ".")]
    return (message or "").strip(), []


def is_image_name(name: str) -> bool:
    from ingestion.example import IMAGE_SUFFIXES  # imported when needed: it loads scipy

    return name.lower().endswith(IMAGE_SUFFIXES)


def is_upload(path: Path) -> bool:
    """Whether a file the page names is one Gradio received as an upload. The page names files
    by their path on the server, and Gradio checks that they are uploads only when it runs the
    server itself (launch()), not when mounted in our FastAPI app: without this, a hand-made
    request could have any file on the server read out, or deleted."""
    from gradio.utils import get_upload_folder

    try:
        root, real = Path(get_upload_folder()).resolve(), path.resolve()
    except OSError:
        return False
    return real != root and real.is_relative_to(root)


def check_attachment(path: Path, limit_mb: float) -> None:
    """Refuses, in a sentence, a file that is not a clip or picture, not an upload, gone, or
    too big (Gradio checks the size too, in the browser and on upload: never trust it alone)."""
    name = path.name
    if not (name.lower().endswith(MEDIA_SUFFIXES) or is_image_name(name)):
        raise AttachmentError(
            f"“{name}” is not an audio clip or a picture, so I could not search by it. Attach "
            "a short recording (such as .m4a, .mp3 or .wav) or a screenshot (.png or .jpg).")
    if not (is_upload(path) and path.is_file()):
        raise AttachmentError(f"“{name}” did not arrive. Please attach it again.")
    size = path.stat().st_size
    if size > limit_mb * MB:
        raise AttachmentError(too_big_message(name, size, limit_mb, "I could not search by it",
                                              ATTACH_TOO_BIG_ADVICE))


def discard_upload(path: Path) -> None:
    """Removes an attachment's uploaded file, and its folder when that is left empty (Gradio
    keeps each upload in a folder named after its contents): an example is read, never kept.
    A file outside Gradio's uploads is never touched."""
    if not is_upload(path):
        return
    try:
        path.unlink(missing_ok=True)
        if is_upload(path.parent):  # never Gradio's upload folder itself
            path.parent.rmdir()
    except OSError:
        pass


def read_attachment(reader: ExampleReader, path: Path, limit_mb: float, question: str) -> Any:
    """The Example of an attached file, or AttachmentError; the upload is removed either way."""
    from ingestion.media import MediaError

    name = path.name
    try:
        check_attachment(path, limit_mb)
        example = reader.read(path)
    except MediaError as e:
        raise AttachmentError(f"I could not use “{name}”: {plain_error(e)}. Attach a clip in "
                              "which someone speaks, or a screenshot of a slide.") from None
    except AttachmentError:
        raise
    except Exception as e:  # noqa: BLE001 - a sentence, never a traceback
        log.exception("reading the attachment %s failed", name)
        raise AttachmentError(f"I could not read “{name}”: {plain_error(e)}. Please try again; "
                              f"{_ASK_ADMIN}") from None
    finally:
        discard_upload(path)
    if not example.text and example.image is None and not question:
        raise AttachmentError(  # a picture without readable text, and CLIP is off
            f"I could not read any text in “{name}”, so there is nothing to look for on the "
            "slides. Attach a sharper screenshot, or type what you are looking for.")
    return example


def attachment_status(name: str) -> str:
    """What the answer bubble says while the attachment is read."""
    return (f"Reading the text in “{name}”…" if is_image_name(name) else
            f"Listening to “{name}”…")


def user_bubble(text: str, names: list[str]) -> str:
    """The person's message as shown in the chat: the attached file's name, then the text."""
    attached = "".join(f"<em>Attached: {html.escape(n)}</em>\n\n" for n in names)
    return (attached + html.escape(text)).strip()


def _quote(text: str, limit: int) -> str:
    """Text on one line, cut at a word before `limit` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def example_reply(name: str, example: Any, moments: list[Any]) -> Any:
    """A file sent without a question: what was heard or read in it, and the moments it
    matches, best first, each a citation (no language model needed)."""
    from assistant.agent import Reply
    from assistant.evidence import Citation, label

    words = _quote(example.text, 200)
    heard = (f"On “{name}” I read: “{words}”. " if example.kind == "image" else
             f"In “{name}” I heard: “{words}”. ") if words else ""
    if not moments:
        return Reply(f"{heard}Nothing in the recordings you can see matches it.", found=[])
    lines = []
    for n, m in enumerate(moments, 1):
        who = f" ({m.speaker})" if m.speaker else ""
        where = " [on screen]" if m.modality in _VISUAL else ""
        lines.append(f"[{n}] {label(m)}{who}{where}: “{_quote(m.text, 160)}”")
    citations = [Citation(n, m.media_id, m.path, m.title, m.start, m.end, m.text, m.speaker)
                 for n, m in enumerate(moments, 1)]
    return Reply(f"{heard}It matches these moments, best first (click one to play it):\n"
                 + "\n".join(lines), citations, intent="find", found=moments)


def unique_path(folder: Path, name: str) -> Path:
    path = folder / name
    stem, suffix = os.path.splitext(name)
    n = 2
    while path.exists():
        path = folder / f"{stem} ({n}){suffix}"
        n += 1
    return path


# -- rendering ---------------------------------------------------------------------------------
_VISUAL = (SLIDES, FRAMES)


def thumb_time(c: Any, found: list[Any]) -> float | None:
    """When a citation's moment was found on screen (slides or frames), the time of the picture
    to show beside its text: the cited start if the slide was up then, else the slide's start."""
    for m in found:
        if m.media_id != c.media_id or abs(m.start - c.start) > 0.01 or abs(m.end - c.end) > 0.01:
            continue
        spans = [(m.start, m.end)] if m.modality in _VISUAL else []
        spans += [(float(e["start"]), float(e["end"])) for e in m.evidence
                  if e.get("modality") in _VISUAL]
        if spans:
            inside = any(s <= c.start <= e for s, e in spans)
            return c.start if inside else min(s for s, _ in spans)
    return None


def chip_html(c: Any, thumb: float | None = None) -> str:
    """A citation chip. Gradio's chat sanitiser drops data-* attributes but keeps a button's
    name, value and title: name is the media id, value "start|end|kind|thumbnail time" (empty
    when the moment was not on screen), title the cited text."""
    kind = "video" if is_video(c.path) else "audio"
    shot = f"{thumb:.1f}" if thumb is not None and kind == "video" else ""
    attrs = {"class": "cc-chip", "name": c.media_id,
             "value": f"{c.start:.2f}|{c.end:.2f}|{kind}|{shot}",
             "title": " ".join(c.text.split())[:600]}
    attr = " ".join(f'{k}="{html.escape(str(v), quote=True)}"' for k, v in attrs.items())
    return f"<button {attr}>[{c.n}] {html.escape(c.title)} · {clock(c.start)}</button>"


def answer_html(reply: Any, note: str = "") -> str:
    body = html.escape(reply.answer.strip() or "I have no answer to that.")
    if note:
        body += f"\n\n<em>{html.escape(note)}</em>"
    if not reply.citations:
        return body
    chips = " ".join(chip_html(c, thumb_time(c, reply.found)) for c in reply.citations)
    return f'{body}\n\n<div class="cc-chips">{chips}</div>'


# -- the recording page ------------------------------------------------------------------------
NOT_AVAILABLE = ("This recording is not available. It may have been removed, or you may not "
                 "have access to it. Choose another one from the list.")
DOWNLOADS = (("srt", "Subtitles (.srt)"), ("vtt", "Captions (.vtt)"), ("txt", "Text (.txt)"),
             ("rttm", "Who spoke when (.rttm)"))
_WHERE = {SLIDES: "on screen", FRAMES: "in the picture"}


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _slide_marks(view: RecordingView) -> list[tuple[float, str]]:
    """One mark per slide on screen: its start and its text (slide text is stored per line)."""
    marks: dict[float, list[str]] = {}
    for m in view.slides:
        marks.setdefault(round(m.start, 1), []).append(" ".join(m.text.split()))
    return [(t, " / ".join(texts)[:300]) for t, texts in sorted(marks.items())]


def timeline_html(view: RecordingView) -> str:
    """Slide thumbnails placed along the recording's length; a click plays from there."""
    rec = view.rec
    marks = _slide_marks(view) if is_video(rec.path) else []
    if not marks:
        return ""
    length = max(rec.duration or 0.0, marks[-1][0] + 1.0)
    thumbs = "".join(
        f'<button class="cc-seek cc-slide" data-start="{t:.2f}" '
        f'title="{_e(clock(t))} · {_e(text)}"'
        f' style="left:{min(100.0, 100.0 * t / length):.2f}%">'
        f'<img src="thumb/{_e(rec.media_id)}?t={t:.1f}" alt="The screen at {_e(clock(t))}" '
        f'loading="lazy"></button>' for t, text in marks)
    return (f'<div class="cc-timeline-label">Slides along the recording (click one to play from '
            f'there)</div><div id="cc-rec-timeline" class="cc-timeline" data-length="{length:.2f}">'
            f'<div id="cc-rec-playhead"></div>{thumbs}</div>')


def player_page_html(view: RecordingView | None, start: float = 0.0) -> str:
    """The recording page's player (with captions), slide timeline and downloads."""
    if view is None:
        return f"<div id='cc-rec-box' class='cc-missing'>{_e(NOT_AVAILABLE)}</div>"
    rec, media = view.rec, _e(view.rec.media_id)
    kind = "cc-video" if is_video(rec.path) else "cc-audio"
    when = f" · recorded {_fmt_date(rec.recorded_at)}" if rec.recorded_at else ""
    length = f" · {clock(rec.duration)} long" if rec.duration else ""
    at = f"#t={start:.2f}" if start > 0 else ""
    links = " ".join(f'<a class="cc-download" href="export/{media}.{fmt}" download>{label}</a>'
                     for fmt, label in DOWNLOADS)
    return (f"<div id='cc-rec-box' data-media='{media}'>"
            f"<div id='cc-rec-title'>{_e(rec.title)}{_e(length)}{_e(when)}</div>"
            f"<video id='cc-rec-player' class='{kind}' controls preload='metadata' playsinline "
            f"src='media/{media}{at}'><track kind='captions' default label='Transcript' "
            f"src='captions/{media}.vtt'></video><div class='cc-caption' aria-live='polite'>"
            f"</div>{timeline_html(view)}"
            f"<div class='cc-downloads'>Download the transcript: {links}</div></div>")


def transcript_html(view: RecordingView | None) -> str:
    """Every line with its speaker and time; a click (or Enter) plays from that line."""
    if view is None:
        return ""
    if not view.lines:
        return ("<div id='cc-rec-lines' class='cc-empty'>No speech was found in this "
                "recording.</div>")
    items = "".join(
        f'<li class="cc-line" role="button" tabindex="0" data-start="{m.start:.2f}" '
        f'data-end="{m.end:.2f}"><span class="cc-line-time">{clock(m.start)}</span>'
        f'<span class="cc-line-who">{_e(m.speaker or "")}</span>'
        f'<span class="cc-line-text">{_e(" ".join(m.text.split()))}</span></li>'
        for m in view.lines)
    return (f"<div class='cc-lines-label'>Transcript ({len(view.lines)} lines): click a line to "
            f"play from there</div><ol id='cc-rec-lines'>{items}</ol>")


def speakers_html(view: RecordingView | None) -> str:
    if view is None:
        return ""
    if not view.speakers:
        return ("<div id='cc-rec-speakers'>No speakers were told apart in this recording "
                "(re-ingest it from the Library to find them).</div>")
    rows = []
    for sp in view.speakers:
        note = " — suggested from their voice: confirm it or give the right name" \
            if sp.status == "suggested" else ""
        rows.append(f"<li><b>{_e(sp.shown)}</b> · {clock(sp.seconds)} of speech{_e(note)}</li>")
    return f"<ul id='cc-rec-speakers'>{''.join(rows)}</ul>"


def speaker_choices(view: RecordingView | None) -> list[tuple[str, str]]:
    """(shown, label): the label is stable while names change."""
    if view is None:
        return []
    return [(f"{sp.shown} (suggested)" if sp.status == "suggested" else sp.shown, sp.label)
            for sp in view.speakers]


def found_html(moments: list[Any], query: str) -> str:
    """Moments found within the recording; a click plays from there."""
    if not moments:
        return (f"<div id='cc-rec-found' class='cc-empty'>Nothing in this recording matches "
                f"“{_e(query)}”. Try other words.</div>")
    items = []
    for m in sorted(moments, key=lambda m: m.start):
        where = _WHERE.get(m.modality) or (f"said by {m.speaker}" if m.speaker else "said")
        items.append(f'<li><button class="cc-seek cc-found" data-media="{_e(m.media_id)}" '
                     f'data-start="{m.start:.2f}">{clock(m.start)} · {_e(where)}</button> '
                     f'<span>{_e(" ".join(m.text.split())[:300])}</span></li>')
    return f"<ol id='cc-rec-found'>{''.join(items)}</ol>"


def parse_start(text: str | None) -> float:
    """A start time from a link (?t=SECONDS); anything else starts at the beginning."""
    try:
        t = float(text or 0)
    except ValueError:
        return 0.0
    return t if 0 <= t < 1e7 else 0.0


PLAYER_HTML = """
<div id="cc-player-box">
  <div id="cc-player-title">Click a citation under an answer to play that moment here.</div>
  <video id="cc-player" controls preload="metadata" playsinline></video>
  <div class="cc-caption" aria-live="polite"></div>
  <a id="cc-player-open" target="_blank" rel="noopener" style="display:none">Open the whole
    recording (transcript, speakers, downloads) in a new tab</a>
  <div id="cc-player-cited">
    <img id="cc-player-thumb" alt="" style="display:none">
    <div id="cc-player-text"></div>
  </div>
</div>
"""

HEAD = r"""
<script>
(function () {
  function clock(s) {
    s = Math.max(0, Math.floor(s)); var h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60);
    var ss = String(s % 60).padStart(2, '0'), mm = String(m).padStart(2, '0');
    return h ? h + ':' + mm + ':' + ss : mm + ':' + ss;
  }
  document.addEventListener('click', function (ev) {
    var chip = ev.target.closest && ev.target.closest('.cc-chip');
    if (!chip) return;
    ev.preventDefault();
    var v = document.getElementById('cc-player');
    if (!v) return;
    var id = chip.getAttribute('name'), parts = (chip.getAttribute('value') || '').split('|');
    var start = parseFloat(parts[0]) || 0;
    var title = chip.textContent.replace(/^\s*\[\d+\]\s*/, '').replace(/\s*·\s*[\d:]+\s*$/, '');
    document.getElementById('cc-player-title').textContent = title + ' · ' + clock(start);
    var said = chip.getAttribute('title') || '';
    document.getElementById('cc-player-text').textContent = said ? '“' + said + '”' : '';
    var thumb = document.getElementById('cc-player-thumb'), shot = parts[3];
    if (thumb && shot) {  // a slide or frame hit: the picture on screen beside the cited text
      thumb.onerror = function () { thumb.style.display = 'none'; };
      thumb.alt = 'The screen at ' + clock(parseFloat(shot));
      thumb.src = 'thumb/' + encodeURIComponent(id) + '?t=' + encodeURIComponent(shot);
      thumb.style.display = '';
    } else if (thumb) {
      thumb.removeAttribute('src'); thumb.style.display = 'none';
    }
    var open = document.getElementById('cc-player-open');
    if (open) {
      open.href = '?recording=' + encodeURIComponent(id) + '&t=' + start.toFixed(2);
      open.style.display = '';
    }
    v.className = parts[2] === 'audio' ? 'cc-audio' : 'cc-video';
    v.setAttribute('data-start', String(start));
    var seek = function () {
      v.currentTime = start; v.setAttribute('data-ready', '1');
      var p = v.play(); if (p && p.catch) p.catch(function () {});
    };
    if (v.getAttribute('data-media') === id && v.readyState >= 1) { seek(); return; }
    v.setAttribute('data-media', id); v.removeAttribute('data-ready');
    v.onerror = function () {  // in the title line: the cited text stays readable
      document.getElementById('cc-player-title').textContent =
        'This recording cannot be played right now. It may have been removed, or you may not ' +
        'have access to it. Ask your administrator if you need it.';
    };
    v.addEventListener('loadedmetadata', seek, {once: true});
    v.src = 'media/' + encodeURIComponent(id) + '#t=' + start.toFixed(2);
    setCaptions(v, 'captions/' + encodeURIComponent(id) + '.vtt');
    v.load();
  });

  // Captions: the transcript as WebVTT, speaker names as voice tags.
  function setCaptions(v, src) {
    Array.prototype.forEach.call(v.querySelectorAll('track'), function (t) { t.remove(); });
    var t = document.createElement('track');
    t.kind = 'captions'; t.label = 'Transcript'; t.default = true; t.src = src;
    v.appendChild(t);
    t.track.mode = 'showing';
  }
  // Chrome draws no captions for sound without a picture: the box under the player shows
  // the current caption with its speaker (hidden under a video, which draws its own).
  document.addEventListener('cuechange', function (ev) {
    var track = ev.target, v = track.parentElement, box = v && v.nextElementSibling;
    if (!track.track || !box || !box.classList.contains('cc-caption')) return;
    box.textContent = Array.prototype.map.call(track.track.activeCues || [], function (c) {
      var who = /^<v\s+([^>]+)>/.exec(c.text);
      return (who ? who[1] + ': ' : '') + c.getCueAsHTML().textContent;
    }).join(' ');
  }, true);
  // After a speaker is renamed: the same captions again, with the new name.
  window.ccReloadCaptions = function () {
    var v = document.getElementById('cc-rec-player'), t = v && v.querySelector('track');
    if (t) setCaptions(v, t.getAttribute('src').split('?')[0] + '?v=' + Date.now());
  };

  // The recording page: transcript lines, slide thumbnails and found moments play from their
  // start; the line being played is highlighted and kept in view.
  function playFrom(v, t) {
    var go = function () {
      v.currentTime = t; v.setAttribute('data-seeked', t.toFixed(2));
      var p = v.play(); if (p && p.catch) p.catch(function () {});
    };
    if (v.readyState >= 1) go(); else v.addEventListener('loadedmetadata', go, {once: true});
  }
  function seekFromPage(ev) {
    var el = ev.target.closest && ev.target.closest('.cc-line, .cc-seek');
    var v = document.getElementById('cc-rec-player');
    if (!el || !v) return;
    ev.preventDefault();
    playFrom(v, parseFloat(el.getAttribute('data-start')) || 0);
  }
  document.addEventListener('click', seekFromPage);
  document.addEventListener('keydown', function (ev) {
    if ((ev.key === 'Enter' || ev.key === ' ') && ev.target.classList &&
        ev.target.classList.contains('cc-line')) seekFromPage(ev);
  });
  function follow(v) {
    var t = v.currentTime, lines = document.querySelectorAll('#cc-rec-lines .cc-line'), now = null;
    for (var i = 0; i < lines.length; i++) {
      if (parseFloat(lines[i].getAttribute('data-start')) <= t + 0.05) now = lines[i]; else break;
    }
    var bar = document.getElementById('cc-rec-timeline');
    var head = document.getElementById('cc-rec-playhead');
    if (bar && head) {
      var length = parseFloat(bar.getAttribute('data-length')) || v.duration || 1;
      head.style.left = Math.min(100, 100 * t / length) + '%';
    }
    var was = document.querySelector('#cc-rec-lines .cc-current');
    if (now === was) return;
    if (was) was.classList.remove('cc-current');
    if (!now) return;
    now.classList.add('cc-current');
    var box = document.getElementById('cc-rec-lines');  // scroll the list, not the page
    box.scrollTop = Math.max(0, now.offsetTop - box.clientHeight / 3);
  }
  // Media events do not bubble: listen while they travel down (capture).
  ['timeupdate', 'seeked'].forEach(function (name) {
    document.addEventListener(name, function (ev) {
      if (ev.target && ev.target.id === 'cc-rec-player') follow(ev.target);
    }, true);
  });
})();
</script>
"""

# Gradio refuses a file over max_file_size in the browser with a short notice that names only
# the limit; this says which file, how big, and what to do, under the upload box (Library) or
# under the chat box (an attachment).
UPLOAD_LIMIT_JS = """
<script>
(function () {
  var LIMIT_MB = __LIMIT_MB__, MB = 1048576;
  var PLACES = [
    {box: '#cc-upload', note: 'cc-upload-note-text', tail: 'so it was not added. ' + __ADVICE__},
    {box: '#cc-question', note: 'cc-attach-note-text',
     tail: 'so I could not search by it. ' + __ATTACH_ADVICE__}];
  function check(place, files) {
    var note = document.getElementById(place.note);
    if (!note) return;
    note.textContent = Array.prototype.filter.call(files || [], function (f) {
      return f.size > LIMIT_MB * MB;
    }).map(function (f) {
      return '“' + f.name + '” is ' + (f.size / MB).toFixed(1) + ' MB, more than the ' +
        LIMIT_MB + ' MB allowed, ' + place.tail;
    }).join(' ');
  }
  PLACES.forEach(function (place) {
    document.addEventListener('change', function (ev) {
      var t = ev.target;
      if (t.matches && t.matches(place.box + ' input[type=file]')) check(place, t.files);
    }, true);
    document.addEventListener('drop', function (ev) {
      var t = ev.target;
      if (t.closest && t.closest(place.box) && ev.dataTransfer) {
        check(place, ev.dataTransfer.files);
      }
    }, true);
  });
  // A new question clears the note about an earlier attachment.
  function clearAttachNote() {
    var note = document.getElementById('cc-attach-note-text');
    if (note) note.textContent = '';
  }
  document.addEventListener('keydown', function (ev) {
    if (ev.key === 'Enter' && !ev.shiftKey && ev.target.closest &&
        ev.target.closest('#cc-question')) clearAttachNote();
  }, true);
  document.addEventListener('click', function (ev) {
    if (ev.target.closest && ev.target.closest('#cc-ask')) clearAttachNote();
  }, true);
})();
</script>
"""


def upload_limit_js(limit_mb: float) -> str:
    return (UPLOAD_LIMIT_JS.replace("__LIMIT_MB__", f"{limit_mb:g}")
            .replace("__ADVICE__", json.dumps(TOO_BIG_ADVICE))
            .replace("__ATTACH_ADVICE__", json.dumps(ATTACH_TOO_BIG_ADVICE)))


# The date picker keeps a mistyped date to itself, so the question would quietly search every
# date; sending what is typed lets the answer say what is wrong with it.
SEND_TYPED_DATES = """(...args) => {
  const typed = (id, value) => {
    const box = document.querySelector('#' + id + ' input');
    return box ? (box.value || null) : value;  // not on the page: the value Gradio holds
  };
  return [...args.slice(0, 5), typed('cc-from', args[5]), typed('cc-until', args[6])];
}"""

CSS = """
.cc-chip { display:inline-block; margin:4px 6px 0 0; padding:3px 10px; border-radius:14px;
  border:1px solid #7a9cc6; background:#eef4fb; color:#17375e; cursor:pointer; font-size:0.9em; }
.cc-chip:hover { background:#d9e7f7; }
#cc-player { width:100%; max-height:360px; background:#000; border-radius:6px; }
#cc-player.cc-audio, #cc-rec-player.cc-audio { height:54px; background:transparent; }
.cc-caption { min-height:2.8em; margin:4px 0; padding:6px 10px; border-radius:6px;
  background:#1d2733; color:#fff; }
video:not(.cc-audio) + .cc-caption { display:none; }
#cc-player-open { display:block; margin:6px 0; }
#cc-rec-player { width:100%; max-height:400px; background:#000; border-radius:6px; }
#cc-rec-title { font-weight:600; margin-bottom:6px; }
.cc-missing, .cc-empty { color:#555; font-style:italic; padding:8px 0; }
.cc-timeline-label, .cc-lines-label { font-size:0.9em; color:#555; margin:8px 0 4px; }
.cc-timeline { position:relative; height:64px; margin:0 48px 8px 0;
  border-top:3px solid #7a9cc6; }
#cc-rec-playhead { position:absolute; top:-7px; left:0; width:3px; height:70px;
  background:#c0392b; z-index:5; pointer-events:none; }
.cc-slide { position:absolute; top:4px; padding:0; border:1px solid #999; background:#fff;
  cursor:pointer; border-radius:3px; }
.cc-slide:hover { z-index:6; border-color:#17375e; }
.cc-slide img { display:block; width:88px; height:auto; max-height:54px; }
.cc-downloads { margin-top:8px; }
.cc-download { margin-right:12px; }
#cc-rec-lines { max-height:520px; overflow-y:auto; position:relative; margin:0;
  padding:0; list-style:none; border:1px solid #ddd; border-radius:6px; }
.cc-line { display:grid; grid-template-columns:4.2em 8em 1fr; gap:6px; padding:4px 8px;
  cursor:pointer; border-bottom:1px solid #f0f0f0; }
.cc-line:hover { background:#f2f6fb; }
.cc-line.cc-current { background:#fff3c4; }
.cc-line-time { color:#17375e; font-variant-numeric:tabular-nums; }
.cc-line-who { font-weight:600; color:#444; overflow-wrap:anywhere; }
#cc-rec-found { padding-left:1.2em; }
#cc-rec-found li { margin:4px 0; }
.cc-found { padding:2px 8px; border:1px solid #7a9cc6; border-radius:12px; background:#eef4fb;
  color:#17375e; cursor:pointer; }
#cc-player-title { font-weight:600; margin-bottom:6px; }
#cc-player-cited { display:flex; gap:10px; align-items:flex-start; margin-top:8px; }
#cc-player-thumb { width:160px; flex:none; border:1px solid #ccc; border-radius:4px; }
#cc-player-text { font-style:italic; color:#444; }
#cc-upload-note-text, #cc-attach-note-text { color:#a12d0c; }
#cc-attach-note:has(#cc-attach-note-text:empty) { display:none; }
"""


def _fmt_date(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(ts)) if ts else "-"


def _status_words(rec: Any) -> tuple[str, str]:
    if rec.status == "failed":
        problem = rec.error or "unknown problem"
        if rec.searchable:
            return ("searchable (last update failed)",
                    f"The last update failed: {problem}. The earlier version is still used.")
        return "not searchable", f"Could not be read: {problem}. Try re-ingesting, or " \
                                 "check the file plays on your computer."
    return ("ready", "") if rec.searchable else (rec.status, "")


LIBRARY_COLUMNS = ["Title", "Length", "Date", "Status", "Spoken passages", "Slide text",
                   "Video frames", "Who can see it", "Problem"]


# -- chat filters ------------------------------------------------------------------------------
class FilterError(ValueError):
    """A chat filter that cannot be used, in one sentence that says what to do."""


_DAY = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")


def parse_day(text: str | None, label: str) -> dt.date | None:
    """A YYYY-MM-DD date typed or picked in the page (a time after it is ignored)."""
    text = (text or "").strip()
    if not text:
        return None
    m = _DAY.match(text)
    try:
        return dt.date.fromisoformat(m.group(1)) if m else dt.date.fromisoformat(text)
    except ValueError:
        raise FilterError(f"I could not read the date “{text}” in “{label}”. Write it as "
                          "year-month-day, for example 2024-03-31, or clear it.") from None


def _midnight(day: dt.date) -> float:
    """The start of a day in this server's time zone, as Unix seconds."""
    return time.mktime(day.timetuple())


def chat_filters(groups: frozenset[str] | None, visible: list[Any], recordings: list | None,
                 tags: list | None, date_from: str | None, date_to: str | None) -> Filters:
    """The Filters of one question: the person's groups always, then what they chose.

    Chosen recordings are kept only if this person may see them (the page's choices are not
    trusted); "until" includes the whole of that day.
    """
    allowed = {r.media_id for r in visible}
    chosen = tuple(dict.fromkeys(i for i in recordings or () if i in allowed))
    if recordings and not chosen:
        raise FilterError("The recordings chosen under “Limit the search” are no longer in the "
                          "library. Clear that choice or pick other recordings.")
    first, last = parse_day(date_from, "Recorded from"), parse_day(date_to, "Recorded until")
    if first and last and first > last:
        raise FilterError("The “Recorded from” date is after the “Recorded until” date. Swap "
                          "them, or clear one of them.")
    return Filters(groups=groups, recordings=chosen, tags=tuple(dict.fromkeys(tags or ())),
                   after=_midnight(first) if first else None,
                   before=_midnight(last + dt.timedelta(days=1)) if last else None)


def is_narrowed(filters: Filters) -> bool:
    return bool(filters.recordings or filters.tags or filters.after is not None
                or filters.before is not None)


def narrowed(filters: Filters, reply: Any) -> str:
    """The note under an answer that cites nothing while "Limit the search" was used."""
    return ("Only the recordings chosen under “Limit the search” were searched."
            if is_narrowed(filters) and not reply.citations else "")


def recording_choices(visible: list[Any]) -> list[tuple[str, str]]:
    return [(f"{r.title} ({_fmt_date(r.recorded_at)})", r.media_id) for r in visible]


def tag_choices(visible: list[Any]) -> list[str]:
    return sorted({t for r in visible for t in r.tags}, key=str.lower)


def still_offered(chosen: list | None, choices: list) -> list:
    """The chosen values that are still choices: Gradio rejects a question that sends a value
    no longer offered (a deleted recording), with an error the person cannot act on."""
    values = {c[1] if isinstance(c, tuple) else c for c in choices}
    return [v for v in chosen or () if v in values]


# -- the app -----------------------------------------------------------------------------------
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
        self.ingester = Ingester(settings, self.library_dir)
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


def _username(request: gr.Request | None) -> str | None:
    return getattr(request, "username", None) if request is not None else None


def build_app(settings: Settings, users: Users | None = None, *,
              context: WebContext | None = None, library_dir: Path | None = None) -> gr.Blocks:
    """The Gradio app. Serve it with `create_app` (it adds the /media route and sign-in)."""
    ctx = context or WebContext(settings, users, library_dir)

    def respond(message: Any, chat: list, turns: list, recordings: list | None,
                tags: list | None, date_from: str | None, date_to: str | None,
                request: gr.Request):
        """One chat message: typed text, an attached clip or screenshot, or both."""
        text, files = split_message(message)
        try:
            if not text and not files:
                yield gr.skip(), chat, turns
                return
            user = _username(request)
            chat = [*chat, {"role": "user", "content": user_bubble(text, [f.name for f in files])},
                    {"role": "assistant", "content": "…"}]
            yield "", chat, turns
            try:
                filters = chat_filters(ctx.groups(user), ctx.searchable(user), recordings, tags,
                                       date_from, date_to)
                if len(files) > 1:
                    raise AttachmentError("Attach one clip or screenshot at a time, then ask "
                                          "about the next one.")
            except (FilterError, AttachmentError) as e:
                chat[-1] = {"role": "assistant", "content": html.escape(str(e))}
                yield gr.skip(), chat, turns
                return
            if files:
                yield from by_example(files[0], text, chat, turns, filters)
            else:
                yield from answer(text, chat, turns, filters)
        finally:
            for f in files:  # the attachment is read once and never kept
                discard_upload(f)

    def answer(message: str, chat: list, turns: list, filters: Filters, example: Any = None,
               shown: str | None = None):
        """The assistant's streamed, cited answer (searching by `example` when one is given);
        `shown` is the message as the conversation history keeps it."""
        from assistant.agent import Turn

        text, reply = "", None
        try:
            for event in ctx.engine.turn(message, list(turns), filters, example):
                if isinstance(event, BaseException):
                    raise event
                if event.kind == "token":
                    text += event.data
                    chat[-1] = {"role": "assistant", "content": html.escape(text) + " ▌"}
                    yield gr.skip(), chat, turns
                elif event.kind == "reply":
                    reply = event.data
        except Exception as e:  # noqa: BLE001 - a sentence, never a traceback
            chat[-1] = {"role": "assistant", "content": html.escape(friendly_error(e))}
            yield gr.skip(), chat, turns
            return
        if reply is None:
            chat[-1] = {"role": "assistant", "content": "Sorry, no answer came back. Please "
                                                        "try again."}
        else:
            chat[-1] = {"role": "assistant", "content": answer_html(reply, narrowed(filters,
                                                                                    reply))}
            turns = [*turns, Turn("user", shown or message), Turn("assistant", reply.answer,
                                                                      reply.citations)]
        yield gr.skip(), chat, turns

    def by_example(path: Path, question: str, chat: list, turns: list, filters: Filters):
        """An attached clip or screenshot, read and searched as `clipcite search --like` does:
        with a question, the assistant answers it from the moments found; alone, the moments
        found are the answer."""
        from assistant.agent import EVIDENCE_K, Turn
        from retrieval.tools import search_like

        name = path.name
        chat[-1] = {"role": "assistant", "content": html.escape(attachment_status(name)) + " ▌"}
        yield gr.skip(), chat, turns
        try:
            example = read_attachment(ctx.examples, path, ctx.max_upload_mb, question)
        except AttachmentError as e:
            chat[-1] = {"role": "assistant", "content": html.escape(str(e))}
            yield gr.skip(), chat, turns
            return
        shown = f"{question} [attached: {name}]".strip()  # what later questions can refer to
        if question:
            yield from answer(question, chat, turns, filters, example, shown)
            return
        try:
            # The caller's groups are in `filters`: nothing they may not see can match.
            found = ctx.engine.call(search_like, example, "", EVIDENCE_K, filters)
        except Exception as e:  # noqa: BLE001 - a sentence, never a traceback
            log.exception("searching by %s failed", name)
            chat[-1] = {"role": "assistant", "content": html.escape(
                f"The search by “{name}” did not work: {plain_error(e)}. Please try again; "
                f"{_ASK_ADMIN}")}
            yield gr.skip(), chat, turns
            return
        reply = example_reply(name, example, found)
        chat[-1] = {"role": "assistant", "content": answer_html(reply, narrowed(filters, reply))}
        yield gr.skip(), chat, [*turns, Turn("user", shown),
                                    Turn("assistant", reply.answer, reply.citations)]

    def new_conversation():
        return [], [], ""

    def library_rows(request: gr.Request):
        rows = []
        for r in ctx.recordings(_username(request)):
            status, problem = _status_words(r)
            c = r.counts or {}
            rows.append([r.title, clock(r.duration) if r.duration else "-",
                         _fmt_date(r.recorded_at), status, c.get("transcript", 0),
                         c.get("slides", 0), c.get("frames", 0),
                         ", ".join(r.groups) or "everyone", problem])
        return rows

    def choices(request: gr.Request):
        return [(f"{r.title} ({_status_words(r)[0]})", r.media_id)
                for r in ctx.recordings(_username(request))]

    def refresh(request: gr.Request, recs: list | None = None, tags: list | None = None):
        visible = ctx.searchable(_username(request))
        rec_options, tag_options = recording_choices(visible), tag_choices(visible)
        return (gr.update(value=library_rows(request)),
                gr.update(choices=choices(request), value=None), ctx.ingester.state.version,
                gr.update(choices=rec_options, value=still_offered(recs, rec_options)),
                gr.update(choices=tag_options, value=still_offered(tags, tag_options)),
                gr.update(choices=rec_options))  # the recording page's list

    def progress_html() -> str:
        s = ctx.ingester.state
        recent = "".join(f"<li>{html.escape(m)}</li>" for m in s.messages[-5:][::-1])
        recent = f"<ul class='cc-messages'>{recent}</ul>" if recent else ""
        if not s.running:
            return f"<div id='cc-progress' class='cc-idle'>No files are being added.</div>{recent}"
        of = f" (file {min(s.done + 1, s.total)} of {s.total})" if s.total else ""
        what = f"Adding “{html.escape(s.current)}” — {html.escape(s.stage)}" if s.current \
            else "Working…"
        return (f"<div id='cc-progress' class='cc-busy'>{what}{of}<br>"
                f"<progress max='1' value='{s.fraction:.2f}' style='width:100%'></progress>"
                f"</div>{recent}")

    def tick(seen: int, recs: list | None, tags: list | None, request: gr.Request):
        if ctx.ingester.state.version == seen:
            return progress_html(), gr.skip(), gr.skip(), seen, gr.skip(), gr.skip(), gr.skip()
        return progress_html(), *refresh(request, recs, tags)

    def upload(files: list | None, request: gr.Request):
        if not files:
            gr.Warning("Choose one or more audio or video files first.")
            return progress_html(), None
        user = _username(request)
        groups = ctx.groups(user)
        saved, refused = [], []
        for f in files:
            src = Path(f if isinstance(f, str) else getattr(f, "name", f))
            name = safe_filename(getattr(f, "orig_name", None) or src.name)
            if not name.lower().endswith(MEDIA_SUFFIXES):
                refused.append(f"“{name}” is not an audio or video file, so it was not added.")
                continue
            if src.stat().st_size > ctx.max_upload_mb * MB:  # Gradio checks too; never trust it
                refused.append(too_big_message(name, src.stat().st_size, ctx.max_upload_mb))
                continue
            dst = unique_path(ctx.library_dir, name)
            shutil.copyfile(src, dst)
            saved.append(dst)
        for why in refused:
            gr.Warning(why)
        if saved:
            ctx.ingester.submit("ingest", paths=saved,
                                groups=sorted(groups) if groups else None)
            gr.Info(f"Adding {len(saved)} file(s). You can keep asking questions meanwhile.")
        return progress_html(), None

    def act(kind: str):
        def run(media_id: str | None, request: gr.Request):
            if not media_id:
                gr.Warning("Choose a recording in the list first.")
                return progress_html()
            if media_id not in {r.media_id for r in ctx.recordings(_username(request))}:
                gr.Warning("That recording is no longer in the library.")
                return progress_html()
            ctx.ingester.submit(kind, media_id=media_id)
            gr.Info("Removing the recording…" if kind == "delete" else "Reading it again…")
            return progress_html()
        return run

    # -- the recording page ---------------------------------------------------------------
    def show(request: gr.Request, media_id: str | None, start: float = 0.0,
             choices_too: bool = False) -> tuple:
        """Everything on the recording page for one recording (or the "not available" note).
        Outputs: see `page_outputs`."""
        user = _username(request)
        view, asked = None, media_id
        if media_id:
            try:
                view = ctx.archive.view(media_id, ctx.groups(user))
            except Exception as e:  # noqa: BLE001 - a sentence, never a traceback
                log.exception("opening recording %s failed", media_id)
                gr.Warning(f"The recording could not be opened: {plain_error(e)}. Please try "
                           "again; if it keeps happening, tell your administrator.")
        if media_id and view is None:
            media_id = None
        pick = gr.update(value=media_id)
        if choices_too:
            pick = gr.update(choices=recording_choices(ctx.searchable(user)), value=media_id)
        player = player_page_html(view, start) if asked else (
            "<div id='cc-rec-box' class='cc-empty'>Choose a recording above to see and hear it "
            "with its whole transcript.</div>")
        return (media_id, pick, player, transcript_html(view), *speaker_parts(view), "", "")

    def speaker_parts(view: RecordingView | None, chosen: str | None = None) -> tuple:
        """Speaker list, the speaker picker, the name box and the confirm button."""
        choices = speaker_choices(view)
        labels = [label for _, label in choices]
        chosen = chosen if chosen in labels else None
        return (speakers_html(view),
                gr.update(choices=choices, value=chosen, interactive=bool(choices)),
                *name_controls(view, chosen))

    def name_controls(view: RecordingView | None, label: str | None) -> tuple:
        sp = next((s for s in (view.speakers if view else []) if s.label == label), None)
        suggested = sp is not None and sp.status == "suggested"
        return (gr.update(value=(sp.name or "") if sp else ""),
                gr.update(visible=suggested,
                          value=f"Confirm “{sp.name}”" if suggested else "Confirm"))

    def pick_recording(media_id: str | None, shown: str | None, request: gr.Request):
        if media_id == shown:  # the page set the list itself: that recording is already shown
            return (gr.skip(),) * len(page_outputs)
        return show(request, media_id)

    def open_from_link(request: gr.Request):
        """`/?recording=ID&t=SECONDS` (a citation's link) opens that recording's page."""
        params = getattr(request, "query_params", None) or {}
        wanted = params.get("recording")
        if not wanted:
            return gr.skip(), *show(request, None, choices_too=True)
        out = show(request, wanted, parse_start(params.get("t")), choices_too=True)
        if out[0] is None:
            gr.Warning(NOT_AVAILABLE)
        return gr.Tabs(selected="recording"), *out

    def open_from_library(media_id: str | None, request: gr.Request):
        if not media_id:
            gr.Warning("Choose a recording in the list first.")
            return gr.skip(), *([gr.skip()] * len(page_outputs))
        out = show(request, media_id, choices_too=True)
        if out[0] is None:
            gr.Warning("That recording cannot be opened yet: it is not ready to search. "
                       "Its status in the table says why.")
            return gr.skip(), *([gr.skip()] * len(page_outputs))
        return gr.Tabs(selected="recording"), *out

    def choose_speaker(media_id: str | None, label: str | None, request: gr.Request):
        try:
            view = ctx.archive.view(media_id, ctx.groups(_username(request))) if media_id \
                else None
        except Exception:  # noqa: BLE001 - the name box simply stays empty
            log.exception("reading the speakers of %s failed", media_id)
            view = None
        return name_controls(view, label)

    def rename(media_id: str | None, label: str | None, name: str | None,
               request: gr.Request, confirm: bool = False):
        keep = (gr.skip(),) * 5
        if not media_id or not label:
            gr.Warning("Choose a speaker in the list first.")
            return keep
        groups = ctx.groups(_username(request))
        try:
            view = ctx.archive.view(media_id, groups)
            sp = next((s for s in (view.speakers if view else []) if s.label == label), None)
            if confirm:
                name = sp.name if sp is not None and sp.name else ""
            if not (name or "").strip():
                gr.Warning("Type the speaker's name first.")
                return keep
            shown = ctx.archive.rename(media_id, groups, label, name or "")
            view = ctx.archive.view(media_id, groups)
        except LookupError:
            gr.Warning(NOT_AVAILABLE)
            return keep
        except ValueError as e:  # SpeakerError: a sentence about the name
            gr.Warning(f"That name cannot be used: {plain_error(e)}.")
            return keep
        except Exception as e:  # noqa: BLE001 - a sentence, never a traceback
            log.exception("renaming a speaker failed")
            gr.Warning(f"The name could not be saved: {plain_error(e)}. Please try again; "
                       "if it keeps happening, tell your administrator.")
            return keep
        gr.Info(f"“{shown}” is confirmed." if confirm else
                f"{sp.shown if sp else label} is now called “{shown}”.")
        return (transcript_html(view), *speaker_parts(view, label))

    def confirm(media_id: str | None, label: str | None, request: gr.Request):
        return rename(media_id, label, None, request, confirm=True)

    def search_here(media_id: str | None, query: str | None, request: gr.Request):
        from retrieval.tools import search_all

        query = (query or "").strip()
        if not media_id:
            return "<div class='cc-empty'>Choose a recording first.</div>"
        if not query:
            return "<div class='cc-empty'>Type some words to find in this recording.</div>"
        # Only this recording, and only if the caller may see it (the groups always apply).
        filters = Filters(groups=ctx.groups(_username(request)), recordings=(media_id,))
        try:
            found = ctx.engine.call(search_all, query, 10, filters)
        except Exception as e:  # noqa: BLE001 - a sentence, never a traceback
            log.exception("searching within %s failed", media_id)
            return (f"<div class='cc-empty'>The search did not work: {_e(plain_error(e))}. "
                    "Please try again.</div>")
        return found_html([m for m in found if m.media_id == media_id], query)

    with gr.Blocks(title="clipcite", analytics_enabled=False) as demo:
        turns = gr.State([])
        seen = gr.State(-1)
        gr.Markdown("## clipcite — ask your recordings")
        with gr.Tabs() as tabs:
            with gr.Tab("Ask", id="ask"):
                with gr.Row():
                    with gr.Column(scale=3):
                        chatbot = gr.Chatbot(
                            label="Conversation", height=480, elem_id="cc-chat",
                            feedback_options=None, sanitize_html=True,
                            placeholder="Ask a question about your meetings and training "
                                        "videos. Every answer says where it comes from: click "
                                        "a citation to play that moment.")
                        with gr.Row():
                            # The paperclip attaches a voice clip or a screenshot to search by
                            # (no file types given: a wrong file gets our sentence, not
                            # Gradio's list of MIME types).
                            box = gr.MultimodalTextbox(
                                placeholder="Type a question and press Enter. To find where "
                                            "something was said or shown, attach a voice clip "
                                            "or a screenshot with the paperclip.",
                                show_label=False, scale=5, elem_id="cc-question",
                                autofocus=True, sources=["upload"], file_count="single",
                                submit_btn=False,
                                # Pasted long text stays text (Gradio would attach it as a
                                # .txt file, which is no example to search by).
                                max_plain_text_length=1_000_000)
                            send = gr.Button("Ask", variant="primary", scale=1,
                                             elem_id="cc-ask")
                        gr.HTML("<div id='cc-attach-note-text' role='status'></div>",
                                elem_id="cc-attach-note")
                        with gr.Accordion("Limit the search to some recordings, tags or "
                                          "dates", open=False, elem_id="cc-filters"):
                            with gr.Row():
                                only_recs = gr.Dropdown(
                                    label="Only these recordings", choices=[], multiselect=True,
                                    elem_id="cc-only-recordings", scale=3,
                                    info="Leave empty to search everything you can see.")
                                only_tags = gr.Dropdown(
                                    label="Only recordings tagged", choices=[], multiselect=True,
                                    elem_id="cc-only-tags", scale=2)
                            with gr.Row():
                                date_from = gr.DateTime(label="Recorded from (year-month-day)",
                                                        include_time=False, type="string",
                                                        elem_id="cc-from")
                                date_to = gr.DateTime(label="Recorded until (year-month-day)",
                                                      include_time=False, type="string",
                                                      elem_id="cc-until")
                        gr.Examples(EXAMPLES, inputs=[box], label="Try asking")
                        new = gr.Button("New conversation", elem_id="cc-new")
                    with gr.Column(scale=2):
                        gr.HTML(PLAYER_HTML, elem_id="cc-player-panel")
            with gr.Tab("Recording", id="recording"):
                current = gr.State(None)  # the media id shown: every action names it
                rec_pick = gr.Dropdown(label="Recording", choices=[], elem_id="cc-rec-pick",
                                       info="Only recordings you may see are listed.")
                with gr.Row():
                    with gr.Column(scale=3):
                        rec_player = gr.HTML(elem_id="cc-rec-player-panel", js_on_load=None)
                        with gr.Group():
                            rec_query = gr.Textbox(
                                label="Find in this recording", elem_id="cc-rec-query",
                                placeholder="Words or a question, then Enter")
                            rec_search = gr.Button("Find", elem_id="cc-rec-search")
                        rec_found = gr.HTML(elem_id="cc-rec-found-panel", js_on_load=None)
                        gr.Markdown("**Speakers** — give a speaker their name; the transcript, "
                                    "captions, downloads and searches use it at once.")
                        rec_speakers = gr.HTML(elem_id="cc-rec-speakers-panel", js_on_load=None)
                        with gr.Row():
                            rec_speaker = gr.Dropdown(label="Speaker", choices=[],
                                                      elem_id="cc-rec-speaker", scale=2)
                            rec_name = gr.Textbox(label="Their name", elem_id="cc-rec-name",
                                                  scale=2, placeholder="For example: Maria Lopez")
                        with gr.Row():
                            rec_rename = gr.Button("Save name", variant="primary",
                                                   elem_id="cc-rec-rename")
                            rec_confirm = gr.Button("Confirm", visible=False,
                                                    elem_id="cc-rec-confirm")
                    with gr.Column(scale=2):
                        rec_lines = gr.HTML(elem_id="cc-rec-lines-panel", js_on_load=None)
            with gr.Tab("Library", id="library"):
                table = gr.Dataframe(headers=LIBRARY_COLUMNS, value=[], interactive=False,
                                     wrap=True, elem_id="cc-library", label="Recordings")
                progress = gr.HTML(progress_html(), elem_id="cc-progress-box")
                with gr.Row():
                    with gr.Column():
                        files = gr.File(label=f"Add recordings (audio or video, up to "
                                              f"{ctx.max_upload_mb:g} MB each)",
                                        file_count="multiple", elem_id="cc-upload")
                        gr.HTML("<div id='cc-upload-note-text' role='status'></div>",
                                elem_id="cc-upload-note")
                        add = gr.Button("Add to library", variant="primary", elem_id="cc-add")
                    with gr.Column():
                        picker = gr.Dropdown(label="Recording", choices=[], elem_id="cc-pick")
                        with gr.Row():
                            open_rec = gr.Button("Open recording", elem_id="cc-open")
                            again = gr.Button("Re-ingest", elem_id="cc-reingest")
                            delete = gr.Button("Delete", variant="stop", elem_id="cc-delete")
                timer = gr.Timer(1.5)

        ask_args = dict(fn=respond, inputs=[box, chatbot, turns, only_recs, only_tags, date_from,
                                            date_to],
                        outputs=[box, chatbot, turns], concurrency_limit=None,
                        show_progress="hidden", js=SEND_TYPED_DATES)
        box.submit(**ask_args)
        send.click(**ask_args)
        new.click(new_conversation, outputs=[chatbot, turns, box], queue=False)
        listings = [table, picker, seen, only_recs, only_tags, rec_pick]
        demo.load(refresh, outputs=listings, queue=False)
        timer.tick(tick, inputs=[seen, only_recs, only_tags], outputs=[progress, *listings],
                   concurrency_limit=None, show_progress="hidden")
        add.click(upload, inputs=[files], outputs=[progress, files], concurrency_limit=None)
        again.click(act("reingest"), inputs=[picker], outputs=[progress],
                    concurrency_limit=None)
        page_outputs = [current, rec_pick, rec_player, rec_lines, rec_speakers, rec_speaker,
                        rec_name, rec_confirm, rec_found, rec_query]
        rec_pick.input(pick_recording, inputs=[rec_pick, current], outputs=page_outputs,
                       concurrency_limit=None)
        demo.load(open_from_link, outputs=[tabs, *page_outputs])
        open_rec.click(open_from_library, inputs=[picker], outputs=[tabs, *page_outputs],
                       concurrency_limit=None)
        rec_speaker.input(choose_speaker, inputs=[current, rec_speaker],
                          outputs=[rec_name, rec_confirm], concurrency_limit=None)
        named = [rec_lines, rec_speakers, rec_speaker, rec_name, rec_confirm]
        for trigger, fn, args in ((rec_rename.click, rename, [current, rec_speaker, rec_name]),
                                  (rec_name.submit, rename, [current, rec_speaker, rec_name]),
                                  (rec_confirm.click, confirm, [current, rec_speaker])):
            trigger(fn, inputs=args, outputs=named, concurrency_limit=None).then(
                None, js="() => window.ccReloadCaptions && window.ccReloadCaptions()")
        for trigger in (rec_query.submit, rec_search.click):
            trigger(search_here, inputs=[current, rec_query], outputs=[rec_found],
                    concurrency_limit=None)
        delete.click(act("delete"), inputs=[picker], outputs=[progress], concurrency_limit=None,
                     js="(id) => { if (!id) return id; "
                        "return confirm('Remove this recording from the library?') ? id : null; }")
    demo.clipcite = ctx  # type: ignore[attr-defined]
    return demo


def _gradio_user(gradio_app: Any, request: Request) -> str | None:
    """The Gradio sign-in of this request (the same cookies Gradio's own routes read)."""
    cookie_id = gradio_app.cookie_id
    token = (request.cookies.get(f"access-token-{cookie_id}")
             or request.cookies.get(f"access-token-unsecure-{cookie_id}"))
    return gradio_app.tokens.get(token) if token else None


def create_app(settings: Settings, users: Users | None = None, *,
               library_dir: Path | None = None) -> FastAPI:
    """The whole server: Gradio at /, the media and thumbnail routes beside it."""
    demo = build_app(settings, users, library_dir=library_dir)
    ctx: WebContext = demo.clipcite  # type: ignore[attr-defined]
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    holder: dict[str, Any] = {}

    def groups_of(request: Request) -> frozenset[str] | None:
        if users is None:
            return None
        user = _gradio_user(holder["gradio"], request)
        if user is None:
            raise PermissionError("not signed in")
        return users.groups_for(user)

    app.include_router(media_router(ctx.reader, groups_of, ctx.archive.file))
    app = gr.mount_gradio_app(
        app, demo, path="", auth=users.check if users else None,
        auth_message="Sign in with the name and password your administrator gave you.",
        max_file_size=int(ctx.max_upload_mb * MB), ssr_mode=False, footer_links=[],
        head=HEAD + upload_limit_js(ctx.max_upload_mb), css=CSS, show_error=False, allowed_paths=[],
    )
    from starlette.routing import Mount

    for route in app.routes:
        if isinstance(route, Mount) and hasattr(route.app, "tokens"):
            holder["gradio"] = route.app
    # Gradio accepts a file named in a request (an upload, an attachment) only if it was
    # uploaded, but checks that only once launch() has run: mounted, a hand-made request could
    # name any file on this server and have it copied, ingested or read out.
    demo.has_launched = True
    app.state.clipcite = ctx
    return app


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host: str, users_file: str | Path | None, insecure: bool) -> None:
    if not is_loopback(host) and users_file is None and not insecure:
        raise SetupError(
            f"refusing to serve on {host} without sign-in: anyone on the network could read "
            "every recording. Give a users file (--users FILE), serve on 127.0.0.1, or pass "
            "--insecure if this network is trusted.")


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 7860,
          users_file: str | Path | None = None, insecure: bool = False,
          library_dir: Path | None = None) -> None:
    """Run the web app until interrupted."""
    import uvicorn

    check_host(host, users_file, insecure)
    users = load_users(Path(users_file)) if users_file else None
    app = create_app(settings, users, library_dir=library_dir)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"clipcite is running: open http://{shown}:{port}/ in a browser "
          f"(index {settings.index_dir}). Ctrl-C stops it.", flush=True)
    if users is None:
        print("No users file: everyone who can open the page sees every recording.", flush=True)
    elif not is_loopback(host):
        print("Passwords travel unencrypted over plain HTTP: put HTTPS in front of this server "
              "on a shared network.", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
