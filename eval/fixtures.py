"""Generated test media with exact ground truth (espeak-ng speech, Pillow slides, ffmpeg muxing).

Every recording is assembled from one espeak-ng wav per sentence, trimmed to its first and last
audible sample, so each sentence's start and end in the final file are known to the sample.
Slides change on the video's frame grid, so their on-screen intervals are exact too.
manifest.json in the output directory records both (see eval/README.md).

    python eval/fixtures.py OUT_DIR            # the three test recordings + manifest.json
    python eval/fixtures.py OUT_DIR --long     # ... and the 10-minute benchmark video
    python eval/fixtures.py --sample samples   # only samples/security-training.mp4
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Bump when the generated media change in a way the specs below do not capture.
CONTENT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SAMPLE_RATE = 22050  # espeak-ng's native rate; resampling would only blur the timing
FPS = 5  # slides are still images; 5 fps keeps files small and slide changes on a 0.2 s grid
WIDTH, HEIGHT = 1280, 720
# |int16| above this is speech (about -44 dBFS); espeak-ng's own padding is digital silence.
SILENCE_LEVEL = 200
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")

BACKGROUND = (247, 247, 242)
TITLE_COLOUR = (20, 36, 64)
TEXT_COLOUR = (28, 28, 28)
FOOTER_COLOUR = (70, 70, 70)
ACCENT = (0, 94, 150)
MARGIN = 80
BULLET_INDENT = 40


# --------------------------------------------------------------------------- specifications

@dataclass(frozen=True)
class Voice:
    name: str | None  # speaker written to the manifest (None: unnamed narrator)
    espeak: str       # espeak-ng voice+variant
    speed: int = 150  # words per minute
    pitch: int = 50   # 0..99


@dataclass(frozen=True)
class Line:
    text: str              # what the manifest says was spoken
    say: str | None = None  # espeak-ng input, when its reading of `text` would be wrong

    @property
    def spoken(self) -> str:
        return self.say or self.text


@dataclass(frozen=True)
class Slide:
    title: str
    bullets: tuple[str, ...]
    narration: tuple[Line, ...]  # spoken while the slide is on screen


@dataclass(frozen=True)
class Deck:
    """A narrated slide video."""
    name: str  # output file name; its suffix picks the container
    voice: Voice
    footer: str
    slides: tuple[Slide, ...]


@dataclass(frozen=True)
class Turn:
    speaker: Voice
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class Meeting:
    """An audio-only conversation."""
    name: str
    turns: tuple[Turn, ...]


@dataclass(frozen=True)
class LongDeck:
    """The benchmark video: the decks' slides, paired and cycled, narrated without a break."""
    name: str
    minutes: float


def _lines(*texts: str | tuple[str, str]) -> tuple[Line, ...]:
    return tuple(Line(t) if isinstance(t, str) else Line(*t) for t in texts)


NARRATOR = Voice(None, "en-us", speed=160, pitch=45)

SECURITY = Deck(
    name="security-training.mp4",
    voice=NARRATOR,
    footer="Northwind Traders | Information Security Training",
    slides=(
        Slide("Information Security Training",
              ("Northwind Traders annual course SEC-101",
               "Duration: about 15 minutes",
               "Topics: phishing, passwords, incident reporting"),
              _lines("Welcome to this year's information security training.",
                     "We will cover phishing, passwords, and how to report a security incident.",
                     "Every employee must complete this training by the end of October.")),
        Slide("Spotting Phishing E-mails",
              ("Check the sender's address, not just the name",
               "Hover over links before you click",
               "Urgent requests for money or passwords are red flags",
               "Never open unexpected attachments"),
              _lines("Phishing emails try to trick you into giving away your password "
                     "or sending money.",
                     "Before you click a link, hover over it to see where it really goes.",
                     "Last year, twelve colleagues typed their password into a fake login page.",
                     "If a message feels urgent or too good to be true, stop and check.")),
        Slide("Passwords and MFA",
              ("Minimum length: 14 characters",
               "Use a passphrase of four random words",
               "Never reuse your work password",
               "Turn on multi-factor authentication (MFA)"),
              _lines("A long passphrase is easier to remember and much harder to crack.",
                     "Never use your work password for any other website.",
                     "You can install the company password manager from the Software Center.",
                     "And never approve a sign-in request on your phone that you did not start.")),
        Slide("Reporting an Incident",
              ("E-mail: security@northwind.example",
               "IT Help Desk: ext. 4417",
               "Online form: intranet.northwind.example/report",
               "Do not delete the suspicious message"),
              _lines("If you think you were tricked, or you opened a strange file, "
                     "report it right away.",
                     "Please report it within one hour, even at night or on a weekend.",
                     "Our security officer, Maria Lopez, will contact you and help with "
                     "the next steps.")),
        Slide("Protecting Devices and Data",
              ("Lock your screen: Windows key + L",
               "Keep printed customer data in locked drawers",
               "Use encrypted USB drives only",
               "Clean desk policy: ISP-7.2"),
              _lines("Lock your computer every time you leave your desk, even for a minute.",
                     "If you lose your laptop or phone, report that as well.")),
        Slide("Summary and Quiz",
              ("Think before you click",
               "Use long, unique passphrases",
               "Report incidents quickly",
               "Quiz pass mark: 80%"),
              _lines("Thank you for completing this course.",
                     "Please take the short quiz at the end to receive your certificate.")),
    ),
)

