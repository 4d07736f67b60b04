"""The web app (`clipcite serve`) in a real browser: Debian's chromium driven by Playwright.

The app runs in this process (uvicorn in a thread) on 127.0.0.1 over a small real index: the
phone call from ../shared/media/sample.wav (two speakers, told apart at ingest; tag "calls",
recorded 2023), open to everyone, and a board meeting video (a spoken text over one slide; tag
"finance", recorded 2024) restricted to the group "board". The LLM is tests/fake_openai.py: it
stands in for a remote OpenAI-compatible LLM API, which cannot be reached from this machine;
search, citations, access groups, filters, thumbnails, captions, downloads, speaker names and
media serving are all real. Screenshots go to tests/artifacts/screens.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from tests.web.helpers import (  # noqa: E402
    ANSWER, answer_chips, answered, AROUND_ROUTER, ask, attach, choose, cut, DEAL_ROOM_ROUTER,
    EXAMPLES_SHOWN, fetch_captions, last_answer, last_bot, left_in_uploads, library_shows,
    LIMIT_MB, open_filters, options_of, play_chip, played_from, prompts_since, recording_lines,
    ROUTER, SCREENS, send, sign_in, speakers_shown)


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

    player = play_chip(page, chip)
    assert abs(player["t"] - start) <= 1.0, player
    assert f"/media/{archive['call']}" in player["src"] and player["d"] > 20
    assert "Phone call · 00:" in page.locator("#cc-player-title").inner_text()
    assert "sheila" in page.locator("#cc-player-text").inner_text().lower()
    assert not page.locator("#cc-player-thumb").is_visible()  # speech only: no picture
    assert page.evaluate("() => document.querySelector('#cc-player track').getAttribute('src')")\
        == f"captions/{archive['call']}.vtt"
    page.wait_for_function("() => document.querySelector('#cc-player track').readyState === 2",
                           timeout=15_000)  # the captions loaded
    page.screenshot(path=str(SCREENS / "player.png"), full_page=True)
    link = page.locator("#cc-player-open").get_attribute("href")
    assert link == f"?recording={archive['call']}&t={start:.2f}", link

    # "New conversation" clears the chat; the next question starts without history.
    page.locator("#cc-new").click()
    page.wait_for_function("() => !document.querySelector('#cc-chat .cc-chip')")


def test_slide_citation_shows_a_thumbnail(open_app, fake, page, archive):
    """A moment found on a slide plays in the video and shows that frame beside its text."""
    fake.replies, fake.deltas = [DEAL_ROOM_ROUTER], ["The Falcon deal room is on extension "
                                                     "4417 [1]."]
    page.goto(open_app.url)
    ask(page, "what is the extension of the falcon deal room?")
    answered(page)
    chip = page.locator("#cc-chat .cc-chip").first
    assert chip.get_attribute("name") == archive["board"], last_answer(page)
    start, _, kind, shot = chip.get_attribute("value").split("|")
    assert kind == "video" and shot != "", chip.get_attribute("value")

    player = play_chip(page, chip)
    assert abs(player["t"] - float(start)) <= 1.0, player
    assert f"/media/{archive['board']}" in player["src"]
    thumb = page.locator("#cc-player-thumb")
    thumb.wait_for(state="visible")
    page.wait_for_function("() => document.getElementById('cc-player-thumb').naturalWidth > 0",
                           timeout=15_000)
    assert f"/thumb/{archive['board']}?t=" in thumb.evaluate("i => i.src")
    said = chip.get_attribute("title")  # the cited text, shown beside the thumbnail
    shown = page.locator("#cc-player-text").inner_text()
    assert said and said in shown, (said, shown, page.locator("#cc-player-title").inner_text())
    page.wait_for_timeout(500)  # let the video paint its first frame for the screenshot
    page.screenshot(path=str(SCREENS / "chat-slide.png"), full_page=True)


def test_attached_clip_with_a_question_cites_its_moment(open_app, fake, page, archive, media,
                                                        tmp_path):
    """A clip cut from the phone call, attached with a question: the answer cites the call
    where the clip was said, and the model was told what the clip says."""
    clip = cut(media / "sample.wav", tmp_path / "sheila-clip.m4a", 12.5, 5.5)
    fake.replies = [AROUND_ROUTER]
    fake.deltas = ["Diane is in New Jersey and Sheila is in Texas, ", "originally from "
                   "Chicago [1]."]
    page.goto(open_app.url)
    page.get_by_text("Try asking").wait_for()
    page.get_by_text(EXAMPLES_SHOWN, exact=True).click()  # the examples still fill the box
    page.wait_for_function("t => document.querySelector('#cc-question textarea').value === t",
                           arg=EXAMPLES_SHOWN)
    attach(page, clip)
    sent = len(fake.requests)
    send(page, "what was said around this?")
    assert "Attached: sheila-clip.m4a" in page.locator("#cc-chat").inner_text()
    assert "Sheila is in Texas" in last_answer(page), last_answer(page)
    chips = answer_chips(page)
    assert chips and chips[0]["media"] == archive["call"], chips
    assert abs(chips[0]["start"] - 12.5) <= 3.0, chips  # where the clip was cut from
    prompts = prompts_since(fake, sent)
    assert "attached audio clip" in prompts and "Diane in New Jersey" in prompts, prompts
    assert not left_in_uploads("sheila-clip.m4a")  # the upload was removed once read
    page.screenshot(path=str(SCREENS / "chat-attach-clip.png"), full_page=True)


def test_attached_screenshot_alone_finds_its_slide(open_app, fake, page, archive, tmp_path):
    """A screenshot of the board meeting's slide, sent without a question: the moments it
    matches are the answer (no language model needed), the slide's recording first."""
    shot = tmp_path / "falcon-shot.png"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", "3", "-i",
                    str(archive["root"] / "files" / "Board meeting.mp4"), "-frames:v", "1",
                    str(shot)], check=True)
    page.goto(open_app.url)
    page.get_by_text("Try asking").wait_for()
    attach(page, shot)
    sent = len(fake.requests)
    page.locator("#cc-ask").click()
    answered(page)
    text = last_answer(page)
    assert "On “falcon-shot.png” I read:" in text and "Falcon" in text, text
    assert "It matches these moments" in text, text
    chips = answer_chips(page)
    assert chips and chips[0]["media"] == archive["board"] and chips[0]["kind"] == "video"
    assert len(fake.requests) == sent  # found moments, not a generated answer
    player = play_chip(page, last_bot(page).locator(".cc-chip").first)
    assert f"/media/{archive['board']}" in player["src"]
    page.locator("#cc-player-thumb").wait_for(state="visible")
    assert not left_in_uploads("falcon-shot.png")
    page.wait_for_timeout(500)  # let the video paint its first frame for the screenshot
    page.screenshot(path=str(SCREENS / "chat-attach-screenshot.png"), full_page=True)


