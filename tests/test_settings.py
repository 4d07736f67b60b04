"""The settings object: defaults, file, environment, flags, in that order of strength."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipcite.ui.settings import Settings


def test_precedence_file_then_environment_then_flags(tmp_path: Path):
    config = tmp_path / "settings.toml"
    config.write_text('asr_model = "base"\nworkers = 2\nclip_weights = "/models/clip.pt"\n')
    env = {"CLIPCITE_CONFIG": str(config), "CLIPCITE_WORKERS": "3",
           "CLIPCITE_INDEX": str(tmp_path / "idx"), "CLIPCITE_OCR": "false"}
    settings = Settings.load(env)
    assert settings.asr_model == "base" and settings.workers == 3
    assert settings.index_dir == tmp_path / "idx" and settings.ocr is False
    assert settings.clip_weights == "/models/clip.pt"
    flagged = settings.with_overrides(workers=1, asr_model=None)
    assert flagged.workers == 1 and flagged.asr_model == "base"


def test_language_follows_the_model_unless_set():
    assert Settings().asr_model == "base"  # multilingual by default: the language is detected
    assert Settings().effective_language is None
    assert Settings(asr_model="tiny.en").effective_language == "en"
    assert Settings(asr_model="base").effective_language is None
    assert Settings(asr_model="base", language="de").effective_language == "de"
    assert Settings(language="auto").effective_language is None


def test_extract_options_carry_the_settings(tmp_path: Path):
    opts = Settings(asr_model="base", cache_dir=tmp_path, frame_interval=3.0).extract_options()
    assert opts.asr.model == "base" and opts.cache_dir == tmp_path
    assert opts.frame_interval == 3.0 and opts.language is None


def test_unknown_setting_is_an_error(tmp_path: Path):
    config = tmp_path / "settings.toml"
    config.write_text('asr_modle = "base"\n')
    with pytest.raises(ValueError, match="asr_modle"):
        Settings.load({"CLIPCITE_CONFIG": str(config)})
