"""A missing optional package is named with the command that installs it."""

from __future__ import annotations

import sys

import pytest

from clipcite.retrieval.optional import INSTALL, MissingPart, need


def test_a_missing_optional_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)  # as if not installed
    with pytest.raises(MissingPart, match=r"CLIP frame search needs .*clipcite\[clip\]"):
        need("open_clip", "CLIP frame search")


def test_clip_without_open_clip_fails_with_the_install_command(monkeypatch, tmp_path):
    from clipcite.retrieval.clip import ClipEncoder

    monkeypatch.setitem(sys.modules, "open_clip", None)
    with pytest.raises(MissingPart, match=r"pip install 'clipcite\[clip\]'"):
        ClipEncoder("ViT-B-32", str(tmp_path / "weights.pt"))


def test_an_installed_package_is_returned():
    assert need("numpy", "numbers").__name__ == "numpy"


def test_every_optional_part_has_a_command():
    assert all("pip install" in command for command in INSTALL.values())