def test_bad_attachments_get_a_sentence(open_app, fake, page, tmp_path):
    """Not a clip or picture, a broken clip, a file over the limit: one sentence each that
    names the file and says what to do; nothing is left in the upload folder."""
    notes = tmp_path / "minutes.txt"
    notes.write_text("The launch is in June.")
    broken = tmp_path / "broken-clip.m4a"
    broken.write_bytes(os.urandom(20_000))
    page.goto(open_app.url)
    page.get_by_text("Try asking").wait_for()
    sent = len(fake.requests)
    for path, expected in ((notes, "“minutes.txt” is not an audio clip or a picture, so I "
                                   "could not search by it. Attach a short recording"),
                           (broken, "I could not use “broken-clip.m4a”: not a readable audio "
                                    "or video file")):
        attach(page, path)
        send(page, "where was this said?")
        text = last_answer(page)
        assert expected in text, text
        for technical in ("Traceback", "Error", "Exception", "/tmp"):
            assert technical not in text, text
        assert not left_in_uploads(path.name)
    assert len(fake.requests) == sent  # nothing was asked of the model

    big = tmp_path / "Town hall clip.wav"
    big.write_bytes(b"RIFF" + os.urandom((LIMIT_MB + 1) * 1024 * 1024))
    page.locator("#cc-question input[type=file]").set_input_files(str(big))
    page.wait_for_function("() => document.getElementById('cc-attach-note-text')"
                           ".textContent.length > 0", timeout=15_000)
    note = page.locator("#cc-attach-note-text").inner_text()
    assert "“Town hall clip.wav” is 6.0 MB, more than the 5 MB allowed, so I could not search " \
           "by it" in note, note
    assert "ask your administrator to raise the upload limit" in note
    page.screenshot(path=str(SCREENS / "chat-attach-bad.png"), full_page=True)

    # Past the browser (as if it had reached the upload folder), the server refuses it too, in
    # the same words; a file that is not an upload is never read.
    from gradio.utils import get_upload_folder

    from clipcite.ui.web.attachments import AttachmentError, check_attachment, discard_upload

    uploaded = Path(get_upload_folder()) / "clipcite-test-big" / big.name
    uploaded.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(big, uploaded)
    try:
        with pytest.raises(AttachmentError, match="more than the 5 MB allowed, so I could not "
                                                  "search by it"):
            check_attachment(uploaded, LIMIT_MB)
    finally:
        discard_upload(uploaded)
    assert not uploaded.parent.exists()
    with pytest.raises(AttachmentError, match="did not arrive"):
        check_attachment(big, LIMIT_MB)
    discard_upload(big)
    assert big.is_file()  # outside the uploads: never deleted


