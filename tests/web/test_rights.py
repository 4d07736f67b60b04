"""Who may see and change what, over HTTP and in a real browser, with a users file of every role:

- vera: viewer, group "staff"; otto: viewer, group "outsiders" (sees only public recordings);
- eddie: editor, group "staff"; bea: editor, group "board"; ada: admin;
- carol: viewer, used only to be locked out by failed sign-ins.

The index is a copy of the web tests' archive (a public phone call, a "board" meeting video)
plus a recording restricted to "hr" whose ingest failed (a file that is not media). The LLM is
tests/fake_openai.py standing in for a remote OpenAI-compatible API; everything else is real.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from tests.conftest import REPO  # noqa: E402
from clipcite.ui.web.render import NO_CHANGE_RIGHT, NO_UPLOAD_RIGHT  # noqa: E402
from tests.web.helpers import (  # noqa: E402
    SCREENS, Running, choose, cut, free_port, left_in_uploads, settings_for, sign_in)

PASSWORD = "correct horse"
USERS = {"vera": ("viewer", ["staff"]), "otto": ("viewer", ["outsiders"]),
         "eddie": ("editor", ["staff"]), "bea": ("editor", ["board"]), "ada": ("admin", []),
         "carol": ("viewer", ["staff"])}
# Words that only the restricted recordings hold: none may reach a user outside their groups.
BOARD_WORDS = ("Falcon", "Board meeting", "Dana Whitfield", "4417")
HR_WORDS = ("HR memo",)


@pytest.fixture(scope="module")
def team(archive, fake, tmp_path_factory) -> Iterator[dict]:
    from clipcite.ingestion.batch import BatchOptions, run_batch
    from clipcite.retrieval.index import Index
    from clipcite.ui.users import hash_password, load_users
    from clipcite.ui.web.app import create_app

    root = tmp_path_factory.mktemp("team")
    index_dir = root / "index"
    shutil.copytree(archive["index"], index_dir)
    broken = root / "HR memo.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))  # not a playable file
    index = Index(index_dir)
    out = run_batch([broken], index, BatchOptions(groups=["hr"]))
    assert out[0].status == "failed", out
    index.catalog.close()
    hashed = hash_password(PASSWORD)
    users_file = root / "users.json"
    users_file.write_text(json.dumps({"users": {
        name: {"password_hash": hashed, "role": role, "groups": groups}
        for name, (role, groups) in USERS.items()}}))
    settings = dataclasses.replace(settings_for(archive, fake.base_url), index_dir=index_dir)
    app = create_app(settings, load_users(users_file), library_dir=root / "uploads")
    with Running(app, free_port()) as running:
        yield {"url": running.url, "app": app, "hr": out[0].media_id, "board": archive["board"],
               "call": archive["call"], "root": root}


@contextmanager
def signed_in(team: dict, user: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=team["url"], timeout=120) as http:
        r = http.post("/login", data={"username": user, "password": PASSWORD})
        assert r.status_code == 200, (user, r.status_code, r.text)
        yield http


def call(http: httpx.Client, api: str, data: list) -> str:
    """One Gradio API call; the whole event stream as text (its errors included)."""
    r = http.post(f"/gradio_api/call/{api}", json={"data": data})
    if r.status_code != 200:
        return f"HTTP {r.status_code} {r.text}"
    return http.get(f"/gradio_api/call/{api}/{r.json()['event_id']}").text


def upload_file(http: httpx.Client, path: Path) -> dict:
    """Puts a file in Gradio's upload folder, as the page does before an upload event."""
    with path.open("rb") as f:
        r = http.post("/gradio_api/upload", files={"files": (path.name, f, "audio/wav")})
    assert r.status_code == 200, r.text
    return {"path": r.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}


def endpoints(http: httpx.Client) -> dict[str, list[dict]]:
    """Every named Gradio endpoint of the app and the components it takes."""
    config = http.get("/config").json()
    components = {c["id"]: c for c in config["components"]}
    return {d["api_name"]: [components[i] for i in d["inputs"]]
            for d in config["dependencies"] if d.get("api_name")}


def crafted(inputs: list[dict], media_id: str) -> list:
    """Inputs for an endpoint that name a restricted recording wherever one can be named."""
    values = {"chatbot": [], "multimodaltextbox": {"text": "What is the Falcon deal room "
                                                           "extension?", "files": []},
              "file": None, "datetime": None, "timer": None, "state": media_id,
              "dropdown": media_id, "textbox": "Falcon", "number": 0}
    return [values.get(c["type"], media_id) for c in inputs]


