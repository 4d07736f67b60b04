"""Transcript segmentation: rules on made-up words, then timing against a real transcript."""

from __future__ import annotations

from pathlib import Path

from clipcite.ingestion.media import decode_audio
from clipcite.ingestion.segments import MAX_SECONDS, Word, segment_words


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


def test_pieces_without_a_leading_space_continue_the_word():
    """Whisper's word list splits "sign-in", "$30,000" and "80%" into pieces."""
    segs = segment_words(words([(0, .3, " Never"), (.3, .5, " sign"), (.5, .6, "-in"),
                                (.6, .9, " for"), (.9, 1.2, " $30"), (1.2, 1.4, ",000"),
                                (1.4, 1.6, " or"), (1.6, 1.8, " 80"), (1.8, 1.9, "%.")]))
    assert [s.text for s in segs] == ["Never sign-in for $30,000 or 80%."]


def test_a_sentence_cut_by_a_turn_boundary_takes_its_main_speaker():
    """dev00.wav: diarization put "begin." in the next turn; the sentence stays whole."""
    first = words([(1.8, 2.1, " Okay,"), (2.1, 2.3, " well"), (2.3, 2.5, " I"),
                   (2.5, 2.7, " think"), (2.7, 2.9, " we're"), (2.9, 3.1, " ready"),
                   (3.1, 3.3, " to")], speaker="A")
    cut = words([(3.3, 3.7, " begin.")], speaker="B")
    then = words([(4.0, 4.2, " Right,"), (4.2, 4.4, " good"), (4.4, 4.7, " start.")],
                 speaker="B")
    segs = segment_words(first + cut + then)
    assert [(s.text, s.speaker) for s in segs] == [
        ("Okay, well I think we're ready to begin.", "A"), ("Right, good start.", "B")]


def test_two_speakers_clauses_run_together_keep_their_speakers():
    """sample.wav: no full stop between Diane's clause and Sheila's; both are whole clauses."""
    diane = words([(12.7, 12.9, " This"), (12.9, 13.0, " is"), (13.0, 13.3, " Diane"),
                   (13.3, 13.4, " in"), (13.4, 13.7, " New"), (13.7, 14.1, " Jersey")], "A")
    sheila = words([(14.1, 14.3, " and"), (14.3, 14.5, " I'm"), (14.5, 14.9, " Sheila"),
                    (14.9, 15.1, " in"), (15.1, 15.6, " Texas.")], "B")
    segs = segment_words(diane + sheila)
    assert [(s.text, s.speaker) for s in segs] == [
        ("This is Diane in New Jersey", "A"), ("and I'm Sheila in Texas.", "B")]


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


# -- passages ------------------------------------------------------------------------------
def _sentences(n: int, words: int = 10) -> list:
    from clipcite.retrieval.schema import Segment

    return [Segment(modality="transcript", start=i * 4.0, end=i * 4.0 + 3.5,
                    text=" ".join([f"w{i}"] * words),
                    speaker=["Maria", "Speaker 2"][(i // 3) % 2]) for i in range(n)]


def test_passages_overlap_by_half_and_cover_every_segment():
    from clipcite.ingestion.segments import passages

    segs = _sentences(40)
    found = passages(segs, words=60)
    covered = set()
    for p in found:
        covered.update(range(p.first, p.last + 1))
        assert p.modality == "passages"
        assert (p.start, p.end) == (segs[p.first].start, segs[p.last].end)
        assert sum(len(s.text.split()) for s in segs[p.first:p.last + 1]) >= 60 or \
            p.last == len(segs) - 1
    assert covered == set(range(40))
    # Each window starts where the one before it is half done: every boundary is inside one.
    assert [p.first for p in found[:3]] == [0, 3, 6]
    assert passages([], words=60) == []
    [one] = passages(segs[:2], words=60)
    assert (one.first, one.last) == (0, 1)


def test_passage_text_names_speakers_but_not_diarization_labels():
    from clipcite.ingestion.segments import passages

    [p] = passages(_sentences(6, words=2), words=100)
    lines = p.text.split("\n")
    assert lines[0] == "Maria: w0 w0 w1 w1 w2 w2"
    assert lines[1] == "w3 w3 w4 w4 w5 w5"  # "Speaker 2" is a label, not a name