def test_chat_filters_limit_the_search(open_app, fake, page, archive):
    """Recordings, tags and dates chosen on the chat page decide what the answer may use."""
    fake.replies, fake.deltas = [ROUTER], ANSWER
    cases = [("recording", "Board meeting"), ("tag", "calls"), ("from", "2024-01-01"),
             ("until", "2023-12-31")]
    for kind, value in cases:
        page.goto(open_app.url)
        open_filters(page)
        if kind == "recording":
            choose(page, "cc-only-recordings", value)
        elif kind == "tag":
            choose(page, "cc-only-tags", value)
        else:
            box = page.locator(f"#cc-{kind} input").first
            box.fill(value)
            box.press("Enter")
        sent = len(fake.requests)
        ask(page, "where is sheila from?")
        answered(page)
        # What the model read and what the page says: when nothing found is about the
        # question, the model is not asked and the reply names the closest moments instead.
        prompts = prompts_since(fake, sent) + page.locator("#cc-chat").inner_text()
        expect_board = (kind, value) in (("recording", "Board meeting"), ("from", "2024-01-01"))
        assert ("Board meeting" in prompts) == expect_board, (kind, prompts)
        assert ("Phone call" in prompts) != expect_board, (kind, prompts)
        chips = page.locator("#cc-chat .cc-chip").evaluate_all(
            "cs => cs.map(c => c.getAttribute('name'))")
        assert set(chips) <= {archive["board"] if expect_board else archive["call"]}
        if kind == "recording":
            page.screenshot(path=str(SCREENS / "filters.png"), full_page=True)

    # A mistyped date is named in a plain sentence instead of being quietly ignored.
    page.goto(open_app.url)
    open_filters(page)
    page.locator("#cc-from input").first.fill("14/03/2024")
    sent = len(fake.requests)
    ask(page, "where is sheila from?")
    answered(page)
    assert "I could not read the date “14/03/2024” in “Recorded from”" in last_answer(page)
    assert "for example 2024-03-31" in last_answer(page) and len(fake.requests) == sent

    # Nothing in the chosen dates: no LLM call, and the answer says the search was limited.
    page.goto(open_app.url)
    open_filters(page)
    for kind, value in (("from", "2025-01-01"), ("until", "2025-12-31")):
        page.locator(f"#cc-{kind} input").first.fill(value)
        page.locator(f"#cc-{kind} input").first.press("Enter")
    sent = len(fake.requests)
    ask(page, "where is sheila from?")
    answered(page)
    assert "Only the recordings chosen under “Limit the search” were searched" in \
        last_answer(page)
    assert not [r for r in fake.requests[sent:] if r["body"].get("stream")]


