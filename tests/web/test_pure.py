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
    from ui.settings import Settings
    from ui.users import UsersFileError, hash_password, load_users, verify
    from ui.web.app import check_host, serve
    from ui.web.attachments import safe_filename
    from ui.web.errors import SetupError

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
    from ui.settings import Settings
    from ui.web.errors import friendly_error
    from ui.web.filters import FilterError, chat_filters, parse_day, still_offered

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
