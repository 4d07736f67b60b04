"""Media reading through PyAV for every container the product accepts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clipcite.ingestion.media import MediaError, decode_audio, probe, sample_frames
from tests.conftest import ffmpeg

# (extension, ffmpeg arguments after the inputs); video formats carry a moving test picture.
FORMATS = {
    "mp4": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    "mkv": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "libopus"],
    "webm": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-c:a", "libopus"],
    "mov": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    "avi": ["-c:v", "mpeg4", "-c:a", "mp3"],
    "mp3": ["-c:a", "libmp3lame"],
    "wav": ["-c:a", "pcm_s16le"],
    "m4a": ["-c:a", "aac"],
    "flac": ["-c:a", "flac"],
    "ogg": ["-c:a", "libvorbis"],
}
VIDEO = {"mp4", "mkv", "webm", "mov", "avi"}


@pytest.fixture(scope="module")
def encoded(media: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("formats")
    files = {}
    for ext, codec in FORMATS.items():
        dst = out / f"jfk.{ext}"
        inputs = ["-i", str(media / "jfk.flac")]
        if ext in VIDEO:
            inputs = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10:duration=11", *inputs,
                      "-shortest"]
        ffmpeg(*inputs, *codec, str(dst))
        files[ext] = dst
    return files


@pytest.mark.parametrize("ext", sorted(FORMATS))
def test_probe_and_decode_every_format(encoded: dict[str, Path], ext: str):
    info = probe(encoded[ext])
    assert info.has_audio
    assert info.has_video == (ext in VIDEO)
    assert 10.5 <= info.duration <= 11.6
    audio, warning = decode_audio(encoded[ext])
    assert warning is None
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 10.5 <= len(audio) / 16000 <= 11.6
    assert 0.01 < float(np.abs(audio).mean()) < 1.0  # real sound, not silence or garbage


@pytest.mark.parametrize("ext", sorted(VIDEO))
def test_frames_are_sampled_about_every_two_seconds(encoded: dict[str, Path], ext: str):
    frames = list(sample_frames(encoded[ext], interval=2.0))
    times = [t for t, _ in frames]
    assert 5 <= len(frames) <= 7
    assert all(1.8 <= b - a <= 2.3 for a, b in zip(times, times[1:]))
    assert frames[0][1].size == (320, 240) and frames[0][1].mode == "RGB"


def test_decoded_audio_matches_the_source_sample_rate_conversion(media: Path):
    audio, _ = decode_audio(media / "dev00.wav")  # 16 kHz float WAV: a no-op resample
    assert abs(len(audio) / 16000 - probe(media / "dev00.wav").duration) < 0.05


def test_unreadable_inputs_raise_plain_reasons(tmp_path: Path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("minutes of the meeting, not a video\n" * 20)
    with pytest.raises(MediaError, match="empty file"):
        probe(empty)
    with pytest.raises(MediaError, match="not a readable audio or video file"):
        probe(text)
    with pytest.raises(MediaError, match="file not found"):
        probe(tmp_path / "nope.mp4")


def test_sample_buffer_grows_past_a_short_header_and_keeps_every_sample():
    from clipcite.ingestion.media import _Samples

    rng = np.random.default_rng(0)
    chunks = [rng.standard_normal(n).astype(np.float32) for n in (700, 1, 2048, 333, 5000)]
    for capacity in (1, 100, 8082, 100_000):  # too small, about right, far too big
        buf = _Samples(capacity)
        for c in chunks:
            buf.add(c)
        got = buf.array()
        assert got.dtype == np.float32 and np.array_equal(got, np.concatenate(chunks))