def test_no_route_endpoint_or_message_leaks_restricted_recordings(team, tmp_path):
    """An outsider and a user of another group walk every route and every Gradio endpoint,
    naming the board recording and the failed hr recording: nothing of either comes back."""
    restricted = {"board": BOARD_WORDS, "hr": HR_WORDS}
    for user in ("otto", "vera"):
        with signed_in(team, user) as http:
            for which, words in restricted.items():
                media_id = team[which]
                for route in (f"/media/{media_id}", f"/thumb/{media_id}?t=1",
                              f"/captions/{media_id}.vtt",
                              *(f"/export/{media_id}.{fmt}" for fmt in ("srt", "vtt", "txt",
                                                                         "rttm"))):
                    r = http.get(route)
                    assert r.status_code == 404, (user, route, r.status_code)
                assert http.head(f"/media/{media_id}").status_code == 404
                for api, inputs in endpoints(http).items():
                    out = call(http, api, crafted(inputs, media_id))
                    leaked = [w for w in words if w.lower() in out.lower()]
                    assert not leaked, (user, api, leaked, out[-400:])
            for route in ("/openapi.json", "/docs", "/gradio_api/openapi.json", "/monitoring",
                          "/monitoring/summary", "/gradio_api/monitoring/summary"):
                assert http.get(route).status_code == 404, (user, route)
    with httpx.Client(base_url=team["url"], timeout=60) as anonymous:
        for route in (f"/media/{team['call']}", f"/captions/{team['call']}.vtt",
                      "/openapi.json", "/config", "/gradio_api/info"):
            r = anonymous.get(route)
            assert r.status_code in (401, 403, 404), (route, r.status_code)
            assert "Phone call" not in r.text
    with signed_in(team, "ada") as http:  # the admin sees the restricted ones and the API
        assert http.get(f"/media/{team['board']}").status_code == 200
        assert http.get("/gradio_api/openapi.json").status_code == 200
        listed = call(http, "refresh", [])
        assert "HR memo" in listed and "Board meeting" in listed


def test_roles_decide_who_changes_the_library(team, tmp_path):
    """A viewer changes nothing; an editor adds recordings for their group and changes only
    recordings all of whose groups are theirs; an admin changes any. Each upload leaves nothing
    in Gradio's upload folder; each person's Library messages are their own. The page's
    handlers call these same WebContext methods; Gradio itself refuses a hand-made request
    naming a recording the page did not offer (the walk above)."""
    clip = cut(REPO.parent / "shared" / "media" / "sample.wav", tmp_path / "staff-memo.wav",
               12.5, 5.5)
    ctx = team["app"].state.clipcite
    catalog = ctx.reader.catalog
    public = catalog.get(team["call"])

    def uploaded() -> str:
        with httpx.Client(base_url=team["url"], timeout=60) as http:
            http.post("/login", data={"username": "vera", "password": PASSWORD})
            return upload_file(http, clip)["path"]

    refused = ctx.add_uploads("vera", [uploaded()])
    assert refused == [(False, NO_UPLOAD_RIGHT)]
    assert not left_in_uploads("staff-memo.wav")
    assert not (team["root"] / "uploads" / "staff-memo.wav").exists()
    for kind in ("reingest", "delete"):
        assert ctx.change("vera", kind, team["call"]) == (False, NO_CHANGE_RIGHT)
    assert not ctx.may_change("vera", public)  # renaming speakers asks the same

    temp = uploaded()
    assert ctx.add_uploads("eddie", [temp])[-1][0]
    assert not left_in_uploads("staff-memo.wav")  # the library has its own copy
    with signed_in(team, "otto") as http:  # someone who learnt the temporary path: nothing
        assert http.get(f"/gradio_api/file={temp}").status_code in (403, 404)
    ctx.ingester.wait_idle(300)
    memo = next(r for r in catalog.all() if r.title == "Staff memo")
    assert memo.groups == ["staff"] and memo.searchable
    assert ctx.change("eddie", "delete", team["call"]) == (False, NO_CHANGE_RIGHT)
    assert ctx.change("eddie", "reingest", memo.media_id)[0]  # his group's recording
    ctx.ingester.wait_idle(300)
    assert catalog.get(memo.media_id).ingested_at > memo.ingested_at
    assert any("staff-memo.wav” is ready" in m for m in ctx.progress("eddie").messages)
    assert not any("staff-memo" in m for m in ctx.progress("vera").messages)  # his, not hers
    assert ctx.change("bea", "delete", memo.media_id) == \
        (False, "That recording is no longer in the library.")  # not hers to see
    assert ctx.may_change("bea", catalog.get(team["board"]))  # her group's: she may
    assert ctx.change("ada", "delete", memo.media_id)[0]  # the admin may change any
    ctx.ingester.wait_idle(120)
    assert catalog.get(memo.media_id) is None and catalog.get(team["call"]) is not None


