"""The web app's routes and Gradio API over plain HTTP (no browser): what a hand-made request
can and cannot reach."""

from __future__ import annotations

import io
import os

import httpx
import srt
import webvtt

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from tests.conftest import REPO  # noqa: E402
from tests.web.helpers import (  # noqa: E402
    cut, left_in_uploads)


def test_hand_made_requests_cannot_name_a_server_file(open_app, tmp_path):
    """The page names uploads by their path on the server: a request naming a file that was
    never uploaded (as an attachment, or as a recording to add) is refused, and the file is
    neither read out, copied into the library nor deleted."""
    secret = cut(REPO.parent / "shared" / "media" / "sample.wav", tmp_path / "secret.wav", 12.5,
                 5.5)
    named = {"path": str(secret), "orig_name": "secret.wav", "meta": {"_type": "gradio.FileData"}}
    ctx = open_app.app.state.clipcite
    with httpx.Client(base_url=open_app.url, timeout=120) as http:
        for api, data in (("respond", [{"text": "", "files": [named]}, [], [], [], None, None]),
                          ("upload", [[named]])):
            r = http.post(f"/gradio_api/call/{api}", json={"data": data})
            assert r.status_code == 200, (api, r.text)
            out = http.get(f"/gradio_api/call/{api}/{r.json()['event_id']}").text
            assert "event: error" in out and "Diane" not in out, (api, out[-600:])
    assert secret.is_file()
    assert not any("secret" in p.name for p in ctx.library_dir.iterdir())
    assert not left_in_uploads("secret.wav")


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

        from PIL import Image

        shot = http.get(f"/thumb/{archive['board']}", params={"t": 3})
        assert shot.status_code == 200 and shot.headers["content-type"] == "image/jpeg"
        image = Image.open(io.BytesIO(shot.content))
        assert image.format == "JPEG" and image.size[0] <= 320
        assert http.get(f"/thumb/{archive['board']}", params={"t": 9999}).status_code == 200
        assert http.get(f"/thumb/{archive['call']}", params={"t": 3}).status_code == 404  # audio
        for t in (-1, "nan", "inf"):
            assert http.get(f"/thumb/{archive['board']}", params={"t": t}).status_code == 400
        assert http.get(f"/thumb/{archive['board']}", params={"t": "x"}).status_code == 422
        for bad in ("0123456789abcdef", "..%2F..%2Fetc%2Fpasswd", "%2e%2e"):
            assert http.get(f"/thumb/{bad}", params={"t": 1}).status_code == 404, bad


def test_transcript_downloads(open_app, archive):
    from clipcite.ui.media_server import download_name

    call = archive["call"]
    with httpx.Client(base_url=open_app.url) as http:
        files = {}
        for fmt in ("srt", "vtt", "txt", "rttm"):
            r = http.get(f"/export/{call}.{fmt}")
            assert r.status_code == 200, (fmt, r.status_code)
            assert r.headers["content-disposition"] == f'attachment; filename="Phone call.{fmt}"'
            files[fmt] = r.text
        subs = list(srt.parse(files["srt"]))
        assert len(subs) == len(list(webvtt.from_buffer(io.StringIO(files["vtt"])))) >= 4
        assert len(files["txt"].splitlines()) == len(subs)
        rows = [line.split() for line in files["rttm"].splitlines()]
        assert rows and all(r[0] == "SPEAKER" and len(r) == 10 for r in rows)
        for bad in (f"/export/{call}.exe", f"/export/{call}", "/export/0123456789abcdef.srt",
                    "/export/..%2F..%2Fetc%2Fpasswd.txt", "/captions/0123456789abcdef.vtt",
                    f"/captions/{call}.srt"):
            assert http.get(bad).status_code == 404, bad
    assert download_name('Q3 "plan"/x\r\ny; z', "srt") == "Q3 _plan_x_y_ z.srt"
    assert download_name("Réunion été", "txt") == "Reunion ete.txt"
    assert download_name("../..", "vtt") == "recording.vtt"
