"""Shared pieces of the web app tests: the fixture recordings' constants, a server in a thread,
and browser steps (ask, wait for the answer, open a dropdown...)."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import webvtt

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from tests.conftest import ARTIFACTS  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402


CHROMIUM = "/usr/bin/chromium"
SCREENS = ARTIFACTS / "screens"
ROUTER = json.dumps({"intent": "answer", "question": "Where is Sheila from?",
                     "queries": ["Sheila Texas"], "recording": None, "speaker": None})
ANSWER = ["Sheila is in Texas and ", "originally from Chicago [1]."]
SLIDE = ("Falcon acquisition", ["Closing: June", "Deal room: extension 4417",
                                "Integration lead: Dana Whitfield"], "Board meeting | confidential")
DEAL_ROOM_ROUTER = json.dumps({"intent": "answer", "question": "What is the extension of the "
                               "Falcon deal room?", "queries": ["Falcon deal room extension"],
                               "recording": None, "speaker": None})
LIMIT_MB = 5


def local_noon(day: str) -> float:
    return time.mktime(dt.datetime.fromisoformat(f"{day} 12:00").timetuple())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Running:
    def __init__(self, app, port: int) -> None:
        import uvicorn

        self.url = f"http://127.0.0.1:{port}"
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                    log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline, "the web app did not start"
            time.sleep(0.1)
        self.app.state.clipcite.engine.wait_ready(300)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def settings_for(archive: dict, llm_base_url: str):
    from clipcite.ui.settings import Settings

    return Settings(index_dir=archive["index"], cache_dir=Path.home() / ".cache" / "clipcite",
                    llm_backend="openai", llm_base_url=llm_base_url, llm_api_key="k",
                    llm_model="test-model", upload_limit_mb=LIMIT_MB,
                    # Summaries after uploads would take the fake LLM's scripted replies;
                    # test_transcript_only.py tests them on an app of its own.
                    web_summaries=False,
                    # Uploads are transcribed with tiny.en, as in every other test (about half
                    # of the default base model's time; tests/conftest.py).
                    asr_model="tiny.en")


def ask(page, question: str) -> None:
    box = page.locator("#cc-question textarea")
    box.fill(question)
    box.press("Enter")


def answered(page, timeout: float = 120_000) -> None:
    """Waits until the last answer is complete (the streaming cursor has gone)."""
    page.wait_for_function(
        """() => { const bots = document.querySelectorAll(
                       '#cc-chat .bot, #cc-chat [data-testid="bot"]');
                   if (!bots.length) return false;
                   const t = bots[bots.length - 1].innerText;
                   return t.length > 2 && !t.includes('▌') && t.trim() !== '…'; }""",
        timeout=timeout)


def library_shows(page, text: str, timeout: float = 15_000) -> None:
    page.wait_for_function("t => (document.querySelector('#cc-library')?.innerText || '')"
                           ".toLowerCase().includes(t.toLowerCase())", arg=text, timeout=timeout)


def last_answer(page) -> str:
    return page.locator('#cc-chat .bot, #cc-chat [data-testid="bot"]').last.inner_text()


def prompts_since(fake: FakeOpenAI, sent: int) -> str:
    """Everything the LLM was sent after the first `sent` requests."""
    return "\n".join((m.get("content") or "") for r in fake.requests[sent:]
                     for m in r["body"]["messages"])


def open_filters(page) -> None:
    page.get_by_text("Limit the search to some recordings", exact=False).click()
    page.locator("#cc-only-recordings input").wait_for()


def close_dropdowns(page) -> None:
    page.locator("h2").first.click()  # a click outside closes the open list
    page.wait_for_function("() => !document.querySelector('[role=option]')")


def choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.locator(f"#{elem_id} [role=option]", has_text=option).first.click()
    close_dropdowns(page)


def options_of(page, elem_id: str) -> list[str]:
    page.locator(f"#{elem_id} input").click()
    page.locator(f"#{elem_id} [role=option]").first.wait_for()
    texts = page.locator(f"#{elem_id} [role=option]").all_inner_texts()
    close_dropdowns(page)
    return texts


def play_chip(page, chip) -> dict:
    """Clicks a citation chip and returns the player's state once it has seeked."""
    chip.click()
    page.wait_for_function(
        "() => document.getElementById('cc-player').getAttribute('data-ready') === '1'",
        timeout=30_000)
    return page.evaluate("""() => { const v = document.getElementById('cc-player');
        v.pause(); return {t: v.currentTime, src: v.currentSrc, d: v.duration}; }""")


