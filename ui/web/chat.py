"""The Ask page's handlers: a message (typed, with an attached clip or screenshot, or both)
becomes a streamed, cited answer; example questions; a closed page stops its answer."""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any

import gradio as gr

from clipcite.retrieval.filters import Filters
from clipcite.ui.web.attachments import (
    AttachmentError, attachment_status, discard_upload, example_reply, read_attachment,
    split_message, user_bubble)
from clipcite.ui.web.context import WebContext, example_questions, username_of
from clipcite.ui.web.errors import ASK_ADMIN, friendly_error, plain_error
from clipcite.ui.web.filters import FilterError, chat_filters, narrowed
from clipcite.ui.web.render import answer_html

log = logging.getLogger("clipcite.web")


class ChatPage:
    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def respond(self, message: Any, chat: list, turns: list, recordings: list | None,
                tags: list | None, date_from: str | None, date_to: str | None,
                request: gr.Request):
        """One chat message: typed text, an attached clip or screenshot, or both."""
        text, files = split_message(message)
        try:
            if not text and not files:
                yield gr.skip(), chat, turns
                return
            user = username_of(request)
            chat = [*chat, {"role": "user", "content": user_bubble(text, [f.name for f in files])},
                    {"role": "assistant", "content": "…"}]
            yield "", chat, turns
            try:
                filters = chat_filters(self.ctx.groups(user), self.ctx.searchable(user),
                                       recordings, tags, date_from, date_to)
                if len(files) > 1:
                    raise AttachmentError("Attach one clip or screenshot at a time, then ask "
                                          "about the next one.")
            except (FilterError, AttachmentError) as e:
                chat[-1] = {"role": "assistant", "content": html.escape(str(e))}
                yield gr.skip(), chat, turns
                return
            if files:
                yield from self.by_example(files[0], text, chat, turns, filters, request)
            else:
                yield from self.answer(text, chat, turns, filters, request)
        finally:
            for f in files:  # the attachment is read once and never kept
                discard_upload(f)

    def answer(self, message: str, chat: list, turns: list, filters: Filters, request: Any,
               example: Any = None, shown: str | None = None):
        """The assistant's streamed, cited answer (searching by `example` when one is given);
        `shown` is the message as the conversation history keeps it."""
        from clipcite.assistant.agent import Turn

        text, reply = "", None
        try:
            for event in self.ctx.engine.turn(message, list(turns), filters, example,
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

    def by_example(self, path: Path, question: str, chat: list, turns: list, filters: Filters,
                   request: Any):
        """An attached clip or screenshot, read and searched as `clipcite search --like` does:
        with a question, the assistant answers it from the moments found; alone, the moments
        found are the answer."""
        from clipcite.assistant.agent import EVIDENCE_K, Turn
        from clipcite.retrieval.tools import search_like

        name = path.name
        chat[-1] = {"role": "assistant", "content": html.escape(attachment_status(name)) + " ▌"}
        yield gr.skip(), chat, turns
        try:
            example = read_attachment(self.ctx.examples, path, self.ctx.max_upload_mb, question)
        except AttachmentError as e:
            chat[-1] = {"role": "assistant", "content": html.escape(str(e))}
            yield gr.skip(), chat, turns
            return
        shown = f"{question} [attached: {name}]".strip()  # what later questions can refer to
        if question:
            yield from self.answer(question, chat, turns, filters, request, example, shown)
            return
        try:
            # The caller's groups are in `filters`: nothing they may not see can match.
            found = self.ctx.engine.call(search_like, example, "", EVIDENCE_K, filters)
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

    def suggest(self, request: gr.Request):
        questions = example_questions(self.ctx.searchable(username_of(request)))
        return gr.Dataset(samples=[[q] for q in questions])

    def closed(self, request: gr.Request):
        """The tab was closed or reloaded: its answer stops (the engine serves others)."""
        self.ctx.engine.cancel(request.session_hash)

    def new_conversation(self):
        return [], [], ""

