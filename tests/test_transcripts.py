"""Imported transcripts (WebVTT, SRT): the hand-made odd-case fixtures, then one rule at a time.

tests/data/odd_cases.vtt and odd_cases.srt hold every oddity at once (BOM, CRLF and lone CR
line endings, skipped blocks, identifiers, settings, tags, entities, each speaker style, notes,
empty cues, rolling captions, overlaps); tests/data/README.md lists what is where.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clipcite.ingestion.media import MediaError
from clipcite.ingestion.segments import Word
from clipcite.ingestion.transcripts import (TRANSCRIPT_EXTENSIONS, Cue, TranscriptError, cue_words,
                                   find_sidecar, parse_srt, parse_vtt, read_transcript)

DATA = Path(__file__).parent / "data"


def as_tuples(cues: list[Cue]) -> list[tuple]:
    return [(round(c.start, 3), round(c.end, 3), c.text, c.speaker) for c in cues]


def error(parse, text: str) -> str:
    with pytest.raises(TranscriptError) as e:
        parse(text)
    message = str(e.value)
    assert "\n" not in message and message
    return message


# --- the fixtures -------------------------------------------------------------------------

VTT_EXPECTED = [
    (1.0, 3.5, "Good morning, everyone.", "Maria Lopez"),
    (3.5, 6.0, "Morning! Can you hear me?", "John O'Brien"),  # <v.loud ...>, never closed
    (6.0, 8.0, "Loud and clear & on time.", "Priya Patel"),  # no hours; "Name:" prefix
    # Two voice tags: the cue's 4 s shared by length ("Great." + 1 : "Let's ..." + 1 = 7 : 29).
    (8.0, 8.778, "Great.", "Maria Lopez"),
    (8.778, 12.0, "Let's start with the budget.", "John O'Brien"),
    # [Music] and <v John O'Brien>(laughs)</v> are dropped.
    (16.0, 18.5, "Note: the budget is final.", None),
    (18.5, 21.0, "Step 1: open the report now <not a tag>", None),
    (21.0, 23.0, "The numbers are in the appendix.", "Priya Patel"),
    (23.0, 25.0, "Thank you.", "SPEAKER_01"),  # "&gt;&gt; SPEAKER_01:"
    # The empty cue at 25 s is dropped.
    (26.0, 28.0, "a 漢 question", "Speaker 2"),  # <lang>, <ruby> with its <rt> reading left out
    # YouTube rolling captions: the 10 ms cue and the repeated "so we begin" are gone.
    (28.0, 30.0, "so we begin", None),
    (30.01, 32.0, "with revenue", None),
    (31.5, 33.0, "Yes.", "Maria Lopez"),  # overlaps the cue before
    (33.0, 35.0, "Q: What about costs?", None),
    (34.0, 36.0, "A: Lower than planned.", None),
    (33.5, 34.5, "Hmm.", "John O'Brien"),  # 0.5 s before the previous start: tolerated
    (36.0, 38.0, "It's 10:30, time to go.", "Ana de la Cruz"),  # one-digit hours
    # One "Name:" per line: two speakers in one cue, 2 s shared 13 : 5.
    (38.0, 39.444, "Thanks, all.", "Maria Lopez"),
    (39.444, 40.0, "Bye!", "John O'Brien"),
    (40.0, 42.0, "Meeting ends.", "Maria Lopez"),  # after a mid-file NOTE; no final newline
]

SRT_EXPECTED = [
    (1.0, 3.5, "Good morning, everyone.", "Maria Lopez"),
    (3.5, 6.0, "Morning! Can you hear me?", "JOHN O'BRIEN"),  # ">> NAME:", " 2 ", "0:00:03,500"
    (6.0, 8.0, "Loud and clear & on time.", "Priya Patel"),  # dot decimal, {\an8}, <font>
    # [Applause] is dropped.
    (10.0, 12.0, "Warning: the budget is final.", None),
    (12.0, 14.0, "Thank you.", "SPEAKER_01"),
    (14.0, 16.0, "No blank line above me.", "Speaker 2"),
    (16.0, 18.0, "This cue has a blank line inside its text.", None),
    # The empty cue 9 is dropped.
    (19.0, 21.0, "so we begin", None),
    (21.0, 23.0, "with revenue", None),  # its first line repeated cue 10's
    # (laughs) is dropped.
    (24.0, 26.0, "Costs are down <5%>.", "Priya Patel"),
]


def test_fixtures_hold_the_byte_level_oddities():
    """Re-saving a fixture in an editor would quietly remove what it is there to test."""
    for name in ("odd_cases.vtt", "odd_cases.srt"):
        data = (DATA / name).read_bytes()
        assert data.startswith(b"\xef\xbb\xbf"), name
        assert b"\r\n" in data and b"\r" in data.replace(b"\r\n", b""), name
        assert b"\n" in data.replace(b"\r\n", b""), name


def test_vtt_fixture():
    cues = read_transcript(DATA / "odd_cases.vtt")
    assert as_tuples(cues) == VTT_EXPECTED
    assert cues[3].end == pytest.approx(8.0 + 4.0 * 7 / 36)
    assert cues[11].start == pytest.approx(30.01)


def test_srt_fixture():
    assert as_tuples(read_transcript(DATA / "odd_cases.srt")) == SRT_EXPECTED


def test_line_endings_do_not_change_the_cues():
    text = (DATA / "odd_cases.vtt").read_bytes().decode("utf-8")
    unix = text.replace("\r\n", "\n").replace("\r", "\n")
    assert parse_vtt(unix) == parse_vtt(text) == parse_vtt(unix.replace("\n", "\r\n"))


def test_fixtures_give_whisper_like_words():
    for name in ("odd_cases.vtt", "odd_cases.srt"):
        cues = read_transcript(DATA / name)
        words = cue_words(cues)
        assert len(words) == sum(len(c.text.split()) for c in cues)
        assert " ".join(w.text.strip() for w in words) == " ".join(c.text for c in cues)
        i = 0
        for cue in cues:
            inside = words[i:i + len(cue.text.split())]
            i += len(inside)
            assert inside[0].start == cue.start and inside[-1].end == cue.end
            for w, nxt in zip(inside, inside[1:] + [None]):
                assert cue.start <= w.start <= w.end <= cue.end
                assert w.speaker == cue.speaker
                assert w.text.startswith(" ") and not w.text.startswith("  ")
                assert w.text.strip() == w.text[1:]
                if nxt:
                    assert nxt.start == w.end  # back to back, non-decreasing


# --- WebVTT structure ---------------------------------------------------------------------

def test_header_blocks_identifiers_and_settings():
    text = ("\ufeffWEBVTT Teams export\nX-TIMESTAMP-MAP=LOCAL:00:00:00.000,MPEGTS:0\n\n"
            "NOTE one\ntwo\n\nSTYLE\n::cue { color: red }\n\nREGION\nid:r1\n\n"
            "5a0f1c2e-4b7d-4c1e-9f3a-2d6e8b9c0a1f/7-1\n"
            "00:01:02.500 --> 00:01:04.000 region:r1 align:start position:10% line:0\n"
            "<v Maria Lopez>Hello</v>\n")
    assert as_tuples(parse_vtt(text)) == [(62.5, 64.0, "Hello", "Maria Lopez")]


def test_vtt_without_header_and_cue_right_under_header():
    assert as_tuples(parse_vtt("1\n00:00:01.000 --> 00:00:02.000\nHi\n")) == [
        (1.0, 2.0, "Hi", None)]
    assert as_tuples(parse_vtt("WEBVTT\n00:01.000 --> 00:02.000\nHi\n")) == [
        (1.0, 2.0, "Hi", None)]


def test_times_in_every_accepted_form():
    for stamp, seconds in [("01:02.500", 62.5), ("1:02:03.5", 3723.5), ("01:02:03,250", 3723.25),
                           ("75:00.000", 4500.0), ("00:00:05", 5.0), ("99:59:59.999", 359999.999)]:
        cues = parse_srt(f"1\n{stamp} --> 100:00:00,000\nx\n")
        assert cues[0].start == pytest.approx(seconds), stamp


def test_lone_cr_line_endings():
    text = ("WEBVTT\r\r00:00:01.000 --> 00:00:02.000\rone\rtwo\r\r"
            "00:00:03.000 --> 00:00:04.000\rthree")
    assert as_tuples(parse_vtt(text)) == [(1.0, 2.0, "one two", None), (3.0, 4.0, "three", None)]


def test_arrow_inside_cue_text_is_text():
    text = "1\n00:00:01,000 --> 00:00:02,000\nFirst line\nInput --> output\n"
    assert parse_srt(text)[0].text == "First line Input --> output"


# --- text ---------------------------------------------------------------------------------

def test_tags_stripped_and_entities_decoded():
    text = ("WEBVTT\n\n00:00:00.000 --> 00:00:05.000\n"
            "<c.yellow.bg_blue>big</c> <b>bold</b> <i>it</i> <u>under</u> <lang fr>oui</lang>"
            " <ruby>東京<rt>とうきょう</rt></ruby>\n"
            "so<00:00:01.500><c> yes</c> &amp; &lt;b&gt; &gt; &nbsp;x&lrm; a < b\n")
    assert parse_vtt(text)[0].text == "big bold it under oui 東京 so yes & <b> > x a < b"


def test_sound_notes_dropped_only_when_they_are_the_whole_cue():
    text = ("1\n00:00:01,000 --> 00:00:02,000\n[Music]\n\n"
            "2\n00:00:02,000 --> 00:00:03,000\n♪♪ [Applause] (laughs)\n\n"
            "3\n00:00:03,000 --> 00:00:04,000\n[Laughter] I agree (laughs)\n")
    assert as_tuples(parse_srt(text)) == [(3.0, 4.0, "[Laughter] I agree (laughs)", None)]


def test_empty_and_whitespace_cues_dropped():
    text = ("1\n00:00:01,000 --> 00:00:02,000\n<i> </i>\n\n2\n00:00:02,000 --> 00:00:03,000\n"
            "&nbsp;\n\n3\n00:00:03,000 --> 00:00:04,000\nkept\n")
    assert as_tuples(parse_srt(text)) == [(3.0, 4.0, "kept", None)]


def test_rolling_duplication_removed():
    """YouTube auto-captions: each cue repeats the line above, via a 10 ms cue."""
    text = ("WEBVTT\nKind: captions\nLanguage: en\n\n"
            "00:00:00.000 --> 00:00:02.000 align:start position:0%\n"
            "welcome<00:00:00.400><c> back</c><00:00:00.900><c> everyone</c>\n\n"
            "00:00:02.000 --> 00:00:02.010 align:start position:0%\nwelcome back everyone\n \n\n"
            "00:00:02.010 --> 00:00:04.000 align:start position:0%\nwelcome back everyone\n"
            "today<00:00:02.500><c> we</c><00:00:03.000><c> talk</c>\n\n"
            "00:00:04.000 --> 00:00:04.010 align:start position:0%\ntoday we talk\n \n\n"
            "00:00:04.010 --> 00:00:06.000 align:start position:0%\ntoday we talk\nabout money\n")
    cues = parse_vtt(text)
    assert as_tuples(cues) == [(0.0, 2.0, "welcome back everyone", None),
                               (2.01, 4.0, "today we talk", None),
                               (4.01, 6.0, "about money", None)]
    assert [w.text for w in cue_words(cues)].count(" today") == 1


def test_a_new_line_that_only_resembles_the_last_is_kept():
    text = "1\n00:00:01,000 --> 00:00:02,000\nNo.\n\n2\n00:00:02,000 --> 00:00:03,000\nNo, no.\n"
    assert [c.text for c in parse_srt(text)] == ["No.", "No, no."]


# --- speakers -----------------------------------------------------------------------------

@pytest.mark.parametrize("line, speaker, text", [
    ("Maria Lopez: Hello.", "Maria Lopez", "Hello."),
    ("[Maria Lopez] Hello.", "Maria Lopez", "Hello."),
    ("[Maria Lopez]: Hello.", "Maria Lopez", "Hello."),
    (">> MARIA: Hello.", "MARIA", "Hello."),
    (">>> MARIA LOPEZ: Hello.", "MARIA LOPEZ", "Hello."),
    (">> Hello there.", None, "Hello there."),  # the mark of a new speaker, who is not named
    ("Speaker 1: Hello.", "Speaker 1", "Hello."),
    ("SPEAKER_01: Hello.", "SPEAKER_01", "Hello."),
    ("Guest B: Hello.", "Guest B", "Hello."),
    ("Dr. Amy Chen: Hello.", "Dr. Amy Chen", "Hello."),
    ("John F. Kennedy: Hello.", "John F. Kennedy", "Hello."),
    ("John A. Smith: Hello.", "John A. Smith", "Hello."),
    ("Maria: Hello.", "Maria", "Hello."),
    ("Jean-Luc O'Neil: Hello.", "Jean-Luc O'Neil", "Hello."),
    ("José Álvarez: Hola.", "José Álvarez", "Hola."),
    ("王伟: 你好", "王伟", "你好"),
    ("Ana de la Cruz: Hola.", "Ana de la Cruz", "Hola."),
    # Not names: a label word, too many words, lower case, sentence punctuation, digits.
    ("Note: the budget is final.", None, "Note: the budget is final."),
    ("Warning: hot.", None, "Warning: hot."),
    ("Example: x.", None, "Example: x."),
    ("Step 1: open it.", None, "Step 1: open it."),
    ("Question: why?", None, "Question: why?"),
    ("Answer: because.", None, "Answer: because."),
    ("Time: 10:30.", None, "Time: 10:30."),
    ("Q: Why?", None, "Q: Why?"),
    ("A: Because.", None, "A: Because."),
    ("I: me.", None, "I: me."),
    ("So: that's it.", None, "So: that's it."),
    ("The Chief Financial Officer Said: no", None, "The Chief Financial Officer Said: no"),
    ("Anna Maria Della Rosa Lopez: hi", None, "Anna Maria Della Rosa Lopez: hi"),
    ("the plan: ship it", None, "the plan: ship it"),
    ("Wait, Maria: look", None, "Wait, Maria: look"),
    ("Really? Yes: sure", None, "Really? Yes: sure"),
    ("Windows 11: released", None, "Windows 11: released"),
    ("At 10:30 we start", None, "At 10:30 we start"),
    ("See https://example.com", None, "See https://example.com"),
    ("[Applause] Thank you.", None, "[Applause] Thank you."),
    ("[inaudible] yes", None, "[inaudible] yes"),
])
def test_speaker_prefixes(line, speaker, text):
    for parse, head in ((parse_vtt, "WEBVTT\n\n"), (parse_srt, "1\n")):
        cues = parse(f"{head}00:00:01.000 --> 00:00:02.000\n{line}\n")
        assert as_tuples(cues) == [(1.0, 2.0, text, speaker)], parse.__name__


def test_voice_tags():
    def speakers(body: str) -> list[tuple]:
        return [(c.speaker, c.text) for c in parse_vtt(f"00:00.000 --> 00:10.000\n{body}\n")]

    assert speakers("<v Maria Lopez>Hi</v>") == [("Maria Lopez", "Hi")]
    assert speakers("<v.loud.first Maria>Hi") == [("Maria", "Hi")]
    assert speakers("<v   Maria   Lopez  >Hi\nthere") == [("Maria Lopez", "Hi there")]
    assert speakers("<v>Hi") == [(None, "Hi")]
    assert speakers("<v Bob>Note: this is it") == [("Bob", "Note: this is it")]
    assert speakers("<v Ann>one</v><v Ann>two") == [("Ann", "one two")]
    assert speakers("<v Ann>(laughs)</v><v Bob>Funny.</v>") == [("Bob", "Funny.")]


def test_two_voices_split_by_text_length():
    cues = parse_vtt("WEBVTT\n\n00:00:10.000 --> 00:00:20.000\n"
                     "<v Ann>Yes.</v> <v Bob>I think that works for us.</v>\n")
    # "Yes." + space = 5, the rest + space = 27: 10 s * 5 / 32.
    assert as_tuples(cues) == [(10.0, 11.562, "Yes.", "Ann"),
                               (11.562, 20.0, "I think that works for us.", "Bob")]
    assert cues[0].end == cues[1].start == pytest.approx(10 + 10 * 5 / 32)
    # The words get the times they would have had from the cue unsplit.
    whole = cue_words([Cue(10.0, 20.0, "Yes. I think that works for us.")])
    assert [t for w in cue_words(cues) for t in (w.start, w.end)] == pytest.approx(
        [t for w in whole for t in (w.start, w.end)])


def test_speaker_line_alone_names_the_lines_under_it():
    cues = parse_srt("1\n00:00:01,000 --> 00:00:03,000\n[Maria Lopez]\nHello there.\n")
    assert as_tuples(cues) == [(1.0, 3.0, "Hello there.", "Maria Lopez")]


# --- errors -------------------------------------------------------------------------------

def test_bad_timestamp_names_its_line():
    text = "1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n00:01:xx,000 --> 00:01:05,000\nbad\n"
    assert error(parse_srt, text) == 'line 6: bad timestamp "00:01:xx,000"'
    assert error(parse_vtt, "WEBVTT\n\n00:00:01.000 --> \nx\n").startswith(
        "line 3: bad timestamp (a time is missing")
    assert error(parse_vtt, "00:61:00.000 --> 01:00:00.000\nx\n") == \
        'line 1: bad timestamp "00:61:00.000"'
    assert error(parse_vtt, "00:00:01.000 --> 00:00:60.000\nx\n") == \
        'line 1: bad timestamp "00:00:60.000"'


def test_end_before_start():
    message = error(parse_vtt, "WEBVTT\n\n00:00:05.000 --> 00:00:04.000\nx\n")
    assert message.startswith("line 3: cue ends before it starts")
    assert "00:00:05.000 --> 00:00:04.000" in message


def test_out_of_order_beyond_a_second():
    text = ("1\n00:02:00,000 --> 00:02:05,000\na\n\n2\n00:02:01,000 --> 00:02:03,000\nb\n\n"
            "3\n00:01:58,500 --> 00:01:59,000\nc\n")
    assert error(parse_srt, text) == ("line 10: cue starts at 00:01:58.500, before the cue "
                                      "above it (00:02:01.000): cues are out of order")
    # Overlap, and starting up to 1 s before the previous start, are fine, in file order.
    ok = text.replace("00:01:58,500 --> 00:01:59,000", "00:02:00,100 --> 00:02:01,500")
    assert [c.text for c in parse_srt(ok)] == ["a", "b", "c"]


def test_negative_and_absurd_times():
    assert error(parse_vtt, "-00:00:01.000 --> 00:00:02.000\nx\n") == \
        'line 1: negative time "-00:00:01.000"'
    assert error(parse_srt, "1\n00:00:01,000 --> 101:00:00,000\nx\n") == \
        'line 2: time "101:00:00,000" is over 100 hours'


def test_no_cues():
    assert error(parse_vtt, "") == "empty file"
    assert error(parse_srt, " \r\n\n\t") == "empty file"
    assert error(parse_vtt, "WEBVTT\n\nNOTE nothing here\n").startswith("no cues found")
    assert error(parse_srt, "just some notes\nabout the meeting\n").startswith("no cues found")
    assert error(parse_vtt, "00:00:01.000 --> 00:00:02.000\n\x00\x01").startswith("binary")
    assert error(parse_srt, "1\n00:00:01,000 --> 00:00:02,000\n[Music]\n\n"
                            "2\n00:00:02,000 --> 00:00:03,000\n<i></i>\n") == \
        "no words in any cue (2 cues, all empty or sound notes like [Music])"


# Pieces of real files, shuffled: whatever comes of them is cues or a TranscriptError.
FRAGMENTS = ["WEBVTT", "\n", "\r\n", "\r", "\n\n", "-->", " --> ", "00:00:01.000", "00:01,5",
             "1:00:00,000", "-00:00:01.000", "<v Bob>", "</v>", "<c.x>", "<00:00:01.000>",
             "Maria: ", "[Ann] ", ">> ", "NOTE", "&amp;", "&#0;", "[Music]", "(laughs)", "hi ",
             "world. ", "1\n", "\x00", "\ufeff", "{\\an8}", "<rt>y</rt>", "<v >", "<", " > ",
             "\u2028", "\x0c"]


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=30))
def test_any_text_gives_cues_or_one_line_error(pieces):
    for parse in (parse_vtt, parse_srt):
        try:
            cues = parse("".join(pieces))
        except TranscriptError as e:
            assert len(str(e).splitlines()) == 1
            continue
        for cue in cues:
            assert cue.text == " ".join(cue.text.split()) and cue.text
            assert 0 <= cue.start <= cue.end <= 100 * 3600
        for w in cue_words(cues):
            assert w.start <= w.end and w.text.startswith(" ")


def test_errors_are_media_errors():
    assert issubclass(TranscriptError, MediaError)


# --- files --------------------------------------------------------------------------------

CUE = "1\n00:00:01,000 --> 00:00:02,500\nMaria Lopez: Café ünïcode ✓\n"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be"])
def test_accepted_encodings(tmp_path, encoding):
    data = CUE.encode(encoding)
    if encoding in ("utf-16-le", "utf-16-be"):  # with its BOM, as editors write it
        data = "\ufeff".encode(encoding) + data
    (tmp_path / "a.srt").write_bytes(data)
    assert as_tuples(read_transcript(tmp_path / "a.srt")) == [
        (1.0, 2.5, "Café ünïcode ✓", "Maria Lopez")]


def test_file_errors(tmp_path):
    def message(name: str, data: bytes | None) -> str:
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(TranscriptError) as e:
            read_transcript(path)
        return str(e.value)

    latin1 = CUE.encode("latin-1", errors="replace").replace(b"?", b"")
    offset = latin1.index(b"\xe9")
    assert message("latin.srt", latin1) == \
        f"not UTF-8 text (byte 0xe9 at offset {offset}); save it as UTF-8"
    assert message("utf16-no-bom.srt", CUE.encode("utf-16-le")).startswith("binary content")
    assert message("image.vtt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR").startswith(
        "binary content (NUL byte at offset 8)")
    assert message("empty.srt", b"") == "empty file (0 bytes)"
    assert message("blank.vtt", b"\r\n\r\n") == "empty file"
    assert message("missing.vtt", None) == "file not found"
    assert message("notes.txt", CUE.encode()) == \
        "not a transcript type (.txt; expected .vtt or .srt)"


def test_webvtt_content_wins_over_the_extension(tmp_path):
    path = tmp_path / "captions.srt"
    path.write_text("WEBVTT\n\nNOTE a VTT comment, which SRT would read as text\n\n"
                    "00:01.000 --> 00:02.000\n<v Ann>Hi\n", encoding="utf-8")
    assert as_tuples(read_transcript(path)) == [(1.0, 2.0, "Hi", "Ann")]
    assert TRANSCRIPT_EXTENSIONS == (".vtt", ".srt")


# --- words --------------------------------------------------------------------------------

def test_words_times_in_proportion_to_length():
    words = cue_words([Cue(2.0, 4.0, "Hello, big world.", "Ann")])
    # " Hello," = 7, " big" = 4, " world." = 7 characters of 18.
    assert [w.text for w in words] == [" Hello,", " big", " world."]
    assert [t for w in words for t in (w.start, w.end)] == pytest.approx(
        [2.0, 2.0 + 2 * 7 / 18, 2.0 + 2 * 7 / 18, 2.0 + 2 * 11 / 18, 2.0 + 2 * 11 / 18, 4.0])
    assert all(isinstance(w, Word) and w.speaker == "Ann" for w in words)


def test_words_of_zero_length_and_overlapping_cues():
    words = cue_words([Cue(5.0, 5.0, "a b"), Cue(6.0, 9.0, "long sentence here", "A"),
                       Cue(7.0, 8.0, "yes", "B")])
    assert [(w.start, w.end) for w in words[:2]] == [(5.0, 5.0), (5.0, 5.0)]
    assert words[-1] == Word(7.0, 8.0, " yes", "B")  # inside its own cue, after A's words
    assert cue_words([]) == []


# --- sidecars -----------------------------------------------------------------------------

def test_find_sidecar(tmp_path):
    media = tmp_path / "meeting.2024-05-01.mp4"
    media.write_bytes(b"")
    stem = "meeting.2024-05-01"
    assert find_sidecar(media) is None

    (tmp_path / f"{stem}.fr.srt").write_text(CUE)
    (tmp_path / f"{stem}.en.vtt").write_text(CUE)
    (tmp_path / f"{stem}.notes.vtt").write_text(CUE)  # not a language tag
    assert find_sidecar(media) == tmp_path / f"{stem}.en.vtt"  # .vtt before .srt

    (tmp_path / f"{stem}.srt").write_text(CUE)
    assert find_sidecar(media) == tmp_path / f"{stem}.srt"  # a plain one first
    (tmp_path / f"{stem}.vtt").write_text(CUE)
    assert find_sidecar(media) == tmp_path / f"{stem}.vtt"


def test_find_sidecar_language_forms_and_other_recordings(tmp_path):
    talk = tmp_path / "talk.mkv"
    (tmp_path / "talk.pt-BR.srt").write_text(CUE)
    assert find_sidecar(talk) == tmp_path / "talk.pt-BR.srt"

    # "talk.de.vtt" beside "talk.de.mp4" is the German recording's own transcript.
    other = tmp_path / "other.mp4"
    (tmp_path / "other.de.mp4").write_bytes(b"")
    (tmp_path / "other.de.vtt").write_text(CUE)
    assert find_sidecar(other) is None
    assert find_sidecar(tmp_path / "other.de.mp4") == tmp_path / "other.de.vtt"

    (tmp_path / "upper.SRT").write_text(CUE)
    assert find_sidecar(tmp_path / "upper.wav") == tmp_path / "upper.SRT"
    (tmp_path / "dir.vtt").mkdir()
    assert find_sidecar(tmp_path / "dir.mp3") is None
