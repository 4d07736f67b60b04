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

import html
import ipaddress
import json
import logging
import os
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import gradio as gr  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402

from assistant.evidence import clock  # noqa: E402
from ingestion.transcripts import TRANSCRIPT_EXTENSIONS  # noqa: E402
from retrieval.filters import Filters  # noqa: E402
from ui.media_server import CatalogReader, media_router  # noqa: E402
from ui.settings import Settings  # noqa: E402
from ui.users import VIEWER, Users, load_users  # noqa: E402
from ui.web.attachments import (  # noqa: E402
    ATTACH_TOO_BIG_ADVICE, MB, MEDIA_SUFFIXES, TOO_BIG_ADVICE, AttachmentError,
    attachment_status, discard_upload, example_reply, read_attachment, safe_filename,
    split_message, too_big_message, unique_path, user_bubble)
from ui.web.errors import ASK_ADMIN, SetupError, friendly_error, plain_error  # noqa: E402
from ui.web.guard import Guard  # noqa: E402
from ui.web.filters import (  # noqa: E402
    FilterError, chat_filters, narrowed, recording_choices, still_offered, tag_choices)
from ui.web.render import (  # noqa: E402
    BEST_FIRST, IN_TIME_ORDER, LIBRARY_COLUMNS, LIBRARY_WIDTHS, NO_CHANGE_RIGHT, contents_words, NO_UPLOAD_RIGHT, NOT_AVAILABLE, answer_html, fmt_date,
    progress_box, found_html, parse_start, player_page_html,
    speaker_choices, speakers_html, status_words, transcript_html)
from ui.web.services import Archive, Engine, ExampleReader, Ingester, RecordingView  # noqa: E402

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


def _static(name: str) -> str:
    return resources.files("ui.web").joinpath("static", name).read_text(encoding="utf-8")


PLAYER_HTML = _static("player.html")
CSS = _static("clipcite.css")


def head_html(limit_mb: float) -> str:
    """Scripts for every page: the player and recording page (clipcite.js) and the notes about
    files over the upload limit (upload_limit.js), with that limit and its advice."""
    config = json.dumps({"limitMb": limit_mb, "advice": TOO_BIG_ADVICE,
                         "attachAdvice": ATTACH_TOO_BIG_ADVICE})
    config = config.replace("<", "\\u003c")  # never a closing </script> inside the script
    return (f"<script>window.ccUploadConfig = {config};</script>\n"
            f"<script>\n{_static('clipcite.js')}</script>\n"
            f"<script>\n{_static('upload_limit.js')}</script>\n")


