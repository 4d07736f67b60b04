"""Reading recordings through PyAV (bundled FFmpeg libraries; no ffmpeg binary needed)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

SAMPLE_RATE = 16000
MEDIA_EXTENSIONS = frozenset({
    ".mp4", ".mkv", ".webm", ".mov", ".avi", ".mp3", ".wav", ".m4a", ".flac", ".ogg",
})


# Bounds that no header can lift: a header's duration is the file's own claim, and a forged one
# must not size a buffer or a time limit. MAX_MEDIA_SECONDS is the default absolute cap on one
# recording (a long working day; its audio is 2.8 GB of float32 samples). MIN_BYTES_PER_SECOND
# is the lowest sane audio bitrate, 1 kbit/s (speech codecs go down to 4.75-6 kbit/s; an hour of
# digitally silent FLAC is 182 B/s): a file of N bytes holds at most N / 125 s of sound. Below
# MIN_SOUND_SECONDS a small file is not held to that.
MAX_MEDIA_SECONDS = 12 * 3600.0
MIN_BYTES_PER_SECOND = 125
MIN_SOUND_SECONDS = 60.0
TICK_SECONDS = 30.0  # of decoded sound between two progress calls (decode_audio's on_time)


def sound_seconds_cap(size: int, max_seconds: float = MAX_MEDIA_SECONDS) -> float:
    """The most seconds of sound a file of `size` bytes may decode to."""
    return min(max_seconds, max(MIN_SOUND_SECONDS, size / MIN_BYTES_PER_SECOND))


def _clock(seconds: float) -> str:
    """A length for people: "41 s", "23 min", "1193 h"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.0f} h"


def _bytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"


class MediaError(Exception):
    """A recording that cannot be read; the message is a one-line reason for people."""


@dataclass
class MediaInfo:
    path: Path
    duration: float
    has_audio: bool
    has_video: bool
    width: int = 0
    height: int = 0
    fps: float = 0.0
    title: str | None = None
    created_at: float | None = None