ONBOARDING = Deck(
    name="onboarding-walkthrough.webm",
    voice=Voice(None, "en-us+f2", speed=150, pitch=60),
    footer="Northwind Traders | New Starter Onboarding",
    slides=(
        Slide("Welcome to Northwind",
              ("Your first week, step by step",
               "Start: Monday 9:00, Reception, Building B",
               "Ask for your onboarding buddy"),
              _lines("Welcome to Northwind! This short video walks you through your first week.",
                     "On Monday, please come to the reception desk in Building B at nine o'clock.",
                     "Your manager, James Carter, will meet you there and show you around.")),
        Slide("Laptop and Access Card",
              ("Laptop pickup: IT desk, Room 2.14",
               "Bring a photo ID for your access card",
               "Card office: 8:00-16:00, ground floor"),
              _lines("After the tour, collect your new laptop from the IT desk.",
                     "Your first password will be sent to your personal phone by text message.",
                     "To get your access card, bring a photo ID to the card office.")),
        Slide("First-Week Schedule",
              ("Mon: Welcome session and HR paperwork",
               "Tue: Security training (SEC-101)",
               "Wed: Team lunch at 12:30",
               "Fri: Check-in with your manager"),
              _lines("On Tuesday, you will complete the online security training.",
                     "On Wednesday, your team will take you out for lunch.",
                     "And on Friday, you will have a short check-in with your manager "
                     "to answer any questions.")),
    ),
)

# Three clearly different voices: US female, British male, low US male (tiny.en checked).
SARAH = Voice("Sarah", "en-us+f2", speed=150, pitch=65)
MARK = Voice("Mark", "en-gb-x-rp+m3", speed=145, pitch=45)
TOM = Voice("Tom", "en-us+m7", speed=160, pitch=30)

MEETING = Meeting(
    name="q3-planning-meeting.mp3",
    turns=(
        Turn(SARAH, _lines("Good morning, everyone. Let's start the Q3 planning meeting.",
                           "Today we need to agree on the budget and the launch date "
                           "for the new customer portal.")),
        Turn(MARK, _lines("Thanks, Sarah. The finance team approved a budget of 48,000 dollars "
                          "for the third quarter.",
                          "About 30,000 dollars of that goes to the contractor team.")),
        Turn(TOM, _lines("That works for engineering. We can launch the portal on September 15th.",
                         "The biggest risk is the single sign-on integration with the HR system.",
                         "I already talked to Linda Brown in HR about it.")),
        Turn(SARAH, _lines("Then it's decided: the launch date is September 15th.",
                           "Mark, please send the final spending plan to finance before Friday.")),
        Turn(MARK, _lines("Sure, I will send it before Friday.")),
        Turn(TOM, _lines("I will also finish the API documentation before the end of July.")),
        Turn(SARAH, _lines("Good. We will also move the weekly status call from Monday "
                           "to Wednesday at 10 a.m.")),
        Turn(MARK, _lines("One more thing. Our customer satisfaction score is 72 percent, "
                          "and the goal is 80 percent by December.")),
        Turn(TOM, _lines("To get there, we need one more QA tester on the team.")),
        Turn(SARAH, _lines("Agreed. Tom will write the job posting for the QA tester next week.",
                           "Our next planning meeting is on August 3rd. Thank you, everyone.")),
    ),
)

LONG_VIDEO_NAME = "long-slide-video.mp4"
SPECS: tuple[Deck | Meeting, ...] = (SECURITY, MEETING, ONBOARDING)


