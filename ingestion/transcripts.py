"""Reading transcripts people already have: WebVTT (Teams, Zoom, Meet, YouTube) and SRT.

An imported transcript replaces speech recognition, so its words must come out as Whisper's
do: timed, each with a leading space, carrying the speaker. Files come from many tools and
editors, so the parser is lenient about form (line endings, missing header, comma or dot
decimals, missing blank lines, tags) and strict about times: a timing it cannot read, or
cues far out of order, would put citations at the wrong moment, so the file is refused with
the line that is wrong rather than read half right.
"""

from __future__ import annotations

import codecs
import html
import re
from dataclasses import dataclass
from pathlib import Path

from clipcite.ingestion.media import MEDIA_EXTENSIONS, MediaError
from clipcite.ingestion.segments import Word

TRANSCRIPT_EXTENSIONS: tuple[str, ...] = (".vtt", ".srt")
MAX_HOURS = 100
# Caption tools round and reorder overlapping speakers by a fraction of a second; a cue
# starting more than this before the one above it means the times cannot be trusted.
ORDER_SLACK_SECONDS = 1.0
# A 100-hour transcript is about 10 MB; anything far bigger is not a transcript.
MAX_BYTES = 100_000_000


class TranscriptError(MediaError):
    """A transcript file that cannot be read; str() is one line saying why (e.g. 'line 14: bad
    timestamp "00:01:xx,000"')."""


@dataclass
class Cue:
    start: float  # seconds
    end: float
    text: str  # plain text: tags stripped, entities decoded, lines joined, whitespace normalised
    speaker: str | None = None


_TIME = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[.,](\d+))?")
_TIME_START = re.compile(r"\s*[-\d]")
_VTT_SKIPPED = re.compile(r"(NOTE|STYLE|REGION)(\s|$)")
_VOICE = re.compile(r"<v(?:\.[^\s>]*)?(?:\s+([^>]*))?>|</v\s*>")
_RUBY_TEXT = re.compile(r"<r[tp]>.*?</r[tp]>")  # the reading above a ruby base repeats it
# Only what looks like a tag ("<c.yellow>", "</i>", "<00:00:01.500>"): "a < b" is left alone.
_TAG = re.compile(r"</?(?:[A-Za-z][^<>]*|\d[\d:.]*)>")
_ASS_OVERRIDE = re.compile(r"\{\\[^{}]*\}")  # SRT from subtitle editors: "{\an8}"
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")  # &lrm; etc.
# A cue that is only sound notes ("[Music]", "(laughs)", "♪♪") has no words to find.
_NOTE = re.compile(r"(?:\s*(?:\[[^\[\]]*\]|\([^()]*\)|[♪♫♬♩]+))+\s*")
_CHEVRONS = re.compile(r">>+\s*")  # broadcast captions' mark of a new speaker
_BRACKETED = re.compile(r"\[([^\[\]]{1,60})\]:?\s*(.*)")
_COLON = re.compile(r"([^:\[\]]{1,60}):(?:\s+|$)(.*)")

# The speaker-name rule. "X: text", "[X] text" and ">> X: text" name a speaker only when X
# looks like a name: 1-4 words, each starting with a capital (or a letter of a script without
# case, "王伟"), made of letters with inner ' or - ("O'Brien", "Jean-Luc"), a period only for
# an initial or a title ("John F.", "Dr."), lower-case particles inside ("Ana de la Cruz"); or
# a numbered label ("Speaker 1", "SPEAKER_01", "Guest B"). No word may be one of the common
# label or sentence words below, and one letter alone is a label too: "Note: the budget",
# "Step 1: open", "Q: why?", "So: yes" and "[Applause] thanks" are text, not speakers.
_LABEL = re.compile(r"(?i)(speaker|spk|guest|participant|person|caller|attendee|voice)"
                    r"[ _]?(\d{1,3}|[a-z])")
