"""A recording imported from a transcript alone (a real QMSum excerpt, tests/data/
qmsum_excerpt.vtt) in the web app: its page shows the transcript and says why there is no
player, a citation of it shows the cited line instead of playing nothing, and its link opens the
transcript at the cited line. Its own small index and app; the LLM is tests/fake_openai.py,
standing in for a remote OpenAI-compatible API (none can be reached from this machine)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import pytest

from tests.conftest import REPO
from tests.web.helpers import Running, answered, ask, free_port, settings_for

EXCERPT = REPO / "tests" / "data" / "qmsum_excerpt.vtt"


@pytest.fixture(scope="module")
def transcript_app(fake, tmp_path_factory, extract_options) -> Iterator[dict]:
    from clipcite.ingestion.batch import BatchOptions, run_batch
    from clipcite.retrieval.index import Index
    from clipcite.ui.web.app import create_app

    root = tmp_path_factory.mktemp("transcript-only")
    path = shutil.copyfile(EXCERPT, root / "Remote control design.vtt")
    index = Index(root / "index")
    out = run_batch([path], index, BatchOptions(extract=extract_options))
    assert out[0].status == "indexed", out
    index.catalog.close()
    settings = settings_for({"index": root / "index"}, fake.base_url)
    app = create_app(settings, library_dir=root / "uploads")
    with Running(app, free_port()) as running:
        yield {"url": running.url, "id": out[0].media_id, "app": app}


def test_transcript_only_recording_is_read_not_played(transcript_app, fake, page):
    url, media_id = transcript_app["url"], transcript_app["id"]
    page.goto(f"{url}/?recording={media_id}&t=60")
    note = page.locator("#cc-rec-note")
    note.wait_for(timeout=60_000)
    assert "transcript only" in note.inner_text() and "Remote control design.vtt" in \
        note.inner_text()
    assert page.locator("#cc-rec-player").count() == 0  # no empty player
    current = page.locator("#cc-rec-lines .cc-current")
    current.wait_for(timeout=15_000)  # the line at 60 s is marked
    assert float(current.get_attribute("data-start")) <= 60.0
    later = page.locator("#cc-rec-lines .cc-line").nth(30)
    later.click()
    assert "cc-current" in later.get_attribute("class")

    question = "What did they say about the remote control?"
    fake.replies = [json.dumps({"intent": "answer", "question": question,
                                "queries": ["remote control"], "recording": None,
                                "speaker": None})]
    fake.deltas = ["They talked about the remote control [1]."]
    page.get_by_role("tab", name="Ask").click()
    ask(page, question)
    answered(page)
    chip = page.locator("#cc-chat .cc-chip").first
    assert chip.get_attribute("value").split("|")[2] == "text"
    chip.click()
    title = page.locator("#cc-player-title").inner_text()
    assert "a transcript only" in title, title
    assert page.locator("#cc-player").get_attribute("src") is None
    assert page.locator("#cc-player-text").inner_text().strip()  # the cited line is shown
    assert f"recording={media_id}" in page.locator("#cc-player-open").get_attribute("href")


def test_a_recording_added_in_the_web_app_gets_its_summary_prepared(transcript_app, fake,
                                                                    tmp_path):
    """After the library adds a recording, its whole-recording summary is made in the
    background and cached for its generation, so asking for it later is instant."""
    from clipcite.assistant.summary_cache import SummaryCache

    app = transcript_app["app"]
    ctx = app.state.clipcite
    done = []  # as web_summaries = true wires it, keeping the job to wait for
    ctx.ingester.on_indexed = lambda ids: done.append(ctx.engine.prepare_summaries(ids))
    fake.replies = [json.dumps({"decisions": [], "points": [1, 2], "actions": []})]
    path = shutil.copyfile(EXCERPT, ctx.library_dir / "Design review.vtt")
    ctx.ingester.submit("ingest", None, paths=[path], groups=None)
    ctx.ingester.wait_idle(300)
    assert done and done[0].result(300) == 1
    rec = next(r for r in ctx.reader.catalog.all() if r.title == "Design review")
    cached = SummaryCache(ctx.settings.index_dir).get(rec.gen)
    assert cached is not None and cached[1], cached  # an answer with its citations
