"""Shared fixtures: real recordings from ../shared/media, generated media, real models."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The CLI's speech model in tests: tiny.en, not the product's default (base), for speed. On the
# real-speech test files base took 6.1 min against tiny.en's 4.1 (2 shared cores), and some
# assertions hold tiny.en's words. Tests of base name it (test_asr.py, test_vocabulary.py).
os.environ.setdefault("CLIPCITE_ASR_MODEL", "tiny.en")

REPO = Path(__file__).resolve().parent.parent
MEDIA = REPO.parent / "shared" / "media"
ARTIFACTS = REPO / "tests" / "artifacts"
CLI = REPO / ".venv" / "bin" / "clipcite"


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="session")
def media() -> Path:
    if not (MEDIA / "jfk.flac").is_file():
        pytest.fail(f"real recordings missing: {MEDIA} (see shared/media/SOURCES.md)")
    return MEDIA


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model cache of the developer's machine, so Whisper base is assembled once."""
    path = Path(os.environ.get("CLIPCITE_CACHE") or Path.home() / ".cache" / "clipcite")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def extract_options(cache_dir: Path):
    from clipcite.ingestion.asr import AsrOptions
    from clipcite.ingestion.extract import ExtractOptions

    # Pinned to tiny.en like the CLI above: about half of base's CPU time.
    return ExtractOptions(asr=AsrOptions(model="tiny.en"), language="en", cache_dir=cache_dir)


@pytest.fixture(scope="session")
def models(extract_options):
    from clipcite.ingestion.extract import Models

    return Models(extract_options)


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Generated recordings with exact ground truth (eval/fixtures.py), made once per run."""
    from eval.fixtures import generate_all

    out = ARTIFACTS / "generated"
    manifest = generate_all(out)
    return {"dir": out, "manifest": manifest}


@pytest.fixture()
def run_cli():
    """Run the installed `clipcite` command as a user would."""

    def run(*args: str, check: bool = True, timeout: float = 600,
            env: dict | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(CLI), *args], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **(env or {})})
        if check and proc.returncode != 0:
            raise AssertionError(f"clipcite {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    return run


def copy_media(src: Path, dst_dir: Path, name: str | None = None) -> Path:
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / (name or src.name)
    shutil.copyfile(src, dst)
    return dst


@pytest.fixture()
def fake():
    """A fresh fake OpenAI-compatible server (tests/fake_openai.py) for one test: it stands in
    for a remote LLM API, which this machine cannot reach."""
    from tests.fake_openai import FakeOpenAI

    server = FakeOpenAI().start()
    yield server
    server.stop()