def test_restricted_user_never_sees_the_board_recording(staff_app, fake, browser, archive):
    board, call = archive["board"], archive["call"]
    with httpx.Client(base_url=staff_app.url) as http:  # not signed in: nothing at all
        assert http.get(f"/media/{call}").status_code == 404
        assert http.get(f"/thumb/{board}", params={"t": 3}).status_code == 404
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
        prompts = "\n".join((m.get("content") or "") for r in fake.requests[sent:]
                            for m in r["body"]["messages"])
        assert "Falcon acquisition will close" not in prompts  # never reached the model
        assert "Board meeting" not in prompts
        medias = page.locator(".cc-chip").evaluate_all(
            "cs => cs.map(c => c.getAttribute('name'))")
        assert board not in medias
        assert "4417" not in page.locator("#cc-chat").inner_text()

        # The chat filters offer only what alice may see: no board recording, no board tag.
        open_filters(page)
        recordings = options_of(page, "cc-only-recordings")
        assert any("Phone call" in o for o in recordings), recordings
        assert not any("Board meeting" in o for o in recordings), recordings
        assert options_of(page, "cc-only-tags") == ["calls"]

        page.get_by_role("tab", name="Library").click()
        library_shows(page, "Phone call")
        assert "Board meeting" not in page.locator("#cc-library").inner_text()
        picks = options_of(page, "cc-pick")
        assert picks and not any("Board meeting" in o for o in picks), picks
        page.screenshot(path=str(SCREENS / "library-staff.png"), full_page=True)

        # The browser's own session: the call plays, the board recording does not exist.
        assert page.request.get(f"{staff_app.url}/media/{call}").status == 200
        assert page.request.get(f"{staff_app.url}/media/{board}").status == 404
        assert page.request.get(f"{staff_app.url}/thumb/{board}?t=3").status == 404
        # Even a hand-made request naming the board recording as a filter cannot reach it.
        from clipcite.ui.web.filters import FilterError, chat_filters

        ctx = staff_app.app.state.clipcite
        with pytest.raises(FilterError, match="no longer in the library"):
            chat_filters(ctx.groups("alice"), ctx.searchable("alice"), [board], [], None, None)
    finally:
        context.close()


def test_restricted_users_attachment_never_cites_the_board_recording(staff_app, fake, browser,
                                                                     archive, tmp_path):
    """alice (group "staff") attaches a clip cut from the board meeting: neither the answer to
    her question nor the moments found for the clip alone cite it or reach the model."""
    board = archive["board"]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        sign_in(page, staff_app.url, "alice", "wonderland")
        clip = cut(archive["root"] / "work" / "board.wav", tmp_path / "falcon-clip.m4a", 0, 6)
        fake.replies = [AROUND_ROUTER]
        fake.deltas = ["The Falcon acquisition closes in June [1]."]
        sent = len(fake.requests)
        attach(page, clip)
        send(page, "what was said around this?")
        prompts = prompts_since(fake, sent)
        assert "Board meeting" not in prompts and "Dana Whitfield" not in prompts
        assert board not in {c["media"] for c in answer_chips(page)}

        attach(page, clip)  # the clip alone: only what alice may see is listed
        send(page)
        assert board not in {c["media"] for c in answer_chips(page)}
        assert "Board meeting" not in last_answer(page) and "4417" not in last_answer(page)
        assert "I heard:" in last_answer(page)
    finally:
        context.close()


