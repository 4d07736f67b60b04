"""The web app's background services, each owning one thread (SQLite connections and the
models stay in the thread that made them):

- `Engine`: the models and the searcher, loaded once; answers run here one at a time.
- `ExampleReader`: reads clips and screenshots attached to chat messages.
- `Archive`: the recording page's reads and speaker renames, with its own index handle.
- `Ingester`: adds, re-reads and deletes recordings in the background.

Every call that reads recordings names the caller's groups.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipcite.retrieval.filters import Filters
from clipcite.ui.searching import open_index, open_searcher
from clipcite.ui.settings import Settings
from clipcite.ui.web.errors import plain_error

log = logging.getLogger("clipcite.web")


# -- the engine: models loaded once, answers run in one thread ---------------------------------
_DONE = object()


class Engine:
    """The models, loaded once, and `settings.web_workers` threads that answer questions. Each
    thread searches with its own index handle (SQLite connections stay in their thread) and
    shares the encoders and the chat model (the local model takes one answer at a time)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool = ThreadPoolExecutor(max(1, settings.web_workers),
                                        thread_name_prefix="clipcite-engine")
        self.searcher: Any = None
        self.chat: Any = None
        self._local = threading.local()
        self._stops: dict[str, set[threading.Event]] = {}  # per browser session
        self._lock = threading.Lock()
        self._loaded: Future = self._pool.submit(self._load)

    def _load(self) -> None:
        from clipcite.assistant.agent import Assistant
        from clipcite.assistant.llm import load_chat_model

        self.searcher = self._local.searcher = open_searcher(self.settings)
        self.chat = load_chat_model(self.settings.llm_config())
        Assistant(self.searcher, self.chat).warm_up()  # the first question reads less prompt

    def _searcher(self) -> Any:
        """This thread's searcher: the shared encoders over this thread's index handle."""
        searcher = getattr(self._local, "searcher", None)
        if searcher is None:
            index = open_index(self.settings)
            searcher = self._local.searcher = dataclasses.replace(self.searcher, index=index,
                                                                  _vectors={})
        return searcher

    def wait_ready(self, timeout: float | None = None) -> None:
        self._loaded.result(timeout)

    def turn(self, message: str, history: list, filters: Filters, example: Any = None,
             session: str | None = None) -> Iterator[Any]:
        """The assistant's events for one turn (searching by `example`, an attached clip or
        screenshot, when given); an exception arrives as an exception item. `cancel(session)`
        (the page was closed) or closing this iterator stops the answer at its next event, so
        the model stops writing for nobody and the next person's question starts."""
        from clipcite.assistant.agent import Assistant

        out: queue.Queue = queue.Queue()
        stop = threading.Event()
        if session:
            with self._lock:
                self._stops.setdefault(session, set()).add(stop)

        def run() -> None:
            events = None
            try:
                self._loaded.result()
                if stop.is_set():
                    return
                assistant = Assistant(self._searcher(), self.chat, filters=filters,
                                      example=example)
                events = assistant.turn(message, history)
                for event in events:
                    if stop.is_set():
                        log.info("answer to %r stopped: its page was closed", message)
                        break
                    out.put(event)
            except BaseException as e:  # noqa: BLE001 - reported to the page, logged here
                log.exception("answering %r failed", message)
                out.put(e)
            finally:
                if events is not None:
                    events.close()  # ends the model's token stream
                out.put(_DONE)

        self._pool.submit(run)
        try:
            while (item := out.get()) is not _DONE:
                yield item
        finally:
            stop.set()
            if session:
                with self._lock:
                    self._stops.get(session, set()).discard(stop)

    def prepare_summaries(self, media_ids: list[str]) -> Future:
        """Summarises these recordings into the summary cache on an answer thread, in the
        background (the local model is shared: questions and summaries take turns)."""
        def run() -> int:
            from clipcite.assistant.agent import Assistant
            from clipcite.assistant.summary import prepare

            self._loaded.result()
            assistant, made = Assistant(self._searcher(), self.chat), 0
            for media_id in media_ids:
                try:
                    made += prepare(assistant, media_id)
                except Exception:  # noqa: BLE001 - a missing summary is made when asked for
                    log.exception("preparing the summary of %s failed", media_id)
            return made

        return self._pool.submit(run)

    def cancel(self, session: str) -> None:
        """Stops every answer still being written for a closed page."""
        with self._lock:
            stops = self._stops.pop(session, set())
        for stop in stops:
            stop.set()

    def call(self, fn: Any, *args: Any, timeout: float = 120) -> Any:
        """fn(searcher, *args) in the engine thread, which owns the searcher and its encoder."""
        def run() -> Any:
            self._loaded.result()
            return fn(self._searcher(), *args)

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
            from clipcite.ingestion.example import read_example
            from clipcite.ingestion.extract import Models

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
                self._index = open_index(self.settings)
            return fn(self._index, *args)

        return self._pool.submit(run).result(120)

    @staticmethod
    def _find(index: Any, media_id: str, groups: frozenset[str] | None) -> Any:
        from clipcite.retrieval.filters import visible_recordings

        return next((r for r in visible_recordings(index, Filters(groups=groups))
                     if r.media_id == media_id), None)

    def view(self, media_id: str, groups: frozenset[str] | None) -> RecordingView | None:
        """Everything the recording page shows, or None."""
        from clipcite.retrieval import tools

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
        from clipcite.retrieval import tools

        def write(index: Any) -> str:
            rec = self._find(index, media_id, groups)
            if rec is None:
                raise LookupError(media_id)
            return tools.rename_speaker(index, rec, speaker, name).shown

        return self._run(write)

    def file(self, media_id: str, groups: frozenset[str] | None,
             fmt: str) -> tuple[str, str] | None:
        """(title, text) of a transcript download (srt, vtt, txt or rttm), or None."""
        from clipcite.retrieval import tools
        from clipcite.ui.export import render

        def read(index: Any) -> tuple[str, str] | None:
            rec = self._find(index, media_id, groups)
            if rec is None:
                return None
            return rec.title, render(fmt, tools.transcript(index, rec),
                                     tools.speaker_turns(index, rec), rec.path)

        return self._run(read)


