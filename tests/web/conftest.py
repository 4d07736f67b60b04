"""Fixtures of the web app tests: a small real index (the phone call from
../shared/media/sample.wav, two speakers, tag "calls", recorded 2023, open to everyone; and a board
meeting video, a spoken text over one slide, tag "finance", recorded 2024, restricted to the group
"board"), the app served in this process (uvicorn in a thread) on 127.0.0.1, and Debian's chromium
driven by Playwright. The LLM is tests/fake_openai.py: it stands in for a remote
OpenAI-compatible LLM API, which cannot be reached from this machine; search, citations, access
groups, filters, thumbnails, captions, downloads, speaker names and media serving are real."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from tests.conftest import copy_media  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402
from tests.web.helpers import (  # noqa: E402
    CHROMIUM, free_port, local_noon, Running, settings_for, SLIDE)


@pytest.fixture(scope="package")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def archive(media: Path, tmp_path_factory: pytest.TempPathFactory, extract_options) -> dict:
    from clipcite.ingestion.batch import BatchOptions, run_batch
    from clipcite.retrieval.index import Index

    from eval.fixtures import encode, render_slide
    from clipcite.ingestion.media import probe

    root = tmp_path_factory.mktemp("web")
    lib, work = root / "files", root / "work"
    work.mkdir()
    call = copy_media(media / "sample.wav", lib, "Phone call.wav")
    speech = work / "board.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(speech),
                    "The board agreed that the Falcon acquisition will close in June. "
                    "Sheila from Texas will lead the Falcon integration."], check=True)
    render_slide(*SLIDE).save(work / "falcon.png")
    length = probe(speech).duration
    board = lib / "Board meeting.mp4"
    encode(board, speech, length, [(work / "falcon.png", 0.0, length)])
    os.utime(call, (local_noon("2023-05-01"),) * 2)  # the recording date is the file's date
    os.utime(board, (local_noon("2024-03-14"),) * 2)
    from clipcite.ingestion.diarization import DiarizeOptions

    index = Index(root / "index")
    # The call has two speakers; saying so (as `clipcite ingest --speakers 2` does) keeps the
    # speaker labels of this fixture the same from run to run.
    two = dataclasses.replace(extract_options, speakers=DiarizeOptions(num_speakers=2))
    out = run_batch([call], index, BatchOptions(extract=two, tags=["calls"]))
    out += run_batch([board], index, BatchOptions(extract=extract_options, groups=["board"],
                                                  tags=["finance"]))
    assert [o.status for o in out] == ["indexed", "indexed"], out
    assert index.catalog.get(out[1].media_id).counts.get("slides", 0) > 0
    ids = {Path(o.path).stem: o.media_id for o in out}
    index.catalog.close()
    return {"root": root, "index": root / "index", "call": ids["Phone call"],
            "board": ids["Board meeting"]}


@pytest.fixture(scope="package")
def open_app(archive, fake) -> Iterator[Running]:
    """No users file: one person on their own machine, sees everything."""
    from clipcite.ui.web.app import create_app

    app = create_app(settings_for(archive, fake.base_url),
                     library_dir=archive["root"] / "uploads")
    with Running(app, free_port()) as running:
        yield running


@pytest.fixture(scope="package")
def llm_down_app(archive) -> Iterator[Running]:
    """The LLM endpoint is a localhost port nobody listens on."""
    from clipcite.ui.web.app import create_app

    closed = f"http://127.0.0.1:{free_port()}/v1"
    app = create_app(settings_for(archive, closed), library_dir=archive["root"] / "uploads-down")
    with Running(app, free_port()) as running:
        yield running


@pytest.fixture(scope="package")
def staff_app(archive, fake) -> Iterator[Running]:
    """A users file with alice in group "staff"; the board recording is for group "board"."""
    from clipcite.ui.users import hash_password, load_users
    from clipcite.ui.web.app import create_app

    users_file = archive["root"] / "users.toml"
    users_file.write_text(f'[users.alice]\npassword_hash = "{hash_password("wonderland")}"\n'
                          'groups = ["staff"]\n')
    app = create_app(settings_for(archive, fake.base_url), load_users(users_file),
                     library_dir=archive["root"] / "uploads-staff")
    with Running(app, free_port()) as running:
        yield running


@pytest.fixture(scope="package")
def browser() -> Iterator:
    import playwright.sync_api as playwright_sync

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