def test_viewer_and_editor_pages_offer_only_their_rights(team, browser):
    """Each page offers only its person's rights, and what they try anyway is refused in a
    sentence (the server checks every action again)."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    for user, can_add in (("vera", False), ("eddie", True)):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        sign_in(page, team["url"], user, PASSWORD)
        page.get_by_role("tab", name="Library").click()
        page.locator("#cc-library").wait_for()
        page.locator("#cc-pick").wait_for()
        assert page.locator("#cc-add").is_visible() is can_add, user
        assert page.locator("#cc-delete").is_visible() is can_add, user
        if not can_add:
            assert "may search and play recordings but not add them" in \
                page.locator("#cc-rights").inner_text()
        page.screenshot(path=str(SCREENS / f"library-{user}.png"), full_page=True)
        page.goto(f"{team['url']}/?recording={team['call']}")
        page.locator("#cc-rec-lines .cc-line").first.wait_for(timeout=60_000)
        assert page.locator("#cc-rec-rename").is_visible() is can_add, user  # naming speakers
        if can_add:
            # An editor of "staff" tries to name a speaker of the public call, and to delete
            # it: both are for admins, and both are refused in words.
            page.locator("#cc-rec-speaker input").click()
            page.locator("#cc-rec-speaker [role=option]").first.click()
            page.locator("#cc-rec-name textarea, #cc-rec-name input").first.fill("Eddie was here")
            page.locator("#cc-rec-rename").click()
            refusal = page.get_by_text("may not change this recording")
            refusal.first.wait_for(timeout=15_000)
            page.locator("[data-testid='toast-body'] button, .toast-close").first.click()
            refusal.first.wait_for(state="hidden", timeout=30_000)
            page.get_by_role("tab", name="Library").click()
            choose(page, "cc-pick", "Phone call")
            page.once("dialog", lambda dialog: dialog.accept())
            page.locator("#cc-delete").click()
            refusal.first.wait_for(timeout=15_000)
        context.close()
    ctx = team["app"].state.clipcite
    assert ctx.reader.catalog.get(team["call"]) is not None
    assert all(sp.shown != "Eddie was here"
               for sp in ctx.archive.view(team["call"], None).speakers)


def test_sign_in_attempts_are_limited(team):
    """Five wrong passwords for one name, then even the right one waits; other names from the
    same address still sign in."""
    with httpx.Client(base_url=team["url"], timeout=60) as http:
        for _ in range(5):
            r = http.post("/login", data={"username": "carol", "password": "guess"})
            assert r.status_code == 400
        r = http.post("/login", data={"username": "carol", "password": PASSWORD})
        assert r.status_code == 429 and "Too many failed sign-ins" in r.json()["detail"]
        assert int(r.headers["retry-after"]) > 60
    with signed_in(team, "vera"):
        pass


def test_captions_escape_speaker_names(team):
    """A speaker named like markup stays text in the WebVTT captions other players read."""
    from clipcite.retrieval.index import Index
    from clipcite.retrieval import tools

    index = Index(team["root"] / "index")
    rec = index.catalog.get(team["call"])
    label = tools.speakers(index, rec)[0].label
    tools.rename_speaker(index, rec, label, "Eve <img src=x onerror=alert(1)> & co")
    index.catalog.close()
    with signed_in(team, "vera") as http:
        text = http.get(f"/captions/{team['call']}.vtt").text
    assert "<img" not in text and "<v Eve &lt;img src=x onerror=alert(1)&gt; &amp; co>" in text


def test_a_signed_out_page_says_so(team, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, team["url"], "vera", PASSWORD)
    context.clear_cookies()  # as when signed out in another tab, or the sign-in expired
    box = page.locator("#cc-question textarea")
    box.fill("Where is Sheila from?")
    box.press("Enter")
    page.locator("#cc-signed-out").wait_for(timeout=30_000)
    assert "You are signed out" in page.locator("#cc-signed-out").inner_text()
    context.close()