def test_recording_page_plays_lines_with_captions(open_app, page, archive):
    """Opened from the Library: the whole transcript, captions, a line plays from its start."""
    call, board = archive["call"], archive["board"]
    page.goto(open_app.url)
    page.get_by_role("tab", name="Library").click()
    library_shows(page, "Phone call")
    choose(page, "cc-pick", "Phone call")
    page.locator("#cc-open").click()
    lines = recording_lines(page)
    n = lines.count()
    assert n >= 4 and "Phone call" in page.locator("#cc-rec-title").inner_text()
    assert set(speakers_shown(page)) == {"Speaker 1", "Speaker 2"}, speakers_shown(page)

    # Captions: the same lines as WebVTT, speakers as voices, loaded by the player's track.
    cues = fetch_captions(page.request, open_app.url, call)
    assert len(cues) == n and {c.voice for c in cues} == {"Speaker 1", "Speaker 2"}
    page.wait_for_function("""n => { const v = document.getElementById('cc-rec-player');
        const t = v.querySelector('track[kind=captions][default]');
        return t && t.readyState === 2 && v.textTracks[0].cues.length === n; }""", arg=n,
                           timeout=15_000)

    # A click on a line plays from its start; that line becomes the highlighted one.
    line = lines.nth(2)
    start = float(line.get_attribute("data-start"))
    player = played_from(page, line)
    assert abs(player["t"] - start) <= 1.0, (player, start)
    assert f"/media/{call}" in player["src"]
    page.wait_for_function("s => document.querySelector('#cc-rec-lines .cc-current')"
                           "?.getAttribute('data-start') === s", arg=f"{start:.2f}")
    said = line.locator(".cc-line-text").inner_text()  # sound only: the caption is drawn here
    page.wait_for_function("s => document.querySelector('#cc-rec-box .cc-caption').innerText"
                           ".includes(s)", arg=said, timeout=15_000)
    assert page.locator("#cc-rec-box .cc-caption").inner_text().startswith("Speaker ")
    page.screenshot(path=str(SCREENS / "recording-call.png"), full_page=True)

    # The board meeting, chosen in the page's own list: its slide sits on the timeline.
    choose(page, "cc-rec-pick", "Board meeting")
    page.wait_for_function("() => document.getElementById('cc-rec-title')?.innerText"
                           ".includes('Board meeting')")
    recording_lines(page)
    slide = page.locator("#cc-rec-timeline .cc-slide").first
    slide.wait_for()
    assert f"thumb/{board}?t=" in slide.locator("img").get_attribute("src")
    page.wait_for_function("() => document.querySelector('#cc-rec-timeline img')"
                           ".naturalWidth > 0", timeout=15_000)
    assert "Falcon acquisition" in slide.get_attribute("title")
    links = page.locator(".cc-download").evaluate_all("as => as.map(a => a.getAttribute('href'))")
    assert links == [f"export/{board}.{f}" for f in ("srt", "vtt", "txt", "rttm")]
    last = recording_lines(page).last
    player = played_from(page, last)
    assert abs(player["t"] - float(last.get_attribute("data-start"))) <= 1.0, player
    page.wait_for_timeout(500)  # the video paints the frame and its caption
    page.screenshot(path=str(SCREENS / "recording.png"), full_page=True)  # docs/recording.png


