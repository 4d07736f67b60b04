"""Words speech recognition should expect: the glossary setting, the names users confirmed for
speakers, and Whisper hotwords heard in a real transcription (eval/asr_wer.py measures them)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from clipcite.ingestion.extract import _hotwords
from clipcite.ui.settings import Settings


def test_glossary_comes_from_the_file_the_environment_or_the_flag(tmp_path: Path, monkeypatch):
    from clipcite.ui.cli import _settings, build_parser

    config = tmp_path / "settings.toml"
    config.write_text('glossary = ["Zentrix", "Altamira Foods"]\n')
    env = {"CLIPCITE_CONFIG": str(config), "CLIPCITE_INDEX": str(tmp_path / "none")}
    assert Settings.load(env).glossary == ["Zentrix", "Altamira Foods"]
    assert Settings.load({**env, "CLIPCITE_GLOSSARY": " Corvex, Nimbra ,"}).glossary == [
        "Corvex", "Nimbra"]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    args = build_parser().parse_args(["ingest", "x.wav", "--glossary", "Lumora, Quillbase"])
    assert _settings(args).glossary == ["Lumora", "Quillbase"]
    args = build_parser().parse_args(["ingest", "x.wav"])
    assert _settings(args).glossary == ["Zentrix", "Altamira Foods"]


def _index_with_named_speakers(directory: Path) -> None:
    """A public recording whose speaker is confirmed as Priya, a restricted one's as Yusuf,
    and a suggested (unconfirmed) name."""
    from clipcite.retrieval.catalog import Recording
    from clipcite.retrieval.index import Index
    from clipcite.retrieval.speakers import SpeakerInput, SpeakerStore

    index = Index(directory)
    store = SpeakerStore(index.catalog.connection)
    voice = np.ones(4, dtype=np.float32) / 2
    for n, (groups, name) in enumerate((([], "Priya"), (["hr"], "Yusuf"), ([], None))):
        rec = Recording(media_id=f"m{n}", path=f"/r{n}.wav", title=f"R{n}", status="indexed",
                        groups=groups, gen=f"g{n}")
        index.catalog.begin_generation(rec.gen)
        guess = None if name else "Guessed Name"
        store.add_generation(rec.gen, [(0.0, 5.0, "Speaker 1")],
                             [SpeakerInput("Speaker 1", 5.0, voice, name=guess,
                                           score=0.9 if guess else None)])
        index.catalog.commit_generation(rec)
        if name:
            store.set_name(rec, "Speaker 1", name)
    index.catalog.close()


def test_vocabulary_is_the_glossary_then_public_confirmed_names(tmp_path: Path):
    _index_with_named_speakers(tmp_path / "index")
    settings = Settings(index_dir=tmp_path / "index", glossary=["Zentrix", " ", "Priya"])
    # Yusuf names a speaker only the hr group may see; a suggestion is nobody's word.
    assert settings.vocabulary() == ("Zentrix", "Priya")
    assert settings.extract_options().vocabulary == ("Zentrix", "Priya")
    assert Settings(index_dir=tmp_path / "index").vocabulary() == ("Priya",)


def test_names_are_read_without_making_or_changing_a_catalog(tmp_path: Path):
    assert Settings(index_dir=tmp_path / "nothing", glossary=["Zentrix"]).vocabulary() == (
        "Zentrix",)
    assert not (tmp_path / "nothing").exists()
    old = tmp_path / "old"
    old.mkdir()
    sqlite3.connect(old / "catalog.sqlite3").execute("CREATE TABLE recordings (x)").close()
    assert Settings(index_dir=old).vocabulary() == ()  # no speaker tables: no names, no error


def test_hotwords_keep_the_first_words_within_the_limit():
    words = ["Zentrix", "Altamira Foods", "Priya"]
    assert _hotwords(words, limit=30) == "Zentrix, Altamira Foods, Priya"  # 30 characters
    assert _hotwords(words, limit=29) == "Zentrix, Altamira Foods"
    assert _hotwords(["Zentrix", "Priya"]) == "Zentrix, Priya"
    assert _hotwords([]) is None


def _call(out: Path) -> Path:
    """A noisy two-voice call naming two products and a customer (eval/noisy_meetings.py)."""
    from eval.noisy_meetings import Call, build

    return build(Call("glossary-call", "Weekly review", 18, (
        ("Priya", "Good morning. Today we review the [Zentrix] renewal for [Altamira Foods]."),
        ("Kenji", "I can also offer them [Quillbase] at a [15] percent discount."))), out)


def test_glossary_words_are_heard_in_an_ingested_call(run_cli, tmp_path: Path):
    """Through the CLI as a user would: Whisper base writes "entrance" and "wheelbase" for the
    product names without the glossary, and the names themselves with it."""
    wav = _call(tmp_path / "media")

    def heard(*flags: str) -> str:
        index = tmp_path / f"index{len(flags)}"
        run_cli("ingest", str(wav), "--index", str(index), "--asr-model", "base",
                "--no-speakers", *flags)
        return run_cli("export", "glossary-call", "--format", "txt", "-o", "-",
                       "--index", str(index)).stdout

    plain = heard()
    assert "Zentrix" not in plain and "Quillbase" not in plain, plain
    hinted = heard("--glossary", "Zentrix, Quillbase, Altamira Foods")
    assert all(word in hinted for word in ("Zentrix", "Quillbase", "Altamira Foods")), hinted
