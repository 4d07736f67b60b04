"""A recording's transcript as subtitle and text files, and its speaker turns as RTTM.

Formats: SRT and WebVTT (players and editors; VTT carries the speaker as a voice tag, which the
web player shows as captions), plain text for reading, RTTM for diarization tools.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from clipcite.retrieval.schema import Moment
from clipcite.retrieval.speakers import SpeakerTurn

FORMATS = ("srt", "vtt", "txt", "rttm")


def _stamp(seconds: float, sep: str) -> str:
    ms = int(round(max(0.0, seconds) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _one_line(text: str) -> str:
    # A blank line ends a cue in SRT and VTT, and "-->" would start a new one.
    return " ".join(text.replace("-->", "->").split())


def to_srt(lines: Sequence[Moment]) -> str:
    cues = []
    for n, m in enumerate(lines, 1):
        who = f"{m.speaker}: " if m.speaker else ""
        cues.append(f"{n}\n{_stamp(m.start, ',')} --> {_stamp(m.end, ',')}\n"
                    f"{who}{_one_line(m.text)}\n")
    return "\n".join(cues)


def _vtt_escape(text: str) -> str:
    """WebVTT's escapes, in cue text and in a voice tag's name alike: a name such as
    `<img src=x onerror=...>` must stay text in every player that reads the captions."""
    return _one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(lines: Sequence[Moment]) -> str:
    cues = ["WEBVTT\n"]
    for m in lines:
        text = _vtt_escape(m.text)
        voice = f"<v {_vtt_escape(m.speaker)}>" if m.speaker else ""
        cues.append(f"{_stamp(m.start, '.')} --> {_stamp(m.end, '.')}\n{voice}{text}\n")
    return "\n".join(cues)


def to_txt(lines: Sequence[Moment]) -> str:
    out = []
    for m in lines:
        who = f" {m.speaker}:" if m.speaker else ""
        out.append(f"[{_stamp(m.start, '.')[:-4]}]{who} {_one_line(m.text)}")
    return "\n".join(out) + ("\n" if out else "")


def rttm_id(text: str) -> str:
    """RTTM fields are separated by spaces: names and file ids keep none."""
    return re.sub(r"\s+", "_", text.strip()) or "unknown"


def to_rttm(turns: Sequence[SpeakerTurn], file_id: str) -> str:
    return "".join(f"SPEAKER {rttm_id(file_id)} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> "
                   f"{rttm_id(t.speaker)} <NA> <NA>\n" for t in turns)


def render(fmt: str, lines: Sequence[Moment], turns: Sequence[SpeakerTurn], path: str) -> str:
    if fmt == "srt":
        return to_srt(lines)
    if fmt == "vtt":
        return to_vtt(lines)
    if fmt == "txt":
        return to_txt(lines)
    if fmt == "rttm":
        return to_rttm(turns, Path(path).stem)
    raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