def test_recording_page_renames_speakers(open_app, page, archive, run_cli):
    """Speaker 2 gets a name on the page: the transcript, captions and CLI all show it; a
    suggested name is confirmed with one click."""
    call, board = archive["call"], archive["board"]
    page.goto(f"{open_app.url}/?recording={call}&t=5")  # a citation's "open" link
    recording_lines(page)
    assert "#t=5.00" in page.evaluate("() => document.getElementById('cc-rec-player').src")
    before = speakers_shown(page)
    assert "Speaker 2" in before, before
    choose(page, "cc-rec-speaker", "Speaker 2")
    page.locator("#cc-rec-name textarea, #cc-rec-name input").first.fill("Sheila")
    page.locator("#cc-rec-rename").click()
    page.wait_for_function("() => [...document.querySelectorAll('#cc-rec-lines .cc-line-who')]"
                           ".some(e => e.innerText === 'Sheila')", timeout=30_000)
    after = speakers_shown(page)
    assert after == ["Sheila" if w == "Speaker 2" else w for w in before], (before, after)
    assert "Sheila" in page.locator("#cc-rec-speakers").inner_text()
    page.wait_for_function("() => document.querySelector('#cc-rec-player track')"
                           ".getAttribute('src').includes('?v=')")  # the captions reloaded
    assert "Sheila" in {c.voice for c in fetch_captions(page.request, open_app.url, call)}
    found = json.loads(run_cli("speakers", call, "--json", "--index",
                               str(archive["index"])).stdout)
    named = {s["label"]: (s["name"], s["status"]) for s in found["speakers"]}
    assert named["Speaker 2"] == ("Sheila", "confirmed"), named
    assert "Sheila" in {t["speaker"] for t in found["turns"]}

    # A name already used by the other speaker is refused with a sentence.
    choose(page, "cc-rec-speaker", "Speaker 1")
    page.locator("#cc-rec-name textarea, #cc-rec-name input").first.fill("sheila")
    page.locator("#cc-rec-rename").click()
    page.get_by_text("already names another speaker", exact=False).first.wait_for()
    assert speakers_shown(page) == after
    page.screenshot(path=str(SCREENS / "recording-renamed.png"), full_page=True)

    # Ingestion suggests a name when a voice matches; here the suggestion is written directly.
    from clipcite.retrieval.index import CATALOG_FILE

    with sqlite3.connect(archive["index"] / CATALOG_FILE) as db:
        gen = db.execute("SELECT gen FROM recordings WHERE media_id=?", (board,)).fetchone()[0]
        assert db.execute("UPDATE speakers SET name='Dana', status='suggested', score=0.8 "
                          "WHERE gen=? AND label='Speaker 1'", (gen,)).rowcount == 1
    page.goto(f"{open_app.url}/?recording={board}")
    recording_lines(page)
    assert "suggested" in page.locator("#cc-rec-speakers").inner_text()
    choose(page, "cc-rec-speaker", "Dana (suggested)")
    confirm = page.locator("#cc-rec-confirm")
    confirm.wait_for()
    assert "Dana" in confirm.inner_text()
    confirm.click()
    page.wait_for_function("() => [...document.querySelectorAll('#cc-rec-lines .cc-line-who')]"
                           ".some(e => e.innerText === 'Dana')", timeout=30_000)
    found = json.loads(run_cli("speakers", board, "--json", "--index",
                               str(archive["index"])).stdout)
    assert ("Dana", "confirmed") in {(s["name"], s["status"]) for s in found["speakers"]}


def test_search_within_a_recording(open_app, page, archive):
    """The page's search finds moments of this recording only, and a moment plays there."""
    from clipcite.retrieval.filters import Filters
    from clipcite.retrieval.tools import search_all

    call, board = archive["call"], archive["board"]
    everywhere = open_app.app.state.clipcite.engine.call(search_all, "Sheila from Texas", 10,
                                                         Filters())
    assert {m.media_id for m in everywhere} == {call, board}  # both recordings say it
    for media_id in (call, board):
        page.goto(f"{open_app.url}/?recording={media_id}")
        recording_lines(page)
        box = page.locator("#cc-rec-query textarea, #cc-rec-query input").first
        box.fill("Sheila from Texas")
        box.press("Enter")
        moments = page.locator("#cc-rec-found .cc-found")
        moments.first.wait_for(timeout=60_000)
        assert set(moments.evaluate_all("bs => bs.map(b => b.dataset.media)")) == {media_id}
        first = moments.first
        player = played_from(page, first)
        assert abs(player["t"] - float(first.get_attribute("data-start"))) <= 1.0, player
        if media_id == call:
            page.screenshot(path=str(SCREENS / "recording-search.png"), full_page=True)