# The date picker keeps a mistyped date to itself, so the question would quietly search every
# date; sending what is typed lets the answer say what is wrong with it.
SEND_TYPED_DATES = """(...args) => {
  const typed = (id, value) => {
    const box = document.querySelector('#' + id + ' input');
    return box ? (box.value || null) : value;  // not on the page: the value Gradio holds
  };
  return [...args.slice(0, 5), typed('cc-from', args[5]), typed('cc-until', args[6])];
}"""


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
                yield from by_example(files[0], text, chat, turns, filters, request)
            else:
                yield from answer(text, chat, turns, filters, request)
        finally:
            for f in files:  # the attachment is read once and never kept
                discard_upload(f)

    def answer(message: str, chat: list, turns: list, filters: Filters, request: Any,
               example: Any = None, shown: str | None = None):
        """The assistant's streamed, cited answer (searching by `example` when one is given);
        `shown` is the message as the conversation history keeps it."""
        from assistant.agent import Turn

        text, reply = "", None
        try:
            for event in ctx.engine.turn(message, list(turns), filters, example,
                                         getattr(request, "session_hash", None)):
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

    def by_example(path: Path, question: str, chat: list, turns: list, filters: Filters,
                   request: Any):
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
            yield from answer(question, chat, turns, filters, request, example, shown)
            return
        try:
            # The caller's groups are in `filters`: nothing they may not see can match.
            found = ctx.engine.call(search_like, example, "", EVIDENCE_K, filters)
        except Exception as e:  # noqa: BLE001 - a sentence, never a traceback
            log.exception("searching by %s failed", name)
            chat[-1] = {"role": "assistant", "content": html.escape(
                f"The search by “{name}” did not work: {plain_error(e)}. Please try again; "
                f"{ASK_ADMIN}")}
            yield gr.skip(), chat, turns
            return
        reply = example_reply(name, example, found)
        chat[-1] = {"role": "assistant", "content": answer_html(reply, narrowed(filters, reply))}
        yield gr.skip(), chat, [*turns, Turn("user", shown),
                                    Turn("assistant", reply.answer, reply.citations)]

    def suggest(request: gr.Request):
        questions = example_questions(ctx.searchable(_username(request)))
        return gr.Dataset(samples=[[q] for q in questions])

    def closed(request: gr.Request):
        """The tab was closed or reloaded: its answer stops (the engine serves others)."""
        ctx.engine.cancel(request.session_hash)

    def new_conversation():
        return [], [], ""

    def library_rows(request: gr.Request):
        rows = []
        for r in ctx.recordings(_username(request)):
            status, problem = status_words(r)
            rows.append([r.title, clock(r.duration) if r.duration else "-",
                         fmt_date(r.recorded_at), status,
                         contents_words(r.counts or {}, bool(settings.clip_weights)),
                         ", ".join(r.groups) or "everyone", problem])
        return rows

    def choices(request: gr.Request):
        return [(f"{r.title} ({status_words(r)[0]})", r.media_id)
                for r in ctx.recordings(_username(request))]

    def refresh(request: gr.Request, recs: list | None = None, tags: list | None = None):
        visible = ctx.searchable(_username(request))
        rec_options, tag_options = recording_choices(visible), tag_choices(visible)
        return (gr.update(value=library_rows(request)),
                gr.update(choices=choices(request), value=None), ctx.ingester.state.version,
                gr.update(choices=rec_options, value=still_offered(recs, rec_options)),
                gr.update(choices=tag_options, value=still_offered(tags, tag_options)),
                gr.update(choices=rec_options))  # the recording page's list

    def rights(request: gr.Request):
        """Only what this person may do is offered (every action checks again)."""
        user = _username(request)
        editor = ctx.users is None or (ctx.users.get(user) is not None and
                                       ctx.users.get(user).role != VIEWER)
        upload_ok = ctx.may_upload(user)
        note = "" if editor and upload_ok else (
            NO_UPLOAD_RIGHT if not editor else
            "Your uploads would be open to everyone, so adding recordings is for your "
            "administrator: ask them to give your account a group.")
        return (gr.update(value=note, visible=bool(note)), gr.update(visible=upload_ok),
                gr.update(visible=editor), gr.update(visible=editor))

    def progress_html(request: gr.Request) -> str:
        return progress_box(ctx.progress(_username(request)))

    def tick(seen: int, recs: list | None, tags: list | None, request: gr.Request):
        if ctx.ingester.state.version == seen:
            return (progress_html(request), gr.skip(), gr.skip(), seen, gr.skip(), gr.skip(),
                    gr.skip())
        return progress_html(request), *refresh(request, recs, tags)

    def upload(files: list | None, request: gr.Request):
        for ok, sentence in ctx.add_uploads(_username(request), files or []):
            (gr.Info if ok else gr.Warning)(sentence)
        return progress_html(request), None

    def act(kind: str):
        def run(media_id: str | None, request: gr.Request):
            if not media_id:
                gr.Warning("Choose a recording in the list first.")
            else:
                ok, sentence = ctx.change(_username(request), kind, media_id)
                (gr.Info if ok else gr.Warning)(sentence)
            return progress_html(request)
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
        user = _username(request)
        groups = ctx.groups(user)
        try:
            view = ctx.archive.view(media_id, groups)
            if view is None:
                raise LookupError(media_id)
            if not ctx.may_change(user, view.rec):
                log.warning("renaming refused: %r may not change %s", user, media_id)
                gr.Warning(NO_CHANGE_RIGHT)
                return keep
            sp = next((s for s in view.speakers if s.label == label), None)
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

    def search_here(media_id: str | None, query: str | None, order: str | None,
                    request: gr.Request):
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
            return (f"<div class='cc-empty'>The search did not work: {html.escape(plain_error(e))}. "
                    "Please try again.</div>")
        return found_html([m for m in found if m.media_id == media_id], query,
                          order or BEST_FIRST)

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
                        examples = gr.Dataset(components=[gr.Textbox(visible=False)],
                                              samples=[[LISTING_EXAMPLE]], label="Try asking",
                                              elem_id="cc-examples")
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
                            rec_order = gr.Radio([BEST_FIRST, IN_TIME_ORDER], value=BEST_FIRST,
                                                 show_label=False, elem_id="cc-rec-order")
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
                                     wrap=True, elem_id="cc-library", label="Recordings",
                                     column_widths=LIBRARY_WIDTHS)
                progress = gr.HTML(progress_box(None), elem_id="cc-progress-box")
                rights_note = gr.Markdown(visible=False, elem_id="cc-rights")
                with gr.Row():
                    with gr.Column(visible=False) as adding:
                        files = gr.File(label=f"Add recordings (audio, video, or a .vtt or .srt "
                                              f"transcript; up to {ctx.max_upload_mb:g} MB each)",
                                        file_count="multiple", elem_id="cc-upload")
                        gr.HTML("<div id='cc-upload-note-text' role='status'></div>",
                                elem_id="cc-upload-note")
                        add = gr.Button("Add to library", variant="primary", elem_id="cc-add")
                    with gr.Column():
                        picker = gr.Dropdown(label="Recording", choices=[], elem_id="cc-pick")
                        with gr.Row():
                            open_rec = gr.Button("Open recording", elem_id="cc-open")
                            again = gr.Button("Re-ingest", elem_id="cc-reingest", visible=False)
                            delete = gr.Button("Delete", variant="stop", elem_id="cc-delete",
                                               visible=False)
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
        demo.load(suggest, outputs=[examples], queue=False)
        examples.click(lambda sample: {"text": sample[0], "files": []}, inputs=[examples],
                       outputs=[box], queue=False)
        demo.unload(closed)
        demo.load(rights, outputs=[rights_note, adding, again, delete], queue=False)
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
        for trigger in (rec_query.submit, rec_search.click, rec_order.change):
            trigger(search_here, inputs=[current, rec_query, rec_order], outputs=[rec_found],
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
        head=head_html(ctx.max_upload_mb), css=CSS, show_error=False, allowed_paths=[],
    )
    from starlette.routing import Mount

    for route in app.routes:
        if isinstance(route, Mount) and hasattr(route.app, "tokens"):
            holder["gradio"] = route.app
    # Gradio accepts a file named in a request (an upload, an attachment) only if it was
    # uploaded, but checks that only once launch() has run: mounted, a hand-made request could
    # name any file on this server and have it copied, ingested or read out.
    demo.has_launched = True

    def is_admin(request: Request) -> bool:
        if users is None:
            return True
        user = users.get(_gradio_user(holder["gradio"], request))
        return user is not None and user.admin

    app.add_middleware(Guard, is_admin=is_admin)
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
