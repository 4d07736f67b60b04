"""Speaker diarization on real meeting audio (RTTM ground truth) and generated voices.

Bounds are loose enough for noise between runs and tight enough to fail if clustering, the
speaker count or smoothing broke (one speaker for everyone scores DER ~0.45 on sample.wav).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eval.der import read_rttm, score
from eval.meetings import MeetingSpec, build_all
from ingestion.diarization import DiarizeOptions, Turn, diarize, label_words, match_voices
from ingestion.media import SAMPLE_RATE, decode_audio
from ingestion.segments import Word

pytestmark = pytest.mark.slow

# Two small meetings that share Beth: names must carry over, Alan/Carl/Dana must not.
MEETING_3 = MeetingSpec("test-3voices", ("Alan", "Beth", "Carl"), 9, 11)
MEETING_2 = MeetingSpec("test-2voices", ("Beth", "Dana"), 6, 12)


@pytest.fixture(scope="module")
def encoder():
    from ingestion.voice import load_speaker_encoder

    return load_speaker_encoder("resemblyzer", threads=2)


@pytest.fixture(scope="module")
def meetings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    out = tmp_path_factory.mktemp("meetings")
    return {wav.stem: (wav, rttm) for wav, rttm in build_all(out, (MEETING_3, MEETING_2))}


def _run(encoder, wav: Path, rttm: Path, uri: str, **options):
    audio, _ = decode_audio(wav)
    result = diarize(audio, encoder, DiarizeOptions(**options))
    hyp = [(t.start, t.end, t.speaker) for t in result.turns]
    reference = read_rttm(rttm, uri)
    return result, reference, score(reference, hyp, 0.25, len(audio) / SAMPLE_RATE)


def _truth(result, reference) -> dict[str, str]:
    """Each found speaker -> the true speaker they overlap most."""
    votes: dict[str, dict[str, float]] = {}
    for t in result.turns:
        for a, b, s in reference:
            ov = min(t.end, b) - max(t.start, a)
            if ov > 0:
                votes.setdefault(t.speaker, {}).setdefault(s, 0.0)
                votes[t.speaker][s] += ov
    return {h: max(v, key=v.get) for h, v in votes.items()}


@pytest.mark.parametrize("name,rttm,max_der", [("sample", "sample.rttm", 0.15),
                                               ("dev01", "debug.development.rttm", 0.25)])
def test_real_recording(encoder, media, name, rttm, max_der):
    result, reference, s = _run(encoder, media / f"{name}.wav", media / rttm, name)
    assert len(result.prints) == 2
    assert s.der < max_der, s
    names = [t.speaker for t in result.turns]
    assert names[0] == "Speaker 1" and set(names) == {"Speaker 1", "Speaker 2"}
    assert all(b.start >= a.end - 1e-6 for a, b in zip(result.turns, result.turns[1:]))
    assert all(t.end - t.start >= 0.25 for t in result.turns)


def test_given_speaker_count(encoder, media):
    audio, _ = decode_audio(media / "sample.wav")
    assert len(diarize(audio, encoder, DiarizeOptions(num_speakers=3)).prints) == 3
    assert len(diarize(audio, encoder, DiarizeOptions(max_speakers=1)).prints) == 1


def test_generated_meeting_and_voice_matching(encoder, meetings):
    three, ref3, s3 = _run(encoder, *meetings[MEETING_3.name], MEETING_3.name)
    assert len(three.prints) == 3 and s3.der < 0.12, s3
    two, ref2, s2 = _run(encoder, *meetings[MEETING_2.name], MEETING_2.name)
    assert len(two.prints) == 2 and s2.der < 0.12, s2

    truth3, truth2 = _truth(three, ref3), _truth(two, ref2)
    known = {truth3[s]: p for s, p in three.prints.items()}  # Alan, Beth, Carl by name
    named = match_voices(two.prints, known)
    assert {truth2[s]: n for s, (n, _) in named.items()} == {"Beth": "Beth"}
    for p in three.prints.values():
        assert p.shape == (256,) and abs(float(np.linalg.norm(p)) - 1) < 1e-4


def test_match_voices_is_one_to_one_and_thresholded():
    a, b = np.eye(3, dtype=np.float32)[0], np.eye(3, dtype=np.float32)[1]
    close = (a + 0.05 * b) / np.linalg.norm(a + 0.05 * b)
    known = {"Ann": a, "Bob": b}
    got = match_voices({"Speaker 1": close, "Speaker 2": a}, known, threshold=0.9)
    assert got == {"Speaker 2": ("Ann", pytest.approx(1.0))}  # Ann is one speaker, the closest
    assert match_voices({"Speaker 1": np.eye(3, dtype=np.float32)[2]}, known, 0.9) == {}


def test_label_words():
    turns = [Turn(0.0, 2.0, "Speaker 1"), Turn(2.0, 5.0, "Speaker 2"),
             Turn(7.0, 9.0, "Speaker 1")]
    words = [Word(0.1, 0.5, "hello"), Word(1.8, 2.6, "there"), Word(5.5, 5.8, "um"),
             Word(6.6, 7.2, "so"), Word(12.0, 12.5, "bye")]
    labelled = label_words(words, turns)
    assert [w.speaker for w in labelled] == ["Speaker 1", "Speaker 2", "Speaker 2",
                                             "Speaker 1", "Speaker 1"]
    assert label_words([Word(0.0, 1.0, "x")], [])[0].speaker is None
