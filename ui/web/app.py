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

Threads: the models load once per process; answers run on `web_workers` *engine* threads, each
with its own index handle (SQLite connections stay in the thread that made them) sharing the
encoders and the chat model; attachments are read (speech, voice, OCR) in one more thread with the ingestion models;
ingestion runs in its own thread with its own index handle; the media route and the library
table read the catalog through per-thread connections; the recording page, captions and
downloads read (and rename speakers) in one more thread with its own index handle. Access groups
of the signed-in user go into Filters(groups=...) for every answer, listing, filter choice,
recording page, media, thumbnail, caption and download request; their role decides what they
may change (ui/users.py).
"""

from __future__ import annotations

import ipaddress
import json
import logging
from importlib import resources
from pathlib import Path
from typing import Any

from clipcite.ui.environment import set_defaults

set_defaults()  # before Gradio and the models load (see ui/environment.py)

import gradio as gr  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402

from clipcite.ui.media_server import media_router  # noqa: E402
from clipcite.ui.settings import Settings  # noqa: E402
from clipcite.ui.users import Users, load_users  # noqa: E402
from clipcite.ui.web.attachments import ATTACH_TOO_BIG_ADVICE, MB, TOO_BIG_ADVICE  # noqa: E402
from clipcite.ui.web.chat import ChatPage  # noqa: E402
from clipcite.ui.web.context import LISTING_EXAMPLE, WebContext  # noqa: E402
from clipcite.ui.web.errors import SetupError  # noqa: E402
from clipcite.ui.web.guard import Guard  # noqa: E402
from clipcite.ui.web.library import LibraryPage  # noqa: E402
from clipcite.ui.web.recording import PAGE_OUTPUTS, RecordingPage  # noqa: E402
from clipcite.ui.web.render import (  # noqa: E402
    BEST_FIRST, IN_TIME_ORDER, LIBRARY_COLUMNS, LIBRARY_WIDTHS, progress_box)

log = logging.getLogger("clipcite.web")


def _static(name: str) -> str:
    return resources.files("clipcite.ui.web").joinpath("static", name).read_text(encoding="utf-8")


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


def build_app(settings: Settings, users: Users | None = None, *,
              context: WebContext | None = None, library_dir: Path | None = None) -> gr.Blocks:
    """The Gradio app: three pages laid out and wired to their handlers (ui/web/chat.py,
    recording.py, library.py). Serve it with `create_app` (it adds the media routes and
    sign-in)."""
    ctx = context or WebContext(settings, users, library_dir)
    chat, page, library = ChatPage(ctx), RecordingPage(ctx), LibraryPage(ctx)

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
                        gr.Markdown("**Speakers**")
                        rec_speakers = gr.HTML(elem_id="cc-rec-speakers-panel", js_on_load=None)
                        # Naming speakers is for editors and admins (viewers read the names).
                        with gr.Column(visible=False, elem_id="cc-rec-naming") as naming:
                            gr.Markdown("Give a speaker their name; the transcript, captions, "
                                        "downloads and searches use it at once.")
                            with gr.Row():
                                rec_speaker = gr.Dropdown(label="Speaker", choices=[],
                                                          elem_id="cc-rec-speaker", scale=2)
                                rec_name = gr.Textbox(label="Their name", elem_id="cc-rec-name",
                                                      scale=2,
                                                      placeholder="For example: Maria Lopez")
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

        ask_args = dict(fn=chat.respond, inputs=[box, chatbot, turns, only_recs, only_tags,
                                                 date_from, date_to],
                        outputs=[box, chatbot, turns], concurrency_limit=None,
                        show_progress="hidden", js=SEND_TYPED_DATES)
        box.submit(**ask_args)
        send.click(**ask_args)
        new.click(chat.new_conversation, outputs=[chatbot, turns, box], queue=False)
        listings = [table, picker, seen, only_recs, only_tags, rec_pick]
        demo.load(library.refresh, outputs=listings, queue=False)
        demo.load(chat.suggest, outputs=[examples], queue=False)
        examples.click(lambda sample: {"text": sample[0], "files": []}, inputs=[examples],
                       outputs=[box], queue=False)
        demo.unload(chat.closed)
        demo.load(library.rights, outputs=[rights_note, adding, again, delete, naming],
                  queue=False)
        timer.tick(library.tick, inputs=[seen, only_recs, only_tags],
                   outputs=[progress, *listings], concurrency_limit=None, show_progress="hidden")
        add.click(library.upload, inputs=[files], outputs=[progress, files],
                  concurrency_limit=None)
        again.click(library.act("reingest"), inputs=[picker], outputs=[progress],
                    concurrency_limit=None)
        page_outputs = [current, rec_pick, rec_player, rec_lines, rec_speakers, rec_speaker,
                        rec_name, rec_confirm, rec_found, rec_query]
        assert len(page_outputs) == PAGE_OUTPUTS
        rec_pick.input(page.pick_recording, inputs=[rec_pick, current], outputs=page_outputs,
                       concurrency_limit=None)
        demo.load(page.open_from_link, outputs=[tabs, *page_outputs])
        open_rec.click(page.open_from_library, inputs=[picker], outputs=[tabs, *page_outputs],
                       concurrency_limit=None)
        rec_speaker.input(page.choose_speaker, inputs=[current, rec_speaker],
                          outputs=[rec_name, rec_confirm], concurrency_limit=None)
        named = [rec_lines, rec_speakers, rec_speaker, rec_name, rec_confirm]
        naming = [current, rec_speaker, rec_name]
        for trigger, fn, args in ((rec_rename.click, page.rename, naming),
                                  (rec_name.submit, page.rename, naming),
                                  (rec_confirm.click, page.confirm, [current, rec_speaker])):
            trigger(fn, inputs=args, outputs=named, concurrency_limit=None).then(
                None, js="() => window.ccReloadCaptions && window.ccReloadCaptions()")
        for trigger in (rec_query.submit, rec_search.click, rec_order.change):
            trigger(page.search_here, inputs=[current, rec_query, rec_order], outputs=[rec_found],
                    concurrency_limit=None)
        delete.click(library.act("delete"), inputs=[picker], outputs=[progress],
                     concurrency_limit=None,
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
