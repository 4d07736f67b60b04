"""The web app's parts that need no server or browser: settings, filters, error words, file
names, host checks, users files."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
from tests.web.helpers import free_port  # noqa: E402



def test_non_loopback_host_needs_users_file(tmp_path):
    from clipcite.ui.settings import Settings
    from clipcite.ui.users import UsersFileError, hash_password, load_users, verify
    from clipcite.ui.web.app import check_host, serve
    from clipcite.ui.web.attachments import safe_filename
    from clipcite.ui.web.errors import SetupError

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


def test_settings_filters_and_error_words(tmp_path):
    from clipcite.ui.settings import Settings
    from clipcite.ui.web.errors import friendly_error
    from clipcite.ui.web.filters import FilterError, chat_filters, parse_day, still_offered

    assert Settings().upload_limit_mb == 500
    env = {"CLIPCITE_CONFIG": str(tmp_path / "none.toml"), "CLIPCITE_UPLOAD_LIMIT_MB": "12.5"}
    assert Settings.load(env).upload_limit_mb == 12.5

    assert parse_day("2024-03-14", "x") == dt.date(2024, 3, 14)
    assert parse_day("2024-03-14 00:00:00", "x") == dt.date(2024, 3, 14)
    assert parse_day(" ", "x") is None
    with pytest.raises(FilterError, match="year-month-day"):
        parse_day("14/03/2024", "Recorded from")

    class Rec:
        media_id = "abc"

    f = chat_filters(frozenset({"staff"}), [Rec()], ["abc", "zzz"], ["calls"], "2024-03-14",
                     "2024-03-14")
    assert f.groups == frozenset({"staff"}) and f.recordings == ("abc",) and f.tags == ("calls",)
    assert f.before - f.after in (23 * 3600, 24 * 3600, 25 * 3600)  # the whole day, DST or not
    with pytest.raises(FilterError, match="after"):
        chat_filters(None, [], [], [], "2024-03-15", "2024-03-14")
    assert chat_filters(None, [], None, None, None, None) == \
        type(f)(groups=None)

    class APIConnectionError(Exception):
        pass

    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as inner:
            raise APIConnectionError("Connection error.") from inner
    except APIConnectionError as e:
        assert "cannot be reached" in friendly_error(e)
    class APITimeoutError(APIConnectionError):  # as in openai: a timeout is a connection error
        pass

    assert "took too long" in friendly_error(APITimeoutError("Request timed out."))
    assert "try again" in friendly_error(RuntimeError("disk full"))
    assert still_offered(["a", "gone"], [("A (2024-01-01)", "a")]) == ["a"]
    assert still_offered(None, ["calls"]) == []


def test_roles_in_the_users_file(tmp_path):
    from clipcite.ui.users import ADMIN, EDITOR, VIEWER, User, UsersFileError, load_users

    f = tmp_path / "users.toml"
    f.write_text('[users.a]\npassword_hash = "x"\ngroups = ["hr"]\n'
                 '[users.b]\npassword_hash = "x"\nrole = "editor"\ngroups = ["hr", "staff"]\n'
                 '[users.c]\npassword_hash = "x"\nadmin = true\n')
    users = load_users(f)
    assert [users.get(n).role for n in "abc"] == [VIEWER, EDITOR, ADMIN]
    assert users.groups_for("c") is None and users.groups_for("b") == {"hr", "staff"}
    f.write_text('[users.a]\npassword_hash = "x"\nrole = "owner"\n')
    with pytest.raises(UsersFileError, match="viewer, editor, admin"):
        load_users(f)
    f.write_text('[users.a]\npassword_hash = "x"\nrole = "viewer"\nadmin = true\n')
    with pytest.raises(UsersFileError, match="keep one of them"):
        load_users(f)

    editor = User("e", "x", ("hr", "staff"), EDITOR)
    assert editor.may_change(["hr"]) and editor.may_change(["hr", "staff"])
    assert not editor.may_change(["hr", "board"])  # would change what the board sees
    assert not editor.may_change([])  # open to everyone: admins only
    assert not User("v", "x", ("hr",), VIEWER).may_change(["hr"])
    assert User("a", "x", (), ADMIN).may_change([]) and User("a", "x", (), ADMIN).may_upload
    assert editor.may_upload and not User("e", "x", (), EDITOR).may_upload


def test_sign_in_limits_count_per_name_and_per_address():
    from clipcite.ui.web.guard import AttemptLimiter, wait_words

    now = [1000.0]
    limiter = AttemptLimiter(3, window=600, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.wait("alice") == 0
        limiter.failed("alice")
        now[0] += 10
    assert limiter.wait("alice") == pytest.approx(570)  # until the first failure is 600 s old
    assert limiter.wait("bob") == 0
    now[0] += 571
    assert limiter.wait("alice") == 0  # one failure left the window
    limiter.failed("alice")
    assert limiter.wait("alice") > 0
    limiter.succeeded("alice")
    assert limiter.wait("alice") == 0
    assert wait_words(570) == "10 minutes" and wait_words(30) == "1 minute"


def test_library_progress_shows_each_person_their_own():
    from clipcite.ui.web.render import progress_box
    from clipcite.ui.web.services import JobState

    state = JobState()
    state.update(running=True, user="eddie", current="staff-memo.wav", stage="speech", done=0,
                 total=1)
    state.say("“staff-memo.wav” is ready to search (3 passages).", "eddie")
    state.say("“hr-notes.wav” could not be added: empty.", "hannah")
    mine, theirs = state.seen_by("eddie"), state.seen_by("vera")
    assert "staff-memo.wav" in progress_box(mine) and "hr-notes" not in progress_box(mine)
    assert "staff-memo" not in progress_box(theirs) and "hr-notes" not in progress_box(theirs)
    assert "Someone else's files are being added" in progress_box(theirs)
    assert len(state.seen_by(None, everyone=True).messages) == 2  # no sign-in: one person
    for n in range(600):
        state.say(f"message {n}", "eddie")
    assert len(state.messages) == 500  # bounded


def test_found_moments_best_first_or_in_time_order_and_examples_from_the_library():
    from types import SimpleNamespace as NS

    from clipcite.ui.web.context import LISTING_EXAMPLE, example_questions
    from clipcite.ui.web.render import IN_TIME_ORDER, contents_words, found_html

    moments = [NS(media_id="m", start=s, end=s + 2, score=sc, modality="transcript",
                  speaker=None, text=f"line at {s}") for s, sc in ((40.0, 0.9), (5.0, 0.45))]
    best = found_html(moments, "q")
    assert best.index("line at 40") < best.index("line at 5") and 'value="100"' in best
    assert 'value="50"' in best  # half as good a match as the best
    timed = found_html(moments, "q", IN_TIME_ORDER)
    assert timed.index("line at 5") < timed.index("line at 40")

    assert example_questions([]) == [LISTING_EXAMPLE]
    recs = [NS(title="Old call", recorded_at=1.0, ingested_at=9.0),
            NS(title="Q3 planning", recorded_at=5.0, ingested_at=2.0)]
    assert example_questions(recs) == ["Summarize “Q3 planning”.", LISTING_EXAMPLE,
                                       "What was decided in “Old call”?"]
    assert contents_words({"transcript": 1, "slides": 3}, False) == \
        "1 spoken line, 3 slide texts, video frames off"
