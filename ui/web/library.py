"""The Library page's handlers: the table and choices every page lists, what this person may
do, their own progress and messages, uploads, re-ingest and delete."""

from __future__ import annotations

import logging

import gradio as gr

from clipcite.assistant.evidence import clock
from clipcite.ui.users import VIEWER
from clipcite.ui.web.context import WebContext, username_of
from clipcite.ui.web.filters import recording_choices, still_offered, tag_choices
from clipcite.ui.web.render import NO_UPLOAD_RIGHT, contents_words, fmt_date, progress_box, status_words

log = logging.getLogger("clipcite.web")


class LibraryPage:
    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def library_rows(self, request: gr.Request):
        rows = []
        for r in self.ctx.recordings(username_of(request)):
            status, problem = status_words(r)
            rows.append([r.title, clock(r.duration) if r.duration else "-",
                         fmt_date(r.recorded_at), status,
                         contents_words(r.counts or {}, bool(self.ctx.settings.clip_weights)),
                         ", ".join(r.groups) or "everyone", problem])
        return rows

    def choices(self, request: gr.Request):
        return [(f"{r.title} ({status_words(r)[0]})", r.media_id)
                for r in self.ctx.recordings(username_of(request))]

    def refresh(self, request: gr.Request, recs: list | None = None, tags: list | None = None):
        visible = self.ctx.searchable(username_of(request))
        rec_options, tag_options = recording_choices(visible), tag_choices(visible)
        return (gr.update(value=self.library_rows(request)),
                gr.update(choices=self.choices(request), value=None),
                self.ctx.ingester.state.version,
                gr.update(choices=rec_options, value=still_offered(recs, rec_options)),
                gr.update(choices=tag_options, value=still_offered(tags, tag_options)),
                gr.update(choices=rec_options))  # the recording page's list

    def rights(self, request: gr.Request):
        """Only what this person may do is offered (every action checks again)."""
        user = username_of(request)
        editor = self.ctx.users is None or (self.ctx.users.get(user) is not None and
                                       self.ctx.users.get(user).role != VIEWER)
        upload_ok = self.ctx.may_upload(user)
        note = "" if editor and upload_ok else (
            NO_UPLOAD_RIGHT if not editor else
            "Your uploads would be open to everyone, so adding recordings is for your "
            "administrator: ask them to give your account a group.")
        return (gr.update(value=note, visible=bool(note)), gr.update(visible=upload_ok),
                gr.update(visible=editor), gr.update(visible=editor),
                gr.update(visible=editor))  # naming speakers on the recording page

    def progress_html(self, request: gr.Request) -> str:
        return progress_box(self.ctx.progress(username_of(request)))

    def tick(self, seen: int, recs: list | None, tags: list | None, request: gr.Request):
        if self.ctx.ingester.state.version == seen:
            return (self.progress_html(request), gr.skip(), gr.skip(), seen, gr.skip(), gr.skip(),
                    gr.skip())
        return self.progress_html(request), *self.refresh(request, recs, tags)

    def upload(self, files: list | None, request: gr.Request):
        for ok, sentence in self.ctx.add_uploads(username_of(request), files or []):
            (gr.Info if ok else gr.Warning)(sentence)
        return self.progress_html(request), None

    def act(self, kind: str):
        def run(media_id: str | None, request: gr.Request):
            if not media_id:
                gr.Warning("Choose a recording in the list first.")
            else:
                ok, sentence = self.ctx.change(username_of(request), kind, media_id)
                (gr.Info if ok else gr.Warning)(sentence)
            return self.progress_html(request)
        return run