def test_restricted_user_cannot_open_the_board_recording(staff_app, browser, archive):
    """Page, captions and downloads of a recording outside alice's groups: 404, like a
    recording that does not exist; her own recordings work."""
    from clipcite.retrieval.filters import Filters
    from clipcite.retrieval.tools import search_all

    board, call = archive["board"], archive["call"]
    with httpx.Client(base_url=staff_app.url) as http:  # not signed in: nothing at all
        for path in (f"/captions/{call}.vtt", f"/export/{call}.srt"):
            assert http.get(path).status_code == 404, path
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        sign_in(page, staff_app.url, "alice", "wonderland")
        page.goto(f"{staff_app.url}/?recording={board}")
        page.locator("#cc-rec-box.cc-missing").wait_for()
        assert "This recording is not available" in page.locator("#cc-rec-box").inner_text()
        page.wait_for_timeout(1000)  # nothing replaces the note
        assert page.locator("#cc-rec-box.cc-missing").count() == 1
        assert page.locator("#cc-rec-player").count() == 0
        assert page.locator("#cc-rec-lines .cc-line").count() == 0
        recs = options_of(page, "cc-rec-pick")
        assert any("Phone call" in o for o in recs) and not any("Board" in o for o in recs)
        page.screenshot(path=str(SCREENS / "recording-forbidden.png"), full_page=True)
        for path in [f"/captions/{board}.vtt", *(f"/export/{board}.{f}"
                                                 for f in ("srt", "vtt", "txt", "rttm"))]:
            r = page.request.get(staff_app.url + path)
            assert r.status == 404 and b"Falcon" not in r.body(), path
        assert page.request.get(f"{staff_app.url}/export/{call}.txt").status == 200
        fetch_captions(page.request, staff_app.url, call)

        # Past the page: the server-side calls refuse the board recording for alice too.
        ctx = staff_app.app.state.clipcite
        alice = ctx.groups("alice")
        assert ctx.archive.view(board, alice) is None and ctx.archive.file(board, alice, "vtt") \
            is None
        with pytest.raises(LookupError):
            ctx.archive.rename(board, alice, "Speaker 1", "Eve")
        assert ctx.engine.call(search_all, "Falcon acquisition", 10,
                               Filters(groups=alice, recordings=(board,))) == []
    finally:
        context.close()


def test_chat_answers_while_a_long_file_is_ingested(open_app, fake, page, media, tmp_path):
    """A four-minute upload is still being read when the answer to a question arrives."""
    long = tmp_path / "Long meeting.mp3"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "7", "-i",
                    str(media / "sample.wav"), "-c:a", "libmp3lame", "-b:a", "32k", str(long)],
                   check=True)
    ctx = open_app.app.state.clipcite
    fake.replies, fake.deltas = [ROUTER], ANSWER
    page.goto(open_app.url)
    page.get_by_role("tab", name="Library").click()
    page.locator("#cc-upload input[type=file]").set_input_files(str(long))
    page.locator("#cc-add").click()
    page.wait_for_function("() => (document.querySelector('#cc-progress.cc-busy')?.innerText"
                           " || '').includes('Long meeting')", timeout=60_000)
    assert page.locator("#cc-progress progress").is_visible()

    page.get_by_role("tab", name="Ask").click()
    asked = time.time()
    ask(page, "where is sheila from?")
    page.locator("#cc-chat .cc-chip").first.wait_for(timeout=120_000)
    answered(page)
    answered_at = time.time()
    state = ctx.ingester.state
    assert state.running and state.current == "Long meeting.mp3", state  # still reading it
    assert "Sheila is in Texas" in last_answer(page)
    page.screenshot(path=str(SCREENS / "chat-while-ingesting.png"), full_page=True)
    page.get_by_role("tab", name="Library").click()
    page.screenshot(path=str(SCREENS / "library-busy.png"), full_page=True)

    ctx.ingester.wait_idle(600)
    rec = next(r for r in ctx.reader.catalog.all() if r.title == "Long meeting")
    assert rec.searchable and rec.ingested_at > answered_at, (rec, asked, answered_at)
    ctx.ingester.submit("delete", None, media_id=rec.media_id)  # leave the archive as it was
    ctx.ingester.wait_idle(120)


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


