"""Chroma server mode: the vectors on a real `chroma run` (HttpClient), the catalog local.

Each test starts its own `chroma run` on a free 127.0.0.1 port with a temporary path and stops
it at the end; no traffic leaves loopback.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import clipcite.retrieval.index as index_mod
from clipcite.ingestion.batch import BatchOptions, Outcome, SilentReporter, run_batch
from clipcite.retrieval.index import ChromaUnavailableError, Index
from clipcite.retrieval.schema import MODALITIES
from tests.conftest import REPO, copy_media
from tests.fake_openai import FakeOpenAI
from tests.test_ingest import consistent

CHROMA = REPO / ".venv" / "bin" / "chroma"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ChromaServer:
    """`chroma run` on 127.0.0.1 that a test can stop and start again (same path and port)."""

    def __init__(self, path: Path) -> None:
        self.path, self.port = path, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = path.parent / "chroma.log"

    def start(self, timeout: float = 120.0) -> None:
        self.proc = subprocess.Popen(
            [str(CHROMA), "run", "--path", str(self.path), "--host", "127.0.0.1",
             "--port", str(self.port)], stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            try:
                if httpx.get(f"{self.url}/api/v2/heartbeat", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"chroma run did not answer in {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()  # like a crash: no orderly shutdown
            self.proc.wait(timeout=30)


@pytest.fixture()
def chroma(tmp_path: Path) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path / "chroma-data")
    server.start()
    yield server
    server.stop()


def test_ingest_search_and_ask_against_a_chroma_server(chroma: ChromaServer, media: Path,
                                                       tmp_path: Path, run_cli):
    """Ingest, search and ask with the vectors on the server.

    The LLM is faked (tests/fake_openai.py, an OpenAI-compatible server on 127.0.0.1) because
    this test is about the index: `ask` must find and cite the segments kept on the server.
    """
    lib = tmp_path / "library"
    copy_media(media / "jfk.flac", lib)
    index_dir = tmp_path / "index"
    where = ("--index", str(index_dir), "--chroma-url", chroma.url)
    out = run_cli("ingest", str(lib), *where, "--no-speakers")
    assert "1 indexed" in out.stdout, out.stdout
    assert not (index_dir / "chroma").exists()  # the vectors are on the server only

    index = Index(index_dir, chroma_url=chroma.url)
    consistent(index)
    rec = index.catalog.all()[0]
    assert rec.status == "indexed" and rec.counts["transcript"] >= 1

    found = json.loads(run_cli("search", "ask not what your country can do", "--json",
                               "--k", "3", *where).stdout)["results"]
    assert found and found[0]["path"] == str(lib / "jfk.flac")
    assert "country" in found[0]["text"].lower()

    # The same settings come from the environment too (CLIPCITE_CHROMA_URL).
    env_found = json.loads(run_cli("search", "country", "--json", "--index", str(index_dir),
                                   env={"CLIPCITE_CHROMA_URL": chroma.url}).stdout)["results"]
    assert env_found and env_found[0]["media_id"] == rec.media_id

    fake = FakeOpenAI().start()
    try:
        fake.replies = [json.dumps({"intent": "answer", "question": "what should you ask",
                                    "queries": ["ask what you can do for your country"],
                                    "recording": None, "speaker": None})]
        fake.deltas = ["Ask what you can do for your country [1]."]
        reply = json.loads(run_cli(
            "ask", "what should you ask?", "--json", *where,
            env={"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "k",
                 "CLIPCITE_LLM_MODEL": "test-model"}).stdout)
    finally:
        fake.stop()
    assert reply["answer"].strip()
    assert reply["citations"] and reply["citations"][0]["path"] == str(lib / "jfk.flac")
    prompt = json.dumps([r["body"] for r in fake.requests]).lower()
    assert "country" in prompt  # the segments read from the server reached the LLM


def test_a_server_restart_during_ingest_is_retried_and_nothing_is_lost(
        chroma: ChromaServer, media: Path, tmp_path: Path, extract_options, monkeypatch):
    """The server is killed after the first recording is written and started again only once
    a write has failed to reach it: that write waits (backoff) and goes through."""
    lib = tmp_path / "library"
    copy_media(media / "jfk.flac", lib)
    copy_media(media / "jfk.flac", lib, "jfk again.flac")
    copy_media(media / "sample.wav", lib, "phone call.wav")
    index_dir = tmp_path / "index"
    index = Index(index_dir, chroma_url=chroma.url)

    failures: list[str] = []
    restarted = threading.Event()
    unreachable = index_mod._unreachable

    def counting(exc: BaseException | None) -> bool:
        down = unreachable(exc)
        if down:
            failures.append(type(exc).__name__)
            if not restarted.is_set():
                restarted.set()
                threading.Thread(target=chroma.start, daemon=True).start()
        return down

    monkeypatch.setattr(index_mod, "_unreachable", counting)

    class KillAfterFirst(SilentReporter):
        def file_finished(self, outcome: Outcome) -> None:
            if outcome.status == "indexed" and not restarted.is_set():
                chroma.stop()  # once: stop() does nothing to a stopped server

    outcomes = run_batch([lib], index, BatchOptions(extract=extract_options), KillAfterFirst())
    assert restarted.wait(0) and failures, "no write met the stopped server"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # a file that outwaited the backoff is retried below
        try:
            if httpx.get(f"{chroma.url}/api/v2/heartbeat", timeout=2.0).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.5)
    if any(o.status != "indexed" for o in outcomes):
        assert all("Chroma server" in o.reason for o in outcomes if o.status == "failed")
        outcomes = run_batch([lib], index, BatchOptions(extract=extract_options))
        assert {o.status for o in outcomes} <= {"indexed", "unchanged"}
    recs = index.catalog.all()
    assert len(recs) == 3 and all(r.status == "indexed" for r in recs), recs
    consistent(index)
    fresh = Index(index_dir, chroma_url=chroma.url)  # a new client sees the same
    consistent(fresh)
    assert sum(fresh.count(m) for m in MODALITIES) == sum(
        sum(r.counts.values()) for r in recs)


def test_an_unreachable_server_is_one_clear_error(tmp_path: Path, run_cli):
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    with pytest.raises(ChromaUnavailableError, match=url):
        Index(tmp_path / "index", chroma_url=url, retry_delays=(0.05, 0.1))
    proc = run_cli("status", "--index", str(tmp_path / "index"), "--chroma-url", url,
                   check=False, timeout=120)
    assert proc.returncode == 2 and f"cannot reach the Chroma server at {url}" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