_NAME_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['’-][^\W\d_])*\.?")
_TITLES = {"dr", "mr", "mrs", "ms", "mx", "prof", "st", "jr", "sr", "rev", "sen", "gen"}
_PARTICLES = {"de", "da", "di", "del", "della", "der", "den", "du", "la", "le", "van", "von",
              "bin", "al", "el", "y", "dos", "das", "ter", "ten"}
_NOT_NAMES = set("""
    note notes nb warning caution important example examples step steps question questions
    answer answers time date tip hint reminder summary agenda update edit ps re fwd
    subject topic item task chapter part section result results total status title source
    translation subtitle subtitles caption captions transcript transcription definition rule
    goal problem solution fact quote price score todo action decision next today
    music applause laughter laughs laughing silence inaudible crosstalk noise cheering cheers
    sighs coughs unintelligible foreign sound sounds background blank audio
    the this that these those it we you he she they so and but or also here there yes no ok
    okay well now then please thanks why what how when where who which because if however
    first second third finally last remember
""".split())


def _is_name(label: str) -> bool:
    words = label.split()
    if not 1 <= len(words) <= 4:
        return False
    if _LABEL.fullmatch(" ".join(words)):
        return True
    if len(words) == 1 and len(label.strip().rstrip(".")) == 1:  # "Q:", "A:", "I:"
        return False
    for i, word in enumerate(words):
        bare = word.rstrip(".").casefold()
        if bare in _NOT_NAMES:
            return False
        if i and word in _PARTICLES:
            continue
        if not _NAME_WORD.fullmatch(word) or word[0].islower():
            return False
        if word.endswith(".") and len(word) > 2 and bare not in _TITLES:
            return False
    return True


def _speaker_prefix(line: str) -> tuple[str | None, str]:
    """The speaker a line names at its start, and the rest of the line."""
    chevrons = _CHEVRONS.match(line)
    if chevrons:
        line = line[chevrons.end():]
    m = _BRACKETED.fullmatch(line) or _COLON.fullmatch(line)
    if m and _is_name(m.group(1)):
        return " ".join(m.group(1).split()), m.group(2)
    return None, line


def _clean(text: str) -> str:
    text = _ASS_OVERRIDE.sub("", _TAG.sub("", _RUBY_TEXT.sub("", text)))
    # Entities after tags: "&lt;b&gt;" is text that reads "<b>", not a tag.
    return " ".join(_INVISIBLE.sub("", html.unescape(text)).split())


def _voices(text: str) -> list[tuple[str | None, str]]:
    """The cue text cut at voice tags: (speaker, raw text) in order. Teams leaves the tag
    unclosed, so a voice lasts until the next voice tag, a </v> or the end of the cue."""
    out: list[tuple[str | None, str]] = []
    speaker, pos = None, 0
    for m in _VOICE.finditer(text):
        out.append((speaker, text[pos:m.start()]))
        is_open = m.group(0).startswith("<v")
        speaker = (_clean(m.group(1) or "") or None) if is_open else None
        pos = m.end()
    out.append((speaker, text[pos:]))
    return out


def _speaker_lines(text: str) -> list[tuple[str | None, str]]:
    """The cue's clean, non-empty lines, each with its speaker. A line naming a speaker
    ("Maria: hi") gives that speaker to the lines under it too; a line that is only a name
    ("[Maria]") just sets the speaker."""
    out = []
    for voice, chunk in _voices(text):
        speaker = voice
        for line in chunk.split("\n"):
            line = _clean(line)
            if voice is None:
                named, line = _speaker_prefix(line)
                speaker = named or speaker
            if line:
                out.append((speaker, line))
    return out


def _repeated(before: list, lines: list) -> int:
    """How many of `lines` open by repeating the last lines of the cue before. YouTube's
    auto-captions roll: each cue shows the previous line again above the new one, and a 10 ms
    cue in between shows it alone; indexed as is, every line would be searchable twice."""
    for k in range(min(len(before), len(lines)), 0, -1):
        if before[-k:] == lines[:k]:
            return k
    return 0


def _split(start: float, end: float, lines: list[tuple[str | None, str]]) -> list[Cue]:
    """One cue per run of one speaker, the cue's time shared by text length (the length plus
    a space, so that words then get the same times as from the unsplit cue)."""
    pieces: list[list] = []
    for speaker, line in lines:
        if pieces and pieces[-1][0] == speaker:
            pieces[-1][1] += " " + line
        else:
            pieces.append([speaker, line])
    total = sum(len(text) + 1 for _, text in pieces)
    cues, done = [], 0
    for i, (speaker, text) in enumerate(pieces):
        a = min(start + (end - start) * done / total, end)
        done += len(text) + 1
        b = end if i == len(pieces) - 1 else min(start + (end - start) * done / total, end)
        if not _NOTE.fullmatch(text):
            cues.append(Cue(a, b, text, speaker))
    return cues


def _short(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())  # a message is one line, whatever the file holds
    return text if len(text) <= limit else text[:limit] + "…"


def _seconds(stamp: str, n: int) -> float:
    if stamp.startswith("-"):
        raise TranscriptError(f'line {n}: negative time "{_short(stamp)}"')
    m = _TIME.fullmatch(stamp)
    # Minutes may pass 59 only without an hour field ("75:10.000" is unambiguous).
    if not m or (m[1] is not None and int(m[2]) > 59) or int(m[3]) > 59:
        raise TranscriptError(f'line {n}: bad timestamp "{_short(stamp)}"')
    hours, minutes, secs, frac = m.groups()
    value = int(hours or 0) * 3600 + int(minutes) * 60 + int(secs)
    if frac:
        value += int(frac) / 10 ** len(frac)
    if value > MAX_HOURS * 3600:
        raise TranscriptError(f'line {n}: time "{_short(stamp)}" is over {MAX_HOURS} hours')
    return value


def _timing(line: str, n: int) -> tuple[float, float]:
    left, _, right = line.partition("-->")
    start, rest = left.strip(), right.split()  # after the end time: cue settings, ignored
    if not start or not rest:
        raise TranscriptError(f'line {n}: bad timestamp (a time is missing in "{_short(line)}")')
    a, b = _seconds(start, n), _seconds(rest[0], n)
    if b < a:
        raise TranscriptError(f'line {n}: cue ends before it starts ("{_short(line)}")')
    return a, b


def _is_timing(line: str, opens_block: bool) -> bool:
    # In text an arrow can be words ("A --> B"); where a timing belongs, or when it starts
    # like a time, a line with "-->" is read as a timing, so that a broken one is reported.
    return "-->" in line and (opens_block or _TIME_START.match(line) is not None)


@dataclass
class _Raw:
    start: float
    end: float
    lines: list[str]


def _parse(text: str, vtt: bool) -> list[Cue]:
    if "\x00" in text:
        raise TranscriptError("binary content (NUL bytes), not a text transcript")
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise TranscriptError("empty file")
    raws: list[_Raw] = []

    def attach(lines: list[str]) -> None:
        # Text outside a cue is a cue's text broken by a blank line; a lone number is an SRT
        # cue number cut off from its timing. Before the first cue it is header matter.
        if raws and lines and not (len(lines) == 1 and lines[0].strip().isdigit()):
            raws[-1].lines.extend(lines)

    for first, block in _blocks(text.replace("\r\n", "\n").replace("\r", "\n").split("\n")):
        if vtt and not raws and block[0].startswith("WEBVTT"):
            first, block = first + 1, block[1:]  # "Kind: captions" etc. follow in the block
        elif vtt and _VTT_SKIPPED.match(block[0]):
            continue
        pending: list[str] = []  # text lines not yet given to a cue
        timed = False
        for j, line in enumerate(block):
            if not _is_timing(line, not timed and j <= 1):
                pending.append(line)
                continue
            # The line above a timing is the cue's identifier ("12", a Teams GUID) when it
            # opens the block, or when it is a number (an SRT missing its blank line).
            if pending and (j == 1 or pending[-1].strip().isdigit()):
                pending.pop()
            if timed:
                raws[-1].lines.extend(pending)
            else:
                attach(pending)
            pending, timed = [], True
            start, end = _timing(line, first + j)
            if raws and start < raws[-1].start - ORDER_SLACK_SECONDS:
                raise TranscriptError(
                    f"line {first + j}: cue starts at {_clock(start)}, before the cue above it "
                    f"({_clock(raws[-1].start)}): cues are out of order")
            raws.append(_Raw(start, end, []))
        if timed:
            raws[-1].lines.extend(pending)
        else:
            attach(pending)
    if not raws:
        raise TranscriptError('no cues found (no timing lines like "00:00:01.000 --> '
                              '00:00:04.000")')
    cues: list[Cue] = []
    before: list[tuple[str | None, str]] = []
    for raw in raws:
        lines = _speaker_lines("\n".join(raw.lines))
        if lines:
            lines, before = lines[_repeated(before, lines):], lines
        cues.extend(_split(raw.start, raw.end, lines))
    if not cues:  # nothing to search or cite: as unusable as a file without cues
        raise TranscriptError(f"no words in any cue ({len(raws)} cues, all empty or sound "
                              "notes like [Music])")
    return cues


def _blocks(lines: list[str]) -> list[tuple[int, list[str]]]:
    """Runs of non-blank lines, each with the 1-based number of its first line."""
    blocks: list[tuple[int, list[str]]] = []
    blank = True
    for n, line in enumerate(lines, 1):
        if line.strip():
            if blank:
                blocks.append((n, []))
            blocks[-1][1].append(line)
        blank = not line.strip()
    return blocks


def _clock(seconds: float) -> str:
    return f"{int(seconds // 3600):02d}:{int(seconds % 3600 // 60):02d}:{seconds % 60:06.3f}"


def parse_vtt(text: str) -> list[Cue]:
    """The cues of a WebVTT file's text. The WEBVTT header is optional (many tools leave it
    out); NOTE, STYLE and REGION blocks are skipped. Raises TranscriptError."""
    return _parse(text, vtt=True)


def parse_srt(text: str) -> list[Cue]:
    """The cues of an SRT file's text. Raises TranscriptError."""
    return _parse(text, vtt=False)


def _decode(data: bytes) -> str:
    if not data:
        raise TranscriptError("empty file (0 bytes)")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")  # the BOM says which byte order, and is dropped
        except UnicodeDecodeError as e:
            raise TranscriptError(f"broken UTF-16 text (at offset {e.start}); save it as "
                                  "UTF-8") from None
    nul = data.find(b"\x00")
    if nul >= 0:
        raise TranscriptError(f"binary content (NUL byte at offset {nul}), not a text "
                              "transcript")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TranscriptError(f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset "
                              f"{e.start}); save it as UTF-8") from None


def read_transcript(path: Path) -> list[Cue]:
    """Decode the file (UTF-8 with or without BOM, or UTF-16 with BOM) and parse it by its
    extension; a file starting with WEBVTT is WebVTT whatever its extension. Raises
    TranscriptError."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise TranscriptError(f"too large for a transcript ({size / 1e6:.0f} MB)")
        data = path.read_bytes()
    except FileNotFoundError:
        raise TranscriptError("file not found") from None
    except IsADirectoryError:
        raise TranscriptError("a folder, not a transcript file") from None
    except PermissionError:
        raise TranscriptError("cannot read the file: permission denied") from None
    except OSError as e:
        raise TranscriptError(f"cannot read the file: {e.strerror or e}") from None
    text = _decode(data).removeprefix("\ufeff")
    suffix = path.suffix.lower()
    if text.startswith("WEBVTT") or suffix == ".vtt":
        return parse_vtt(text)
    if suffix == ".srt":
        return parse_srt(text)
    raise TranscriptError(f"not a transcript type ({suffix or 'no extension'}; expected "
                          ".vtt or .srt)")


def cue_words(cues: list[Cue]) -> list[Word]:
    """Split every cue's text into words with times interpolated inside the cue in proportion
    to character length (so a long cue can later be cut at sentence ends with sensible times).
    Each Word.text starts with a single space like Whisper's output (" hello,"), keeps its
    punctuation, and carries the cue's speaker. Words are within [cue.start, cue.end] and
    back to back; they follow the cues' order, so words go back in time only where cues do
    (two people speaking at once)."""
    words: list[Word] = []
    for cue in cues:
        pieces = [" " + w for w in cue.text.split()]
        # Each word's share counts its leading space, so "a" and "I" still get some time.
        total, done, span = sum(map(len, pieces)), 0, cue.end - cue.start
        for i, piece in enumerate(pieces):
            a = min(cue.start + span * done / total, cue.end)
            done += len(piece)
            b = cue.end if i == len(pieces) - 1 else min(cue.start + span * done / total, cue.end)
            words.append(Word(a, b, piece, cue.speaker))
    return words


_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*")  # "en", "pt-BR", "en-orig"


def find_sidecar(media: Path) -> Path | None:
    """The transcript beside a media file: same stem with .vtt or .srt (prefer .vtt), also a
    language-suffixed one like 'meeting.en.vtt' when no plain one exists. None if none."""
    media = Path(media)
    folder, stem = media.parent, media.stem
    for ext in TRANSCRIPT_EXTENSIONS:
        for suffix in (ext, ext.upper()):
            path = folder / (stem + suffix)
            if path != media and path.is_file():
                return path
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError:
        return None
    found = []
    for name in names:
        if not name.startswith(stem + "."):
            continue
        middle, _, ext = name[len(stem) + 1:].rpartition(".")
        if "." + ext.lower() not in TRANSCRIPT_EXTENSIONS or not _LANGUAGE.fullmatch(middle):
            continue
        # "talk.de.vtt" beside "talk.de.mp4" is that recording's transcript, not this one's.
        if any((folder / f"{stem}.{middle}{m}").exists() for m in MEDIA_EXTENSIONS):
            continue
        if (folder / name).is_file():
            found.append(folder / name)
    found.sort(key=lambda p: (TRANSCRIPT_EXTENSIONS.index(p.suffix.lower()), p.name))
    return found[0] if found else None