# -- a clip or screenshot attached to a chat message (search by example) -----------------------
EXAMPLES_SHOWN = "Which recordings are in the library?"
AROUND_ROUTER = json.dumps({"intent": "answer", "question": "What was said around this?",
                            "queries": ["what was said around this"]})


def cut(src: Path, dst: Path, start: float, length: float) -> Path:
    """A clip cut from a recording, in another format than its source (as a user's would be)."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", str(start), "-t", str(length),
                    "-i", str(src), str(dst)], check=True)
    return dst


def attach(page, path: Path) -> None:
    """Attaches a file with the chat box's paperclip; returns once the box shows it."""
    page.locator("#cc-question input[type=file]").set_input_files(str(path))
    page.locator("#cc-question .thumbnail-item").first.wait_for(timeout=30_000)


def send(page, question: str = "") -> None:
    """Sends the box (with its attachment) and waits for the new answer to be complete."""
    bots = page.locator('#cc-chat .bot, #cc-chat [data-testid="bot"]')
    before = bots.count()
    box = page.locator("#cc-question textarea")
    box.fill(question)
    box.press("Enter")
    page.wait_for_function("n => document.querySelectorAll("
                           "'#cc-chat .bot, #cc-chat [data-testid=\"bot\"]').length > n",
                           arg=before, timeout=30_000)
    answered(page)


def last_bot(page):
    return page.locator('#cc-chat .bot, #cc-chat [data-testid="bot"]').last


def answer_chips(page) -> list[dict]:
    """The citation chips of the last answer: media id, start and kind."""
    bot = last_bot(page)
    return [{"media": c.get_attribute("name"), "start": float(c.get_attribute("value")
                                                             .split("|")[0]),
             "kind": c.get_attribute("value").split("|")[2]}
            for c in bot.locator(".cc-chip").all()]


def left_in_uploads(name: str) -> list[Path]:
    """Copies of an attached file still in Gradio's upload folder."""
    from gradio.utils import get_upload_folder

    return list(Path(get_upload_folder()).rglob(name))


# -- the recording page ------------------------------------------------------------------------
def recording_lines(page, timeout: float = 60_000):
    """The transcript lines shown on the recording page, once they are there."""
    page.locator("#cc-rec-lines .cc-line").first.wait_for(timeout=timeout)
    return page.locator("#cc-rec-lines .cc-line")


def speakers_shown(page) -> list[str]:
    return page.locator("#cc-rec-lines .cc-line-who").all_inner_texts()


def played_from(page, element) -> dict:
    """Clicks a line (or a found moment, or a slide) and returns the player once it has seeked."""
    element.click()
    page.wait_for_function("() => document.getElementById('cc-rec-player')"
                           ".hasAttribute('data-seeked')", timeout=30_000)
    return page.evaluate("""() => { const v = document.getElementById('cc-rec-player');
        v.pause(); const t = v.currentTime; v.removeAttribute('data-seeked');
        return {t: t, src: v.currentSrc}; }""")


def fetch_captions(request, url: str, media_id: str) -> list:
    r = request.get(f"{url}/captions/{media_id}.vtt")
    assert r.status == 200 and r.headers["content-type"].startswith("text/vtt"), r.status
    text = r.text()
    assert text.startswith("WEBVTT")
    return list(webvtt.from_buffer(io.StringIO(text)))


def sign_in(page, url: str, user: str, password: str) -> None:
    page.goto(url)
    page.locator("input[type=password]").wait_for()
    page.locator("input:not([type=password])").first.fill(user)
    page.locator("input[type=password]").fill(password)
    page.keyboard.press("Enter")
    page.get_by_text("Try asking").wait_for(timeout=30_000)
