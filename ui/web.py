"""`clipcite serve`: the web app for people who do not use a terminal.

Two pages. **Ask**: a chat whose answers stream in, each citation a chip ("Q3 planning meeting ·
00:24") that plays that moment in the player beside the chat, with a thumbnail of the screen
beside the cited text when the moment was found on a slide or frame; "Limit the search" narrows
a question to chosen recordings, tags or recording dates. **Library**: what is indexed, uploads
(ingested in the background while chat keeps working; `upload_limit_mb` caps their size),
re-ingest and delete. Every failure reaches the page as a sentence, never a traceback.

Threads: the models load once per process into one *engine* thread that owns the searcher
(SQLite connections stay in the thread that made them), and answers run there one at a time;
ingestion runs in its own thread with its own index handle; the media route and the library
table read the catalog through per-thread connections. Access groups of the signed-in user go
into Filters(groups=...) for every answer, listing, filter choice, media and thumbnail request.
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
        from assistant.llm import load_chat_model
        from ui.cli import open_searcher

        self.searcher = open_searcher(self.settings)
        self.chat = load_chat_model(self.settings.llm_config())

    def wait_ready(self, timeout: float | None = None) -> None:
        self._loaded.result(timeout)

    def turn(self, message: str, history: list, filters: Filters) -> Iterator[Any]:
        """The assistant's events for one turn; an exception arrives as an exception item."""
        from assistant.agent import Assistant

        out: queue.Queue = queue.Queue()

        def run() -> None:
            try:
                self._loaded.result()
                assistant = Assistant(self.searcher, self.chat, filters=filters)
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

                    self._index = Index(self.settings.index_dir)
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


def too_big_message(name: str, size: int, limit_mb: float) -> str:
    return (f"“{name}” is {size / MB:.1f} MB, more than the {limit_mb:g} MB allowed, so it was "
            f"not added. {TOO_BIG_ADVICE}")


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


PLAYER_HTML = """
<div id="cc-player-box">
  <div id="cc-player-title">Click a citation under an answer to play that moment here.</div>
  <video id="cc-player" controls preload="metadata" playsinline></video>
  <div id="cc-player-cited">
    <img id="cc-player-thumb" alt="" style="display:none">
    <div id="cc-player-text"></div>
  </div>
</div>
"""

HEAD = """
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
    v.load();
  });
})();
</script>
"""

# Gradio refuses a file over max_file_size in the browser with a short notice that names only
# the limit; this says which file, how big, and what to do, under the upload box.
UPLOAD_LIMIT_JS = """
<script>
(function () {
  var LIMIT_MB = __LIMIT_MB__, MB = 1048576, ADVICE = __ADVICE__;
  function check(files) {
    var note = document.getElementById('cc-upload-note-text');
    if (!note) return;
    note.textContent = Array.prototype.filter.call(files || [], function (f) {
      return f.size > LIMIT_MB * MB;
    }).map(function (f) {
      return '“' + f.name + '” is ' + (f.size / MB).toFixed(1) + ' MB, more than the ' +
        LIMIT_MB + ' MB allowed, so it was not added. ' + ADVICE;
    }).join(' ');
  }
  document.addEventListener('change', function (ev) {
    var t = ev.target;
    if (t.matches && t.matches('#cc-upload input[type=file]')) check(t.files);
  }, true);
  document.addEventListener('drop', function (ev) {
    var t = ev.target;
    if (t.closest && t.closest('#cc-upload') && ev.dataTransfer) check(ev.dataTransfer.files);
  }, true);
})();
</script>
"""


def upload_limit_js(limit_mb: float) -> str:
    return (UPLOAD_LIMIT_JS.replace("__LIMIT_MB__", f"{limit_mb:g}")
            .replace("__ADVICE__", json.dumps(TOO_BIG_ADVICE)))


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
#cc-player.cc-audio { height:54px; background:transparent; }
#cc-player-title { font-weight:600; margin-bottom:6px; }
#cc-player-cited { display:flex; gap:10px; align-items:flex-start; margin-top:8px; }
#cc-player-thumb { width:160px; flex:none; border:1px solid #ccc; border-radius:4px; }
#cc-player-text { font-style:italic; color:#444; }
#cc-upload-note-text { color:#a12d0c; }
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

    def respond(message: str, chat: list, turns: list, recordings: list | None,
                tags: list | None, date_from: str | None, date_to: str | None,
                request: gr.Request):
        from assistant.agent import Turn

        message = (message or "").strip()
        if not message:
            yield gr.skip(), chat, turns
            return
        user = _username(request)
        chat = [*chat, {"role": "user", "content": html.escape(message)},
                {"role": "assistant", "content": "…"}]
        yield "", chat, turns
        try:
            filters = chat_filters(ctx.groups(user), ctx.searchable(user), recordings, tags,
                                   date_from, date_to)
        except FilterError as e:
            chat[-1] = {"role": "assistant", "content": html.escape(str(e))}
            yield gr.skip(), chat, turns
            return
        text, reply = "", None
        try:
            for event in ctx.engine.turn(message, list(turns), filters):
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
            note = ("Only the recordings chosen under “Limit the search” were searched."
                    if is_narrowed(filters) and not reply.citations else "")
            chat[-1] = {"role": "assistant", "content": answer_html(reply, note)}
            turns = [*turns, Turn("user", message), Turn("assistant", reply.answer)]
        yield gr.skip(), chat, turns

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
                gr.update(choices=tag_options, value=still_offered(tags, tag_options)))

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
            return progress_html(), gr.skip(), gr.skip(), seen, gr.skip(), gr.skip()
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

    with gr.Blocks(title="clipcite", analytics_enabled=False) as demo:
        turns = gr.State([])
        seen = gr.State(-1)
        gr.Markdown("## clipcite — ask your recordings")
        with gr.Tabs():
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
                            box = gr.Textbox(placeholder="Type a question and press Enter",
                                             show_label=False, scale=5, elem_id="cc-question",
                                             autofocus=True)
                            send = gr.Button("Ask", variant="primary", scale=1,
                                             elem_id="cc-ask")
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
        listings = [table, picker, seen, only_recs, only_tags]
        demo.load(refresh, outputs=listings, queue=False)
        timer.tick(tick, inputs=[seen, only_recs, only_tags], outputs=[progress, *listings],
                   concurrency_limit=None, show_progress="hidden")
        add.click(upload, inputs=[files], outputs=[progress, files], concurrency_limit=None)
        again.click(act("reingest"), inputs=[picker], outputs=[progress],
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

    app.include_router(media_router(ctx.reader, groups_of))
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
