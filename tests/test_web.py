"""The web app (`clipcite serve`) in a real browser: Debian's chromium driven by Playwright.

The app runs in this process (uvicorn in a thread) on 127.0.0.1 over a small real index: the
phone call from ../shared/media/sample.wav, open to everyone, and a spoken board recording
restricted to the group "board". The LLM is tests/fake_openai.py: it stands in for a remote
OpenAI-compatible LLM API, which cannot be reached from this machine; search, citations, access
groups and media serving are all real.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from tests.conftest import ARTIFACTS, copy_media  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402

import playwright.sync_api as playwright_sync  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
SCREENS = ARTIFACTS / "screens"
ROUTER = json.dumps({"intent": "answer", "question": "Where is Sheila from?",
                     "queries": ["Sheila Texas"], "recording": None, "speaker": None})
ANSWER = ["Sheila is in Texas and ", "originally from Chicago [1]."]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def archive(media: Path, tmp_path_factory: pytest.TempPathFactory, extract_options) -> dict:
    from ingestion.batch import BatchOptions, run_batch
    from retrieval.index import Index

    root = tmp_path_factory.mktemp("web")
    lib = root / "files"
    call = copy_media(media / "sample.wav", lib, "Phone call.wav")
    board = lib / "Board meeting.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(board),
                    "The board agreed that the Falcon acquisition will close in June. "
                    "Sheila from Texas will lead the Falcon integration."], check=True)
    index = Index(root / "index")
    out = run_batch([call], index, BatchOptions(extract=extract_options))
    out += run_batch([board], index, BatchOptions(extract=extract_options, groups=["board"]))
    assert [o.status for o in out] == ["indexed", "indexed"], out
    ids = {Path(o.path).stem: o.media_id for o in out}
    index.catalog.close()
    return {"root": root, "index": root / "index", "call": ids["Phone call"],
            "board": ids["Board meeting"]}


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


def settings_for(archive: dict, fake: FakeOpenAI):
    from ui.settings import Settings

    return Settings(index_dir=archive["index"], cache_dir=Path.home() / ".cache" / "clipcite",
                    llm_backend="openai", llm_base_url=fake.base_url, llm_api_key="k",
                    llm_model="test-model")


@pytest.fixture(scope="module")
def open_app(archive, fake) -> Iterator[Running]:
    """No users file: one person on their own machine, sees everything."""
    from ui.web import create_app

    app = create_app(settings_for(archive, fake), library_dir=archive["root"] / "uploads",
                     max_upload_mb=5)
    with Running(app, free_port()) as running:
        yield running


@pytest.fixture(scope="module")
def staff_app(archive, fake) -> Iterator[Running]:
    """A users file with alice in group "staff"; the board recording is for group "board"."""
    from ui.users import hash_password, load_users
    from ui.web import create_app

    users_file = archive["root"] / "users.toml"
    users_file.write_text(f'[users.alice]\npassword_hash = "{hash_password("wonderland")}"\n'
                          'groups = ["staff"]\n')
    app = create_app(settings_for(archive, fake), load_users(users_file),
                     library_dir=archive["root"] / "uploads-staff")
    with Running(app, free_port()) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


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


def test_cited_answer_chip_plays_the_moment(open_app, fake, page, archive):
    SCREENS.mkdir(parents=True, exist_ok=True)
    fake.replies, fake.deltas = [ROUTER], ANSWER
    page.goto(open_app.url)
    page.get_by_text("Try asking").wait_for()
    ask(page, "where is sheila from?")
    chip = page.locator("#cc-chat .cc-chip").first
    chip.wait_for(timeout=120_000)
    answered(page)
    assert "Sheila is in Texas and originally from Chicago" in page.locator("#cc-chat").inner_text()
    assert chip.inner_text().startswith("[1] Phone call · 00:")
    assert chip.get_attribute("name") == archive["call"]
    start = float(chip.get_attribute("value").split("|")[0])
    assert 10.0 <= start <= 16.0  # where Sheila says it in sample.wav
    page.screenshot(path=str(SCREENS / "chat.png"), full_page=True)

    chip.click()
    page.wait_for_function(
        "() => document.getElementById('cc-player').getAttribute('data-ready') === '1'",
        timeout=30_000)
    player = page.evaluate("""() => { const v = document.getElementById('cc-player');
        v.pause(); return {t: v.currentTime, src: v.currentSrc, d: v.duration}; }""")
    assert abs(player["t"] - start) <= 1.0, player
    assert f"/media/{archive['call']}" in player["src"] and player["d"] > 20
    assert "Phone call · 00:" in page.locator("#cc-player-title").inner_text()
    assert "sheila" in page.locator("#cc-player-text").inner_text().lower()
    page.screenshot(path=str(SCREENS / "player.png"), full_page=True)

    # "New conversation" clears the chat; the next question starts without history.
    page.locator("#cc-new").click()
    page.wait_for_function("() => !document.querySelector('#cc-chat .cc-chip')")


def test_media_route_serves_only_catalogued_recordings(open_app, archive):
    with httpx.Client(base_url=open_app.url) as http:
        ok = http.get(f"/media/{archive['call']}", headers={"Range": "bytes=100-199"})
        assert ok.status_code == 206 and len(ok.content) == 100
        assert ok.headers["content-type"].startswith("audio/")
        assert ok.headers["content-range"].startswith("bytes 100-199/")
        for bad in ("0123456789abcdef", "..%2F..%2F..%2Fetc%2Fpasswd", "%2e%2e",
                    "..%5c..%5cetc%5cpasswd", "/etc/passwd"):
            r = http.get(f"/media/{bad}")
            assert r.status_code == 404, (bad, r.status_code)
            assert b"root:" not in r.content
        r = http.get("/media/../../../../etc/passwd")
        assert b"root:" not in r.content


def test_restricted_user_never_sees_the_board_recording(staff_app, fake, browser, archive):
    board, call = archive["board"], archive["call"]
    with httpx.Client(base_url=staff_app.url) as http:  # not signed in: nothing at all
        assert http.get(f"/media/{call}").status_code == 404
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.goto(staff_app.url)
        page.locator("input[type=password]").wait_for()
        page.locator("input:not([type=password])").first.fill("alice")
        page.locator("input[type=password]").fill("wrong")
        page.keyboard.press("Enter")
        page.get_by_text("Incorrect", exact=False).first.wait_for(timeout=15_000)
        page.locator("input:not([type=password])").first.fill("alice")
        page.locator("input[type=password]").fill("wonderland")
        page.keyboard.press("Enter")
        page.get_by_text("Try asking").wait_for(timeout=30_000)

        sent = len(fake.requests)
        fake.replies = [json.dumps({"intent": "answer", "question": "What did the board agree "
                                    "about the Falcon acquisition?", "queries": [
                                        "Falcon acquisition close June", "board agreed"],
                                    "recording": None, "speaker": None})]
        fake.deltas = ["The Falcon acquisition closes in June [1]."]
        ask(page, "what did the board agree about Falcon?")
        answered(page)
        prompts = "\n".join(m["content"] for r in fake.requests[sent:]
                            for m in r["body"]["messages"])
        assert "Falcon acquisition will close" not in prompts  # never reached the model
        assert "Board meeting" not in prompts
        medias = page.locator(".cc-chip").evaluate_all(
            "cs => cs.map(c => c.getAttribute('name'))")
        assert board not in medias

        page.get_by_role("tab", name="Library").click()
        library_shows(page, "Phone call")
        assert "Board meeting" not in page.locator("#cc-library").inner_text()
        page.screenshot(path=str(SCREENS / "library-staff.png"), full_page=True)

        # The browser's own session: the call plays, the board recording does not exist.
        assert page.request.get(f"{staff_app.url}/media/{call}").status == 200
        assert page.request.get(f"{staff_app.url}/media/{board}").status == 404
    finally:
        context.close()


def test_upload_is_ingested_in_the_background(open_app, page, media):
    page.goto(open_app.url)
    page.get_by_role("tab", name="Library").click()
    library_shows(page, "Board meeting")
    page.locator("#cc-upload input[type=file]").set_input_files(str(media / "jfk.flac"))
    page.locator("#cc-add").click()
    library_shows(page, "Jfk", timeout=240_000)
    page.wait_for_function("() => document.querySelector('#cc-progress')"
                           "?.classList.contains('cc-idle')",
                           timeout=240_000)
    ctx = open_app.app.state.clipcite
    rec = next(r for r in ctx.reader.catalog.all() if "jfk" in r.path.lower())
    assert rec.searchable and rec.status == "indexed" and rec.counts["transcript"] > 0
    assert Path(rec.path).parent == ctx.library_dir  # saved under the library folder
    library_shows(page, "ready")
    assert "ready to search" in page.locator("#cc-progress-box").inner_text()
    page.screenshot(path=str(SCREENS / "library.png"), full_page=True)

    # Delete it again (after the browser's "are you sure?"): gone from the table and the disk.
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator("#cc-pick input").click()
    page.get_by_role("option", name="Jfk", exact=False).first.click()
    page.locator("#cc-delete").click()
    page.wait_for_function("() => !(document.querySelector('#cc-library')?.innerText || '')"
                           ".includes('Jfk')", timeout=60_000)
    assert "jfk" not in {r.title.lower() for r in ctx.reader.catalog.all()}
    assert not Path(rec.path).exists()
    with httpx.Client(base_url=open_app.url) as http:
        assert http.get(f"/media/{rec.media_id}").status_code == 404


def test_non_loopback_host_needs_users_file(tmp_path):
    from ui.settings import Settings
    from ui.users import UsersFileError, hash_password, load_users, verify
    from ui.web import SetupError, check_host, safe_filename, serve

    with pytest.raises(SetupError, match="without sign-in"):
        serve(Settings(index_dir=tmp_path / "i"), host="0.0.0.0", port=free_port())
    check_host("0.0.0.0", None, insecure=True)
    check_host("127.0.0.1", None, insecure=False)
    check_host("::1", None, insecure=False)
    check_host("192.168.1.5", tmp_path / "users.toml", insecure=False)

    stored = hash_password("pw")
    assert verify("pw", stored) and not verify("pW", stored) and not verify("pw", "garbage")
    assert hash_password("pw") != stored  # salted
    bad = tmp_path / "users.json"
    bad.write_text('{"users": {"bob": {"groups": ["staff"]}}}')
    with pytest.raises(UsersFileError, match="password_hash"):
        load_users(bad)
    bad.write_text(json.dumps({"users": {"bob": {"password_hash": stored, "groups": ["a"]}}}))
    users = load_users(bad)
    assert users.check("bob", "pw") and not users.check("eve", "pw")
    assert users.groups_for("bob") == frozenset({"a"})
    assert safe_filename("../../etc/pa ss*wd.WAV") == "pa ss_wd.wav"
    assert safe_filename("..\\..\\x.mp4") == "x.mp4" and safe_filename("...") == "recording"