def _open(path: Path) -> av.container.InputContainer:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise MediaError("file not found") from None
    except PermissionError:
        raise MediaError("cannot read the file: permission denied") from None
    if size == 0:
        raise MediaError("empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise MediaError("cannot read the file: permission denied")
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except PermissionError:
        raise MediaError("cannot read the file: permission denied") from None
    except av.error.InvalidDataError:
        kind = _sniff(path)
        if kind:
            raise MediaError(f"truncated or corrupt {kind} file (its header is there, the rest "
                             "cannot be read)") from None
        raise MediaError("not a readable audio or video file (unknown or corrupt format)") from None
    except av.error.FFmpegError as e:
        raise MediaError(f"cannot open as media: {_ffmpeg_reason(e)}") from None


_MAGIC = (  # (offset, bytes, kind): enough to tell "damaged media" from "not media at all"
    (4, b"ftyp", "MP4/MOV"), (0, b"\x1aE\xdf\xa3", "MKV/WebM"), (0, b"RIFF", "WAV/AVI"),
    (0, b"fLaC", "FLAC"), (0, b"OggS", "Ogg"), (0, b"ID3", "MP3"),
)


def _sniff(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    return next((kind for off, magic, kind in _MAGIC if head[off:off + len(magic)] == magic), None)


def _ffmpeg_reason(e: Exception) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return " ".join(str(text).split())[:200]


def _parse_creation_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def probe(path: Path, max_seconds: float = MAX_MEDIA_SECONDS) -> MediaInfo:
    """Duration, streams and container tags. Raises MediaError with a readable reason, also
    when the header claims a length beyond `max_seconds`, or more sound than the file's size
    can hold (a forged or damaged header)."""
    with _open(path) as container:
        audio = container.streams.audio[0] if container.streams.audio else None
        video = next((s for s in container.streams.video
                      if not (s.disposition & av.stream.Disposition.attached_pic)), None)
        if audio is None and video is None:
            raise MediaError("no audio or video stream in the file")
        duration = _duration(container, audio, video)
        _check_claim(duration, path.stat().st_size, audio is not None, max_seconds)
        meta = {k.lower(): v for k, v in (container.metadata or {}).items()}
        info = MediaInfo(
            path=path, duration=duration, has_audio=audio is not None,
            has_video=video is not None, title=(meta.get("title") or "").strip() or None,
            created_at=_parse_creation_time(meta.get("creation_time")),
        )
        if video is not None:
            info.width = video.codec_context.width or 0
            info.height = video.codec_context.height or 0
            rate = video.average_rate or video.guessed_rate
            info.fps = float(rate) if rate else 0.0
        return info


def _check_claim(duration: float, size: int, has_audio: bool, max_seconds: float) -> None:
    if duration > max_seconds:
        raise MediaError(f"its header claims {_clock(duration)}, more than the "
                         f"{_clock(max_seconds)} one recording may last (forged or damaged "
                         "header, or a recording to split)")
    # Only sound is held to the size: a silent slide video can be tiny for its length, and
    # its frames (which are in the file) are what the work is.
    if has_audio and duration > sound_seconds_cap(size, max_seconds):
        raise MediaError(f"its header claims {_clock(duration)}, more sound than a file of "
                         f"{_bytes(size)} can hold (forged or damaged header)")


def _duration(container, audio, video) -> float:
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    best = 0.0
    for stream in (audio, video):
        if stream is not None and stream.duration and stream.time_base:
            best = max(best, float(stream.duration * stream.time_base))
    return best


def decode_audio(path: Path, sample_rate: int = SAMPLE_RATE,
                 max_seconds: float = MAX_MEDIA_SECONDS,
                 on_time: Callable[[float], None] | None = None,
                 ) -> tuple[np.ndarray, str | None]:
    """The first audio track as mono float32 at `sample_rate`.

    Returns (samples, warning). A stream that breaks part-way (a truncated file) keeps what
    decoded before the break and says so in the warning, so that half a recording is still
    searchable rather than lost. Sound past sound_seconds_cap (the file's size, `max_seconds`)
    is a MediaError: a small file that decodes to hours is a decompression bomb. `on_time`
    hears the decoded length about every TICK_SECONDS of sound (progress, for stall checks).
    """
    warning = None
    with _open(path) as container:
        size = path.stat().st_size
        limit = sound_seconds_cap(size, max_seconds)
        if not container.streams.audio:
            raise MediaError("no audio track")
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        # Samples go straight into one buffer sized from the container's duration: a list of
        # chunks joined at the end held the audio twice (a 1-hour file peaked 430 MB above
        # its 220 MB of samples). The header only sizes it up to the cap; past that it grows.
        claimed = container.duration / av.time_base if container.duration else 60.0
        most = int(limit * sample_rate)
        samples = _Samples(int(min(claimed, limit) * sample_rate) + sample_rate, most)
        tick = step = int(TICK_SECONDS * sample_rate)
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    samples.add(out.to_ndarray().reshape(-1))
                if samples.size > most:
                    raise _too_much_sound(limit, size, max_seconds)
                if on_time is not None and samples.size >= tick:
                    tick = samples.size + step
                    on_time(samples.size / sample_rate)
            for out in resampler.resample(None):
                samples.add(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as e:
            if not samples.size:
                raise MediaError(f"audio cannot be decoded: {_ffmpeg_reason(e)}") from None
            done = samples.size / sample_rate
            warning = f"audio decoding stopped at {done:.1f} s (file damaged or truncated)"
    return samples.array(), warning


def _too_much_sound(limit: float, size: int, max_seconds: float) -> MediaError:
    if limit < max_seconds:
        return MediaError(f"decodes to more sound than a file of {_bytes(size)} can hold (over "
                          f"{_clock(limit)}): damaged or forged file")
    return MediaError(f"more than {_clock(limit)} of sound, the most one recording may hold "
                      "(a recording to split)")


class _Samples:
    """A growable float32 buffer: amortised appends, one copy of the audio at a time."""

    def __init__(self, capacity: int, most: int | None = None) -> None:
        self._buf = np.empty(max(capacity, 1), dtype=np.float32)
        self._most = most  # growth stops here (the caller fails past it): no 1.5x overshoot
        self.size = 0

    def add(self, chunk: np.ndarray) -> None:
        end = self.size + len(chunk)
        if end > len(self._buf):  # the header's duration was short (or missing)
            target = int(len(self._buf) * 1.5)
            if self._most is not None:
                target = min(target, self._most + 1)
            grown = np.empty(max(end, target), dtype=np.float32)
            grown[:self.size] = self._buf[:self.size]
            self._buf = grown
        self._buf[self.size:end] = chunk
        self.size = end

    def array(self) -> np.ndarray:
        # A view when the estimate was close; a copy when it was far too big, so a wrong
        # header cannot pin memory the audio does not need.
        if self.size < 0.9 * len(self._buf):
            return self._buf[:self.size].copy()
        return self._buf[:self.size]


def sample_frames(path: Path, interval: float = 2.0, max_width: int = 1280,
                  on_time: Callable[[float], None] | None = None,
                  ) -> Iterator[tuple[float, Image.Image]]:
    """Yield (time, RGB image) about every `interval` seconds of the first video stream.

    Every frame is decoded (seeking costs about as much with sparse keyframes), but only the
    sampled ones are converted to images, which is where the time would go.
    """
    with _open(path) as container:
        video = next((s for s in container.streams.video
                      if not (s.disposition & av.stream.Disposition.attached_pic)), None)
        if video is None:
            return
        video.thread_type = "AUTO"
        next_t = 0.0
        try:
            for frame in container.decode(video):
                if frame.time is None:
                    continue
                t = float(frame.time)
                if t + 1e-6 < next_t:
                    continue
                next_t = t + interval
                width = min(frame.width, max_width)
                height = int(round(frame.height * width / frame.width / 2)) * 2
                image = frame.to_image(width=width, height=max(height, 2))
                if on_time is not None:
                    on_time(t)
                yield t, image
        except av.error.FFmpegError:
            # A damaged tail: keep the frames already yielded (decode_audio reports the damage).
            return
