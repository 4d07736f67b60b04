"""The Recording page's handlers: one recording's player, transcript, speakers (named here)
and a search within it; opened from its list, the Library or a citation's link."""

from __future__ import annotations

import html
import logging

import gradio as gr

from clipcite.retrieval.filters import Filters
from clipcite.ui.web.context import WebContext, username_of
from clipcite.ui.web.errors import plain_error
from clipcite.ui.web.filters import recording_choices
from clipcite.ui.web.render import (
    BEST_FIRST, NOT_AVAILABLE, NO_CHANGE_RIGHT, found_html, parse_start, player_page_html,
    speaker_choices, speakers_html, transcript_html)
from clipcite.ui.web.services import RecordingView

log = logging.getLogger("clipcite.web")

# Outputs of `RecordingPage.show`, in order: the media id shown, the recording list, player,
# transcript, speaker list, speaker picker, name box, confirm button, matches, search box.
PAGE_OUTPUTS = 10

class RecordingPage:
    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def show(self, request: gr.Request, media_id: str | None, start: float = 0.0,
             choices_too: bool = False) -> tuple:
        """Everything on the recording page for one recording (or the "not available" note).
        Outputs: see PAGE_OUTPUTS."""
        user = username_of(request)
        view, asked = None, media_id
        if media_id:
            try:
                view = self.ctx.archive.view(media_id, self.ctx.groups(user))
            except Exception as e:  # noqa: BLE001 - a sentence, never a traceback
                log.exception("opening recording %s failed", media_id)
                gr.Warning(f"The recording could not be opened: {plain_error(e)}. Please try "
                           "again; if it keeps happening, tell your administrator.")
        if media_id and view is None:
            media_id = None
        pick = gr.update(value=media_id)
        if choices_too:
            pick = gr.update(choices=recording_choices(self.ctx.searchable(user)), value=media_id)
        player = player_page_html(view, start) if asked else (
            "<div id='cc-rec-box' class='cc-empty'>Choose a recording above to see and hear it "
            "with its whole transcript.</div>")
        return (media_id, pick, player, transcript_html(view), *self.speaker_parts(view), "", "")

    def speaker_parts(self, view: RecordingView | None, chosen: str | None = None) -> tuple:
        """Speaker list, the speaker picker, the name box and the confirm button."""
        choices = speaker_choices(view)
        labels = [label for _, label in choices]
        chosen = chosen if chosen in labels else None
        return (speakers_html(view),
                gr.update(choices=choices, value=chosen, interactive=bool(choices)),
                *self.name_controls(view, chosen))

    def name_controls(self, view: RecordingView | None, label: str | None) -> tuple:
        sp = next((s for s in (view.speakers if view else []) if s.label == label), None)
        suggested = sp is not None and sp.status == "suggested"
        return (gr.update(value=(sp.name or "") if sp else ""),
                gr.update(visible=suggested,
                          value=f"Confirm “{sp.name}”" if suggested else "Confirm"))

    def pick_recording(self, media_id: str | None, shown: str | None, request: gr.Request):
        if media_id == shown:  # the page set the list itself: that recording is already shown
            return (gr.skip(),) * PAGE_OUTPUTS
        return self.show(request, media_id)

    def open_from_link(self, request: gr.Request):
        """`/?recording=ID&t=SECONDS` (a citation's link) opens that recording's page."""
        params = getattr(request, "query_params", None) or {}
        wanted = params.get("recording")
        if not wanted:
            return gr.skip(), *self.show(request, None, choices_too=True)
        out = self.show(request, wanted, parse_start(params.get("t")), choices_too=True)
        if out[0] is None:
            gr.Warning(NOT_AVAILABLE)
        return gr.Tabs(selected="recording"), *out

    def open_from_library(self, media_id: str | None, request: gr.Request):
        if not media_id:
            gr.Warning("Choose a recording in the list first.")
            return gr.skip(), *([gr.skip()] * PAGE_OUTPUTS)
        out = self.show(request, media_id, choices_too=True)
        if out[0] is None:
            gr.Warning("That recording cannot be opened yet: it is not ready to search. "
                       "Its status in the table says why.")
            return gr.skip(), *([gr.skip()] * PAGE_OUTPUTS)
        return gr.Tabs(selected="recording"), *out

    def choose_speaker(self, media_id: str | None, label: str | None, request: gr.Request):
        try:
            groups = self.ctx.groups(username_of(request))
            view = self.ctx.archive.view(media_id, groups) if media_id else None
        except Exception:  # noqa: BLE001 - the name box simply stays empty
            log.exception("reading the speakers of %s failed", media_id)
            view = None
        return self.name_controls(view, label)

    def rename(self, media_id: str | None, label: str | None, name: str | None,
               request: gr.Request, confirm: bool = False):
        keep = (gr.skip(),) * 5
        if not media_id or not label:
            gr.Warning("Choose a speaker in the list first.")
            return keep
        user = username_of(request)
        groups = self.ctx.groups(user)
        try:
            view = self.ctx.archive.view(media_id, groups)
            if view is None:
                raise LookupError(media_id)
            if not self.ctx.may_change(user, view.rec):
                log.warning("renaming refused: %r may not change %s", user, media_id)
                gr.Warning(NO_CHANGE_RIGHT)
                return keep
            sp = next((s for s in view.speakers if s.label == label), None)
            if confirm:
                name = sp.name if sp is not None and sp.name else ""
            if not (name or "").strip():
                gr.Warning("Type the speaker's name first.")
                return keep
            shown = self.ctx.archive.rename(media_id, groups, label, name or "")
            view = self.ctx.archive.view(media_id, groups)
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
        return (transcript_html(view), *self.speaker_parts(view, label))

    def confirm(self, media_id: str | None, label: str | None, request: gr.Request):
        return self.rename(media_id, label, None, request, confirm=True)

    def search_here(self, media_id: str | None, query: str | None, order: str | None,
                    request: gr.Request):
        from clipcite.retrieval.tools import search_all

        query = (query or "").strip()
        if not media_id:
            return "<div class='cc-empty'>Choose a recording first.</div>"
        if not query:
            return "<div class='cc-empty'>Type some words to find in this recording.</div>"
        # Only this recording, and only if the caller may see it (the groups always apply).
        filters = Filters(groups=self.ctx.groups(username_of(request)), recordings=(media_id,))
        try:
            found = self.ctx.engine.call(search_all, query, 10, filters)
        except Exception as e:  # noqa: BLE001 - a sentence, never a traceback
            log.exception("searching within %s failed", media_id)
            why = html.escape(plain_error(e))
            return (f"<div class='cc-empty'>The search did not work: {why}. "
                    "Please try again.</div>")
        return found_html([m for m in found if m.media_id == media_id], query,
                          order or BEST_FIRST)