# -- ingestion in the background ---------------------------------------------------------------
MAX_MESSAGES = 500  # Library messages kept, all users together; each user sees their own


@dataclass(frozen=True)
class Message:
    text: str
    user: str | None  # who started the job; None when the app has no users file


@dataclass(frozen=True)
class Progress:
    """What one person sees of the ingester: their own file's name, never someone else's."""
    running: bool
    current: str
    stage: str
    fraction: float
    done: int
    total: int
    messages: list[str]  # this person's, newest first


@dataclass
class JobState:
    """The ingester's state, written by its thread and read by every page: behind a lock."""
    running: bool = False
    current: str = ""
    stage: str = ""
    fraction: float = 0.0
    done: int = 0
    total: int = 0
    user: str | None = None  # whose job runs now
    version: int = 0  # bumps whenever the catalog changed
    messages: deque[Message] = field(default_factory=lambda: deque(maxlen=MAX_MESSAGES))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def say(self, text: str, user: str | None) -> None:
        with self.lock:
            self.messages.append(Message(text, user))

    def update(self, **changes: Any) -> None:
        with self.lock:
            for key, value in changes.items():
                setattr(self, key, value)

    def seen_by(self, user: str | None, everyone: bool = False, limit: int = 5) -> Progress:
        """The progress and messages `user` may see (`everyone`: an app without sign-in)."""
        with self.lock:
            mine = [m.text for m in reversed(self.messages) if everyone or m.user == user]
            own = everyone or self.user == user
            return Progress(self.running, self.current if own else "", self.stage if own else "",
                            self.fraction, self.done if own else 0, self.total if own else 0,
                            mine[:limit])


