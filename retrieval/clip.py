"""CLIP image-text embeddings (open_clip), shared by ingestion (frames) and retrieval (text).

No registry package ships CLIP weights, so CLIP is off unless the user names weights: a local
file, or a pretrained tag such as "openai" (downloads; needs a network). `model` is an
open_clip architecture name or a path to an architecture JSON file.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from clipcite.retrieval.optional import need

_TORCHVISION_STUB = None


def _prepare_torchvision() -> None:
    """Let torchvision's Python part import when its compiled ops cannot load.

    The registry's torchvision for torch 2.13 is a CUDA build whose _C.so does not load beside
    CPU torch; importing it then fails on a missing `torchvision::nms` schema. open_clip only
    needs torchvision's transforms, so declaring the two op schemas is enough.
    """
    global _TORCHVISION_STUB
    if _TORCHVISION_STUB is not None:
        return
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return
    try:
        torch.ops.load_library(str(Path(spec.origin).parent / "_C.so"))
        _TORCHVISION_STUB = False
        return
    except (OSError, RuntimeError):
        pass
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
    _TORCHVISION_STUB = lib


class ClipEncoder:
    def __init__(self, model: str, weights: str, threads: int = 0) -> None:
        _prepare_torchvision()
        open_clip = need("open_clip", "CLIP frame search")
        import torch

        if threads:
            torch.set_num_threads(threads)
        arch = model
        config = Path(model).expanduser()
        if config.suffix == ".json" and config.is_file():
            open_clip.add_model_config(config)
            arch = config.stem
        local = Path(weights).expanduser()
        pretrained = str(local) if local.is_file() else weights
        self._model, _, self._preprocess = open_clip.create_model_and_transforms(
            arch, pretrained=pretrained, device="cpu")
        self._model.eval()
        self._tokenizer = open_clip.get_tokenizer(arch)
        self._torch = torch
        self.name = f"open_clip:{arch}:{local.name if local.is_file() else weights}"
        self.dim = int(self._model.text_projection.shape[1]) if hasattr(
            self._model, "text_projection") and self._model.text_projection is not None else None

    def embed_images(self, images: list[Image.Image]) -> list[list[float]]:
        if not images:
            return []
        batch = self._torch.stack([self._preprocess(img.convert("RGB")) for img in images])
        with self._torch.no_grad():
            feats = self._model.encode_image(batch)
        return _normalise(feats.float().numpy()).tolist()

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        with self._torch.no_grad():
            feats = self._model.encode_text(self._tokenizer(texts))
        return _normalise(feats.float().numpy())


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def load_clip(model: str, weights: str | None, threads: int = 0) -> ClipEncoder | None:
    """The configured CLIP encoder, or None when no weights are configured (CLIP is off)."""
    if not weights:
        return None
    return ClipEncoder(model, weights, threads=threads)
