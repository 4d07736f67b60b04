"""The installable package: a wheel built from this checkout, installed into a fresh venv,
run from outside the checkout (`clipcite models`, `ingest` and `search` on a real recording).

The heavy dependencies (torch, chromadb, the packaged models, ...) are not downloaded again:
a .pth file lets the new venv import them from .venv's site-packages. A path a .pth file adds
is not a site directory, so .venv's own .pth files, among them the editable-install hook that
maps clipcite's packages to this checkout, do not run there; the test checks that every
clipcite module imported comes from the new venv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

# What the wheel is built from: the packages and the project files, nothing else of the tree.
SOURCES = ("pyproject.toml", "README.md", "clipcite", "assistant", "retrieval", "ingestion", "ui",
           "prompts")
OUR_MODULES = ("clipcite", "clipcite.ui.cli", "clipcite.ui.searching",
               "clipcite.assistant.prompts", "clipcite.assistant.local_model",
               "clipcite.retrieval.assembled", "clipcite.ingestion.models", "clipcite.prompts")


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n" \
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed (no dependencies), the heavy ones borrowed."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"  # a copy: an in-tree build would leave build/ and egg-info in the checkout
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--disable-pip-version-check", "-q", "-w", str(work / "dist"), str(src)], cwd=work)
    [wheel] = (work / "dist").glob("clipcite-*.whl")

    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=work)
    _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
          "--no-deps", "--disable-pip-version-check", "-q", str(wheel)], cwd=work)
    site = Path(_run([str(venv / "bin" / "python"), "-c",
                      "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     cwd=work).stdout.strip())
    (site / "zz_borrowed_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory, venv: Path, cache_dir: Path):
    """A folder outside the checkout, and the environment the new venv's commands run in."""
    here = tmp_path_factory.mktemp("elsewhere")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "CLIPCITE_CONFIG")}
    env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '')}", VIRTUAL_ENV=str(venv),
               CLIPCITE_CONFIG=str(here / "no-settings.toml"),  # not the developer's settings
               CLIPCITE_INDEX=str(here / "index"),
               CLIPCITE_CACHE=str(cache_dir),  # the assembled models, not assembled again
               CLIPCITE_ASR_MODEL="tiny.en")  # as the other CLI tests (tests/conftest.py)
    return here, env


def test_the_wheel_is_what_runs(venv: Path, outside) -> None:
    here, env = outside
    code = ("import importlib, json, sys\n"
            f"mods = {OUR_MODULES!r}\n"
            "files = {m: importlib.import_module(m).__file__ for m in mods}\n"
            "from clipcite.assistant.prompts import load_prompt\n"
            "print(json.dumps({'files': files, 'prompt': load_prompt('answer')[:200],\n"
            "                  'path': sys.path}))")
    found = json.loads(_run([str(venv / "bin" / "python"), "-c", code], cwd=here,
                            env=env).stdout)
    for module, file in found["files"].items():
        assert Path(file).is_relative_to(venv), f"{module} imported from {file}, not the wheel"
    assert not any((here / p).resolve() == REPO for p in found["path"])  # "" is `here`
    # prompts/ is package data: the prompt as written in the checkout, its header comment off
    assert found["prompt"].strip()
    assert found["prompt"] in (REPO / "prompts" / "answer.md").read_text(encoding="utf-8")


def test_models_ingest_and_search_from_outside(venv: Path, outside, media: Path) -> None:
    here, env = outside
    clipcite = str(venv / "bin" / "clipcite")
    models = _run([clipcite, "models"], cwd=here, env=env).stdout
    assert "tiny.en (packaged)" in models and "sha256 checked" in models, models
    assert "text    multilingual-e5-small" in models, models

    ingest = _run([clipcite, "ingest", str(media / "sample.wav"), "--json"], cwd=here,
                  env=env, timeout=900)
    lines = [json.loads(line) for line in ingest.stdout.splitlines() if line.strip()]
    [file, totals] = lines
    assert file["status"] == "indexed", file
    assert totals["index"] == str(here / "index") and totals["indexed"] == 1

    found = json.loads(_run([clipcite, "search", "where is Sheila from", "--json", "--k", "3"],
                            cwd=here, env=env).stdout)
    results = found["results"]
    assert results and all(r["path"] == str(media / "sample.wav") for r in results)
    assert any("chicago" in r["text"].lower() for r in results), results
