"""Transcript export: every format parsed back by an independent parser."""

from __future__ import annotations

import html
import io

import pytest
import srt
import webvtt

from clipcite.retrieval.schema import TRANSCRIPT, Moment
from clipcite.retrieval.speakers import SpeakerTurn
from clipcite.ui.export import render, to_rttm, to_srt, to_txt, to_vtt


def _line(start: float, end: float, text: str, speaker: str | None) -> Moment:
    return Moment(media_id="m1", path="/x/Q3 planning.mp3", title="Q3 planning", start=start,
                  end=end, score=0.0, modality=TRANSCRIPT, text=text, speaker=speaker)


LINES = [
    _line(0.5, 4.25, "Welcome everyone.\n\nLet's start --> now.", "Maria"),
    _line(4.3, 3725.0, "Budget is <48,000> & approved.", "Speaker 2"),
    _line(3725.5, 3726.0, "Thanks.", None),
]


def test_srt_parses_back_with_times_and_speakers() -> None:
    subs = list(srt.parse(to_srt(LINES)))
    assert [s.index for s in subs] == [1, 2, 3]
    assert subs[0].start.total_seconds() == 0.5 and subs[0].end.total_seconds() == 4.25
    assert subs[1].end.total_seconds() == 3725.0
    assert subs[0].content.startswith("Maria: Welcome everyone.")
    assert "\n" not in subs[0].content  # a blank line inside would end the cue
    assert subs[2].content == "Thanks."


def test_vtt_parses_back_with_voices() -> None:
    captions = webvtt.from_buffer(io.StringIO(to_vtt(LINES)))
    assert len(captions) == 3
    assert captions[0].start_in_seconds == 0 and captions[1].end == "01:02:05.000"
    assert captions[0].voice == "Maria" and captions[1].voice == "Speaker 2"
    # Escaped as VTT requires (a "<" would open a tag); browsers show the original text.
    assert html.unescape(captions[1].text) == "Budget is <48,000> & approved."


def test_txt_reads_as_lines() -> None:
    text = to_txt(LINES)
    assert text.splitlines() == [
        "[00:00:00] Maria: Welcome everyone. Let's start -> now.",
        "[00:00:04] Speaker 2: Budget is <48,000> & approved.",
        "[01:02:05] Thanks.",
    ]


def test_rttm_fields() -> None:
    turns = [SpeakerTurn(0.5, 4.25, "Maria Lopez"), SpeakerTurn(4.3, 9.0, "Speaker 2")]
    rows = [line.split() for line in to_rttm(turns, "Q3 planning").splitlines()]
    assert rows[0] == ["SPEAKER", "Q3_planning", "1", "0.500", "3.750", "<NA>", "<NA>",
                       "Maria_Lopez", "<NA>", "<NA>"]
    assert rows[1][7] == "Speaker_2" and float(rows[1][4]) == pytest.approx(4.7)


def test_unknown_format_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="srt, vtt, txt, rttm"):
        render("docx", LINES, [], "/x/a.mp3")