def test_upload_limit_is_explained(open_app, page, tmp_path):
    """A file over the configured limit is refused in the browser with a plain sentence, and
    the server refuses it too."""
    big = tmp_path / "Town hall.wav"
    big.write_bytes(b"RIFF" + os.urandom((LIMIT_MB + 1) * 1024 * 1024))
    page.goto(open_app.url)
    page.get_by_role("tab", name="Library").click()
    assert f"up to {LIMIT_MB} MB each" in page.locator("#cc-upload").inner_text()
    page.locator("#cc-upload input[type=file]").set_input_files(str(big))
    note = page.locator("#cc-upload-note-text")
    page.wait_for_function("() => document.getElementById('cc-upload-note-text')"
                           ".textContent.length > 0", timeout=15_000)
    text = note.inner_text()
    assert "“Town hall.wav” is 6.0 MB, more than the 5 MB allowed, so it was not added" in text
    assert "ask your administrator to raise the upload limit" in text
    page.wait_for_timeout(1500)  # Gradio's own notice would be up by now
    assert page.get_by_text("exceed the maximum allowed size", exact=False).count() == 0
    assert not page.locator("#cc-upload .error:visible", has_text="Error").count()
    page.screenshot(path=str(SCREENS / "upload-too-big.png"), full_page=True)  # one message
    page.locator("#cc-add").click()
    page.get_by_text("Choose one or more audio or video files first").first.wait_for()
    ctx = open_app.app.state.clipcite
    assert not any("town" in p.name.lower() for p in ctx.library_dir.iterdir())
    with httpx.Client(base_url=open_app.url) as http:  # past the browser: the server says no
        r = http.post("/gradio_api/upload", files={"files": ("Town hall.wav", big.read_bytes())})
        assert r.status_code == 413, (r.status_code, r.text)


def test_unreachable_llm_gives_a_plain_message(llm_down_app, page):
    page.goto(llm_down_app.url)
    ask(page, "where is sheila from?")
    answered(page)
    text = last_answer(page)
    assert "cannot be reached right now" in text and "try again" in text, text
    assert "administrator" in text
    for technical in ("Traceback", "Error", "127.0.0.1", "http", "Exception"):
        assert technical not in text, text
    page.screenshot(path=str(SCREENS / "llm-down.png"), full_page=True)


def test_closing_the_page_stops_its_answer(open_app, fake, browser):
    """A slow answer stops when its page is closed: the model is not kept writing for nobody,
    and the next person's question is answered without waiting for it."""
    fake.replies, fake.deltas, fake.delta_delay = [ROUTER], ["Sheila is in Texas [1]. "] * 200, \
        0.05
    try:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(open_app.url)
        ask(page, "Where is Sheila from?")
        page.wait_for_function("() => (document.querySelector('#cc-chat')?.innerText || '')"
                               ".includes('Sheila is in Texas')", timeout=60_000)
        page.close(run_before_unload=True)
        context.close()
        time.sleep(3)
        sent = fake.chunks_sent
        time.sleep(2)
        assert fake.chunks_sent == sent, "the model kept streaming for a closed page"
        assert sent < 150
    finally:
        fake.delta_delay = 0.0
    fake.replies, fake.deltas = [ROUTER], ANSWER
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(open_app.url)
    ask(page, "Where is Sheila from?")
    answered(page, timeout=60_000)
    assert "Chicago" in last_answer(page)
    context.close()
