"""Transcript segmentation: rules on made-up words, then timing against a real transcript."""

from __future__ import annotations

from pathlib import Path

from ingestion.media import decode_audio
from ingestion.segments import MAX_SECONDS, Word, segment_words


def words(spec: list[tuple[float, float, str]], speaker: str | None = None) -> list[Word]:
    return [Word(s, e, t, speaker) for s, e, t in spec]


def test_splits_at_sentence_ends():
    segs = segment_words(words([(0, .4, " We"), (.4, .8, " agreed"), (.8, 1.2, " today."),
                                (1.3, 1.6, " The"), (1.6, 2.0, " launch"), (2.0, 2.5, " moves.")]))
    assert [s.text for s in segs] == ["We agreed today.", "The launch moves."]
    assert (segs[0].start, segs[0].end, segs[1].start, segs[1].end) == (0, 1.2, 1.3, 2.5)


def test_tiny_sentences_join_what_follows():
    segs = segment_words(words([(0, .3, " Hello?"), (.5, .8, " Hi,"), (.8, 1.0, " how"),
                                (1.0, 1.2, " are"), (1.2, 1.5, " you?")]))
    assert [s.text for s in segs] == ["Hello? Hi, how are you?"]


def test_splits_at_long_pause_and_speaker_change():
    a = words([(0, .3, " one"), (.3, .6, " two"), (.6, .9, " three"), (2.0, 2.3, " four"),
               (2.3, 2.6, " five"), (2.6, 2.9, " six")], speaker="A")
    b = words([(3.0, 3.3, " seven")], speaker="B")
    segs = segment_words(a + b)
    assert [s.text for s in segs] == ["one two three", "four five six", "seven"]
    assert [s.speaker for s in segs] == ["A", "A", "B"]


def test_never_longer_than_max_even_without_punctuation():
    run = [Word(i * 0.5, i * 0.5 + 0.45, f" w{i}" + ("," if i % 13 == 0 else ""))
           for i in range(200)]  # 100 s of one unpunctuated run
    segs = segment_words(run)
    assert len(segs) >= 4
    assert all(s.end - s.start <= MAX_SECONDS for s in segs)
    assert sum(len(s.text.split()) for s in segs) == 200  # no word lost or repeated


def test_impossibly_fast_runs_are_dropped_as_hallucinations():
    segs = segment_words(words([(0, .4, " We"), (.4, .8, " agreed"), (.8, 1.2, " today."),
                                (29.85, 29.86, " Thank"), (29.86, 29.87, " you"),
                                (29.87, 29.88, " very"), (29.88, 29.89, " much.")]))
    assert [s.text for s in segs] == ["We agreed today."]


def _stm(path: Path) -> list[tuple[float, float, str]]:
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split(maxsplit=5)
        rows.append((float(parts[3]), float(parts[4]), parts[5]))
    return rows


def test_segment_times_agree_with_the_reference_transcript(media: Path, models):
    """sample.wav: every segment starts and ends within 1 s of a reference sentence boundary."""
    audio, _ = decode_audio(media / "sample.wav")
    segs = segment_words(models.transcriber.transcribe(audio, language="en").words)
    ref = _stm(media / "sample.stm")
    starts = [s for s, _, _ in ref]
    ends = [e for _, e, _ in ref]
    assert len(segs) >= 6
    for seg in segs:
        assert min(abs(seg.start - s) for s in starts) <= 1.0, seg
        assert min(abs(seg.end - e) for e in ends) <= 1.0, seg
    sheila = next(s for s in segs if "sheila" in s.text.lower())
    assert 13.5 <= sheila.start <= 15.0 and 17.0 <= sheila.end <= 18.5