def spec_version(spec: Deck | Meeting | LongDeck) -> str:
    """Changes whenever the spec or the way it is rendered changes (reuse check)."""
    data = repr((CONTENT_VERSION, SAMPLE_RATE, FPS, WIDTH, HEIGHT, spec))
    return hashlib.sha256(data.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- speech

def _run(cmd: Sequence[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, SAMPLE_RATE):
            raise RuntimeError(f"{path}: expected mono 16-bit {SAMPLE_RATE} Hz from espeak-ng")
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples.astype(np.int16).tobytes())


def trim_silence(samples: np.ndarray) -> np.ndarray:
    """The samples from the first to the last audible one: the sentence's exact extent."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > SILENCE_LEVEL)
    if loud.size == 0:
        raise RuntimeError("espeak-ng produced silence")
    return samples[loud[0]:loud[-1] + 1]


def synthesize(text: str, voice: Voice, wav_path: Path) -> np.ndarray:
    _run(["espeak-ng", "-v", voice.espeak, "-s", str(voice.speed), "-p", str(voice.pitch),
          "-w", str(wav_path), text])
    return trim_silence(read_wav(wav_path))


Clips = dict[tuple[str, Voice], np.ndarray]


def synthesize_all(jobs: Iterable[tuple[str, Voice]], work: Path) -> Clips:
    """Each distinct (text, voice) once; espeak-ng is single-threaded, so run several."""
    unique = list(dict.fromkeys(jobs))
    texts, voices = [t for t, _ in unique], [v for _, v in unique]
    paths = [work / f"tts-{i:04d}.wav" for i in range(len(unique))]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
        clips = list(pool.map(synthesize, texts, voices, paths))
    return dict(zip(unique, clips))


# --------------------------------------------------------------------------- timeline

class Timeline:
    """Audio samples and manifest items laid out on one sample clock."""

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self.samples = 0
        self.items: list[dict] = []

    @property
    def now(self) -> float:
        return self.samples / SAMPLE_RATE

    def silence_until(self, seconds: float) -> None:
        n = round(seconds * SAMPLE_RATE) - self.samples
        if n > 0:
            self._chunks.append(np.zeros(n, dtype=np.int16))
            self.samples += n

    def pause(self, seconds: float) -> None:
        self.silence_until(self.now + seconds)

    def speak(self, clip: np.ndarray, text: str, speaker: str | None) -> None:
        start = self.now
        self._chunks.append(clip)
        self.samples += clip.size
        self.items.append(_item("speech", text, start, self.now, speaker))

    def audio(self) -> np.ndarray:
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


def _item(kind: str, text: str, start: float, end: float, speaker: str | None) -> dict:
    return {"kind": kind, "text": text, "start": round(start, 3), "end": round(end, 3),
            "speaker": speaker}


def on_frame_grid(seconds: float) -> float:
    """The first frame boundary at or after `seconds` (slides can only change there)."""
    return math.ceil(round(seconds * FPS, 6)) / FPS


# --------------------------------------------------------------------------- slides

def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    path = FONT_DIR / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
    if path.exists():
        return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size)  # Pillow >= 10.1 scales its bundled font


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and ImageDraw.Draw(Image.new("L", (1, 1))).textlength(
                f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def slide_text(title: str, bullets: Sequence[str], footer: str) -> str:
    """The slide's visible text as the manifest records it: one line per title/bullet/footer."""
    return "\n".join([title, *bullets, footer])


def _body_size(title_lines: int, bullets: Sequence[str]) -> int:
    """The largest body font (38 px down to 26 px) whose bullets fit above the footer."""
    for size in (38, 34, 30, 26):
        body = _font(size)
        rows = sum(len(_wrap(b, body, WIDTH - 2 * MARGIN - BULLET_INDENT)) for b in bullets)
        height = rows * int(size * 1.45) + len(bullets) * int(size * 1.45) // 3
        if 104 + 68 * title_lines + height <= HEIGHT - 70:
            return size
    return 26


def render_slide(title: str, bullets: Sequence[str], footer: str) -> Image.Image:
    """Dark text on a light background, large fonts: what a readable training slide looks like."""
    img = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(img)
    margin = MARGIN
    draw.rectangle([0, 0, WIDTH, 14], fill=ACCENT)
    title_font = _font(54, bold=True)
    title_lines = _wrap(title, title_font, WIDTH - 2 * margin)
    y = 60
    for line in title_lines:
        draw.text((margin, y), line, font=title_font, fill=TITLE_COLOUR)
        y += 68
    draw.line([margin, y + 8, WIDTH - margin, y + 8], fill=ACCENT, width=4)
    y += 44
    size = _body_size(len(title_lines), bullets)
    body = _font(size)
    step = int(size * 1.45)
    for bullet in bullets:
        # Drawn dots rather than a bullet glyph, like most slide software renders them.
        r = size // 6
        cy = y + size // 2 + 2
        draw.ellipse([margin, cy - r, margin + 2 * r, cy + r], fill=ACCENT)
        for line in _wrap(bullet, body, WIDTH - 2 * margin - BULLET_INDENT):
            draw.text((margin + BULLET_INDENT, y), line, font=body, fill=TEXT_COLOUR)
            y += step
        y += step // 3
    draw.text((margin, HEIGHT - 56), footer, font=_font(24), fill=FOOTER_COLOUR)
    return img


# --------------------------------------------------------------------------- encoding

_BITEXACT = ["-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
             "-flags:a", "+bitexact"]


def _codec_args(suffix: str) -> list[str]:
    if suffix == ".mp4":
        # veryfast: slower presets cost 2x the time for no visible gain on still slides.
        return ["-c:v", "libx264", "-preset", "veryfast", "-tune", "stillimage", "-crf", "30",
                "-g", str(FPS * 10), "-c:a", "aac", "-aac_coder", "fast", "-b:a", "40k",
                "-movflags", "+faststart"]
    if suffix in (".webm", ".mkv"):
        # Realtime mode: 'good' is ~8x slower here for a 15% smaller file.
        return ["-c:v", "libvpx-vp9", "-crf", "45", "-b:v", "0", "-deadline", "realtime",
                "-cpu-used", "8", "-row-mt", "1", "-g", str(FPS * 10),
                "-c:a", "libopus", "-b:a", "32k", "-ar", "48000"]
    if suffix == ".mp3":
        return ["-c:a", "libmp3lame", "-b:a", "48k"]
    if suffix == ".m4a":
        return ["-c:a", "aac", "-aac_coder", "fast", "-b:a", "48k", "-movflags", "+faststart"]
    if suffix == ".wav":
        return ["-c:a", "pcm_s16le"]
    raise ValueError(f"no encoder settings for {suffix}")


def encode(out: Path, audio_wav: Path, duration: float,
           slides: Sequence[tuple[Path, float, float]] = ()) -> None:
    """Mux the audio (and slide images with their [start, end) times) into `out` atomically."""
    work = audio_wav.parent
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
    if slides:
        concat = work / f"{out.stem}-slides.txt"
        # Bare names (resolved beside the list) need no quoting; images must live in `work`.
        entries = [f"file {img.name}\nduration {end - start:.3f}\n" for img, start, end in slides]
        # The concat demuxer ignores the last entry's duration unless the file is repeated.
        concat.write_text("".join(entries) + f"file {slides[-1][0].name}\n")
        cmd += ["-f", "concat", "-safe", "0", "-i", str(concat)]
    cmd += ["-i", str(audio_wav)]
    if slides:
        # Convert to yuv420p before fps duplicates the frames: once per slide, not per frame.
        cmd += ["-map", "0:v", "-map", "1:a", "-vf", f"format=yuv420p,fps={FPS}"]
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
    cmd += [*_codec_args(out.suffix), *_BITEXACT, "-t", f"{duration:.3f}", str(tmp)]
    _run(cmd)
    os.replace(tmp, out)  # a half-written file must never look like a finished fixture


# --------------------------------------------------------------------------- building

def _pauses(seed: str) -> random.Random:
    # Seeded by the file name: pauses vary like real speech but are the same on every run.
    return random.Random(seed)


def _slides_timeline(slides: Sequence[Slide], voice: Voice, seed: str, clips: Clips,
                     target: float | None = None) -> tuple[Timeline, list[tuple[Slide, float]]]:
    """Lay out narrated slides; each slide appears shortly before its first sentence.

    With `target`, narration stops before the sentence that would run past it.
    """
    rng = _pauses(seed)
    tl = Timeline()
    shown: list[tuple[Slide, float]] = []
    for slide in slides:
        change = 0.0 if not shown else on_frame_grid(tl.now + rng.uniform(0.4, 0.8))
        first = True
        for line in slide.narration:
            clip = clips[(line.spoken, voice)]
            lead = 1.0 if first else rng.uniform(0.3, 0.8)
            start = change + lead if first else tl.now + lead
            if target is not None and start + clip.size / SAMPLE_RATE > target - 1.0:
                return tl, shown
            if first:
                shown.append((slide, change))
                first = False
            tl.silence_until(start)
            tl.speak(clip, line.text, voice.name)
    return tl, shown


def _finish_deck(out: Path, tl: Timeline, shown: list[tuple[Slide, float]], footer: str,
                 work: Path, duration: float) -> dict:
    tl.silence_until(duration)
    audio = work / f"{out.stem}.wav"
    write_wav(audio, tl.audio())
    slide_items, frames = [], []
    for i, (slide, start) in enumerate(shown):
        end = shown[i + 1][1] if i + 1 < len(shown) else duration
        page_footer = f"{footer} | {i + 1}/{len(shown)}"
        img = work / f"{out.stem}-slide-{i:03d}.png"
        render_slide(slide.title, slide.bullets, page_footer).save(img)
        frames.append((img, start, end))
        slide_items.append(_item("slide", slide_text(slide.title, slide.bullets, page_footer),
                                 start, end, None))
    encode(out, audio, duration, frames)
    items = sorted(slide_items + tl.items, key=lambda it: (it["start"], it["kind"]))
    return {"duration": round(duration, 3), "media_type": "video", "items": items}


def build_deck(deck: Deck, out_dir: Path, work: Path) -> dict:
    """A narrated slide video; returns its manifest entry."""
    clips = synthesize_all(((ln.spoken, deck.voice) for s in deck.slides for ln in s.narration),
                           work)
    tl, shown = _slides_timeline(deck.slides, deck.voice, deck.name, clips)
    duration = on_frame_grid(tl.now + 1.5)
    entry = _finish_deck(out_dir / deck.name, tl, shown, deck.footer, work, duration)
    entry["voices"] = {"narrator": deck.voice.espeak}
    return entry


def build_meeting(meeting: Meeting, out_dir: Path, work: Path) -> dict:
    """An audio-only meeting; returns its manifest entry."""
    clips = synthesize_all(((ln.spoken, t.speaker) for t in meeting.turns for ln in t.lines), work)
    rng = _pauses(meeting.name)
    tl = Timeline()
    tl.pause(0.8)
    for n, turn in enumerate(meeting.turns):
        for i, line in enumerate(turn.lines):
            if n or i:
                # Longer gaps between speakers than between one speaker's sentences.
                tl.pause(rng.uniform(0.3, 0.6) if i else rng.uniform(0.8, 1.3))
            tl.speak(clips[(line.spoken, turn.speaker)], line.text, turn.speaker.name)
    tl.pause(1.0)
    audio = work / f"{Path(meeting.name).stem}.wav"
    write_wav(audio, tl.audio())
    encode(out_dir / meeting.name, audio, tl.now)
    voices = {t.speaker.name: t.speaker.espeak for t in meeting.turns}
    return {"duration": round(tl.now, 3), "media_type": "audio", "items": tl.items,
            "voices": voices}


def _long_slides(count: int) -> list[Slide]:
    """The decks' slides, cycled and packed into ~30-40 s modules (at least 7 sentences each)."""
    source = [*SECURITY.slides, *ONBOARDING.slides]
    out: list[Slide] = []
    i = 0
    while len(out) < count:
        group: list[Slide] = []
        while sum(len(s.narration) for s in group) < 7:
            group.append(source[i % len(source)])
            i += 1
        # One title and at most six bullets, so the text stays large enough to read.
        title = f"Module {len(out) + 1}: {group[0].title}"
        bullets = tuple(b for s in group for b in s.bullets[:3])[:6]
        out.append(Slide(title, bullets, tuple(ln for s in group for ln in s.narration)))
    return out


def build_long_deck(spec: LongDeck, out_path: Path, work: Path) -> dict:
    """The benchmark video, exactly `spec.minutes` long; returns its manifest entry."""
    target = on_frame_grid(spec.minutes * 60.0)
    slides = _long_slides(int(target // 25) + 2)  # more than enough
    clips = synthesize_all(((ln.spoken, NARRATOR) for s in slides for ln in s.narration), work)
    tl, shown = _slides_timeline(slides, NARRATOR, spec.name, clips, target)
    entry = _finish_deck(out_path, tl, shown, "Northwind Traders | Staff Handbook", work, target)
    entry["voices"] = {"narrator": NARRATOR.espeak}
    return entry


# --------------------------------------------------------------------------- public API

def _require_tools() -> None:
    missing = [t for t in ("espeak-ng", "ffmpeg") if shutil.which(t) is None]
    if missing:
        raise RuntimeError(f"missing programs: {', '.join(missing)} (Debian: apt-get install "
                           "espeak-ng ffmpeg)")


def _build(spec: Deck | Meeting | LongDeck, out_dir: Path) -> dict:
    _require_tools()
    out_dir.mkdir(parents=True, exist_ok=True)
    # Intermediates live beside the output so the final rename stays on one file system.
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".fixtures-") as tmp:
        work = Path(tmp)
        if isinstance(spec, Deck):
            entry = build_deck(spec, out_dir, work)
        elif isinstance(spec, Meeting):
            entry = build_meeting(spec, out_dir, work)
        else:
            entry = build_long_deck(spec, out_dir / spec.name, work)
    entry["version"] = spec_version(spec)
    return entry


def load_manifest(out_dir: Path) -> dict:
    try:
        manifest = json.loads((out_dir / MANIFEST_NAME).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"files": {}}
    return manifest if isinstance(manifest.get("files"), dict) else {"files": {}}


def _write_manifest(out_dir: Path, manifest: dict) -> None:
    tmp = out_dir / f".{MANIFEST_NAME}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, out_dir / MANIFEST_NAME)


def ensure(spec: Deck | Meeting | LongDeck, out_dir: Path) -> dict:
    """The manifest entry for `spec`, generating the file only if it is missing or outdated."""
    out_dir = Path(out_dir)
    manifest = load_manifest(out_dir)
    entry = manifest["files"].get(spec.name)
    if (out_dir / spec.name).exists() and entry and entry.get("version") == spec_version(spec):
        return entry
    entry = _build(spec, out_dir)
    manifest = load_manifest(out_dir)  # re-read: another process may have added files meanwhile
    manifest["files"][spec.name] = entry
    _write_manifest(out_dir, manifest)
    return entry


def generate_security_training(out_dir: Path) -> dict:
    return ensure(SECURITY, out_dir)


def generate_meeting(out_dir: Path) -> dict:
    return ensure(MEETING, out_dir)


def generate_onboarding(out_dir: Path) -> dict:
    return ensure(ONBOARDING, out_dir)


def make_long_slide_video(out_path: Path, minutes: float = 10) -> dict:
    """A `minutes`-long narrated slide video (slides change every ~30-40 s); its manifest entry.

    Written to out_path; the entry is also recorded in manifest.json beside it.
    """
    if minutes < 0.5:
        raise ValueError("minutes must be at least 0.5 (one narrated slide)")
    out_path = Path(out_path)
    spec = LongDeck(out_path.name, float(minutes))
    return ensure(spec, out_path.parent)


def generate_all(out_dir: Path, include_long: bool = False) -> dict:
    """Generate the test recordings (reusing up-to-date ones); returns the whole manifest.

    {"files": {name: {"duration", "media_type", "version", "voices",
                      "items": [{"kind", "text", "start", "end", "speaker"}, ...]}}}
    """
    out_dir = Path(out_dir)
    for spec in SPECS:
        ensure(spec, out_dir)
    if include_long:
        ensure(LongDeck(LONG_VIDEO_NAME, 10.0), out_dir)
    return load_manifest(out_dir)


def write_sample(samples_dir: Path) -> Path:
    """samples/security-training.mp4 for the first-run demo (no manifest beside it)."""
    samples_dir = Path(samples_dir)
    samples_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=samples_dir, prefix=".fixtures-") as tmp:
        ensure(SECURITY, Path(tmp))
        out = samples_dir / SECURITY.name
        os.replace(Path(tmp) / SECURITY.name, out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate clipcite's test media and manifest.")
    parser.add_argument("out_dir", nargs="?", type=Path, help="where to write media + manifest")
    parser.add_argument("--long", action="store_true",
                        help=f"also write the 10-minute benchmark video ({LONG_VIDEO_NAME})")
    parser.add_argument("--sample", type=Path, metavar="DIR",
                        help="write only DIR/security-training.mp4 (the bundled demo file)")
    args = parser.parse_args(argv)
    if args.out_dir is None and args.sample is None:
        parser.error("give OUT_DIR or --sample DIR")
    t0 = time.perf_counter()
    if args.sample is not None:
        print(f"wrote {write_sample(args.sample)}")
    if args.out_dir is not None:
        manifest = generate_all(args.out_dir, include_long=args.long)
        for name, entry in manifest["files"].items():
            print(f"{name}: {entry['duration']:.1f} s, {len(entry['items'])} items")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