class _WebReporter:
    def __init__(self, state: JobState, user: str | None) -> None:
        self.state, self.user = state, user
        self.indexed: list[str] = []  # media ids added or updated by this job

    def batch_started(self, files) -> None:
        with self.state.lock:
            self.state.total += len(files)

    def file_started(self, path: Path) -> None:
        self.state.update(current=path.name, stage="starting", fraction=0.0)

    def file_progress(self, path: Path, stage: str, fraction: float) -> None:
        self.state.update(current=path.name, stage=stage, fraction=max(0.0, min(1.0, fraction)))

    def file_finished(self, outcome) -> None:
        with self.state.lock:
            self.state.done += 1
            self.state.version += 1
        name = Path(outcome.path).name
        if outcome.status == "indexed":
            self.indexed.append(outcome.media_id)
            n = sum(outcome.counts.values())
            self.state.say(f"“{name}” is ready to search ({n} passages).", self.user)
        elif outcome.status == "unchanged":
            note = f" It failed before: {outcome.reason}" if outcome.reason else ""
            self.state.say(f"“{name}” was already up to date.{note}", self.user)
        elif outcome.status == "failed":
            self.state.say(f"“{name}” could not be added: {outcome.reason}. Check that it is a "
                           "complete audio or video file.", self.user)


class Ingester:
    """One background thread that adds, re-reads and deletes recordings, one job at a time.
    Every job names the user who asked for it: its messages are theirs."""

    def __init__(self, settings: Settings, library_dir: Path,
                 on_indexed: Callable[[list[str]], Any] | None = None) -> None:
        self.settings, self.library_dir, self.on_indexed = settings, library_dir, on_indexed
        self.state = JobState()
        self._jobs: queue.Queue = queue.Queue()
        self._index: Any = None
        threading.Thread(target=self._loop, name="clipcite-ingest", daemon=True).start()

    def submit(self, kind: str, user: str | None, **args: Any) -> None:
        self.state.update(running=True)
        self._jobs.put((kind, user, args))

    def wait_idle(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while (self.state.running or not self._jobs.empty()) and time.monotonic() < deadline:
            time.sleep(0.2)

    def _loop(self) -> None:
        while True:
            kind, user, args = self._jobs.get()
            self.state.update(running=True, user=user)
            try:
                if self._index is None:
                    self._index = open_index(self.settings)
                getattr(self, f"_{kind}")(user, **args)
            except BaseException as e:  # noqa: BLE001 - the thread must live on
                log.exception("library job %s failed", kind)
                self.state.say(f"Something went wrong: {plain_error(e)}. Please try again; if it "
                               "keeps happening, tell your administrator.", user)
            finally:
                with self.state.lock:
                    self.state.version += 1
                    if self._jobs.empty():
                        self.state.running, self.state.user = False, None
                        self.state.current, self.state.stage = "", ""
                        self.state.done = self.state.total = 0

    def _ingest(self, user: str | None, paths: list[Path], groups: list[str] | None) -> None:
        from clipcite.ingestion.batch import BatchOptions, run_batch

        options = BatchOptions(extract=self.settings.extract_options(), groups=groups,
                               workers=1, file_timeout=self.settings.file_timeout)
        reporter = _WebReporter(self.state, user)
        run_batch(paths, self._index, options, reporter)
        if reporter.indexed and self.on_indexed is not None:
            self.on_indexed(reporter.indexed)

    def _reingest(self, user: str | None, media_id: str) -> None:
        rec = self._index.catalog.get(media_id)
        if rec is None:
            return
        self._index.catalog.forget_content(media_id)
        # Its own groups again: a re-read never changes who may see a recording.
        self._ingest(user, [Path(rec.path)], list(rec.groups) or None)

    def _delete(self, user: str | None, media_id: str) -> None:
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
            log.warning("could not delete the uploaded file %s", path, exc_info=True)
        self.state.say(f"“{rec.title}” was removed from the library"
                       + (" and its file deleted." if removed_file else "."), user)
