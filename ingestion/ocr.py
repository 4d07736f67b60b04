"""Slide and screen text with Tesseract (Debian's tesseract-ocr).

Tesseract runs as a child process with OMP_THREAD_LIMIT=1: its OpenMP threads stall under
load on small machines. The limit is set for the child only, because in this process it makes
faster-whisper return no words at all.
"""

from __future__ import annotations

import functools
import io
import os
import re
import shutil
import subprocess
from collections import defaultdict

from PIL import Image

MIN_CONFIDENCE = 55.0
# Drawn bullet dots come back as a lone "e", "o", "¢" or "•" before the line's first word.
_BULLET = re.compile(r"^(?:[•·●▪■◦*¢©°eo]|-{1,2})\s+(?=\S)")
TIMEOUT_SECONDS = 60


class OcrUnavailable(Exception):
    pass


@functools.cache
def tesseract_version() -> str:
    if shutil.which("tesseract") is None:
        raise OcrUnavailable(
            "the tesseract program is not installed (Debian: apt-get install tesseract-ocr)")
    out = subprocess.run(["tesseract", "--version"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else ""
    return first.replace("tesseract", "").strip() or "unknown"


def _run_tesseract(image: Image.Image, lang: str) -> str:
    buf = io.BytesIO()
    image.convert("L").save(buf, format="PNG")
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    proc = subprocess.run(
        ["tesseract", "stdin", "stdout", "-l", lang, "--psm", "11", "tsv"],
        input=buf.getvalue(), capture_output=True, env=env, timeout=TIMEOUT_SECONDS, check=False)
    if proc.returncode != 0:
        raise OcrUnavailable(f"tesseract failed: {proc.stderr.decode(errors='replace')[:200]}")
    return proc.stdout.decode("utf-8", errors="replace")


def read_text(image: Image.Image, lang: str = "eng") -> str:
    """The confident words on the image, one text line per screen line, top to bottom.

    psm 11 (sparse text) finds text anywhere on a slide or screen, not only in paragraphs.
    Words below MIN_CONFIDENCE are mostly noise read from photos and icons.
    """
    rows = _run_tesseract(image, lang).splitlines()
    lines: dict[tuple[str, str, str], list[tuple[int, str]]] = defaultdict(list)
    tops: dict[tuple[str, str, str], int] = {}
    for row in rows[1:]:
        cols = row.split("\t")
        if len(cols) < 12 or cols[0] != "5":  # level 5: a word
            continue
        word = cols[11].strip()
        if not word or float(cols[10]) < MIN_CONFIDENCE or not any(c.isalnum() for c in word):
            continue
        key = (cols[2], cols[3], cols[4])  # block, paragraph, line
        lines[key].append((int(cols[6]), word))
        tops[key] = min(tops.get(key, int(cols[7])), int(cols[7]))
    # Sparse mode numbers blocks in discovery order; read lines top to bottom instead.
    ordered = sorted(lines, key=lambda k: (tops[k], k))
    out = [_BULLET.sub("", " ".join(w for _, w in sorted(lines[k]))) for k in ordered]
    return "\n".join(line for line in out if sum(ch.isalnum() for ch in line) >= 2)
