"""Where someone speaks: Silero VAD (the ONNX model that ships inside faster-whisper)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clipcite.ingestion.media import SAMPLE_RATE

# faster-whisper's Silero wrapper runs the ONNX model on up to 10,000 frames of 32 ms at once;
# 10-minute chunks added 230 MB to the peak, 2-minute chunks add 80 MB.
_CHUNK_SECONDS = 120


@dataclass
class VadSettings:
    # Silero's default threshold (0.5) and padding missed 9 s of far-field meeting speech in a
    # 30 s recording; 0.25 with 200 ms padding keeps it.
    threshold: float = 0.25
    pad_ms: int = 200
    min_silence_ms: int = 300
    min_speech_ms: int = 150


def speech_regions(audio: np.ndarray, settings: VadSettings | None = None,
                   ) -> list[tuple[float, float]]:
    """Speech as sorted, non-overlapping (start, end) seconds."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    settings = settings or VadSettings()
    options = VadOptions(threshold=settings.threshold, speech_pad_ms=settings.pad_ms,
                         min_silence_duration_ms=settings.min_silence_ms,
                         min_speech_duration_ms=settings.min_speech_ms)
    chunk = _CHUNK_SECONDS * SAMPLE_RATE
    regions: list[tuple[float, float]] = []
    for offset in range(0, len(audio), chunk):
        part = audio[offset:offset + chunk]
        if len(part) < 512:
            continue
        for ts in get_speech_timestamps(part, options, sampling_rate=SAMPLE_RATE):
            start = (offset + ts["start"]) / SAMPLE_RATE
            end = (offset + ts["end"]) / SAMPLE_RATE
            if regions and start <= regions[-1][1] + 1e-3:  # padding or a chunk seam
                regions[-1] = (regions[-1][0], max(end, regions[-1][1]))
            else:
                regions.append((start, end))
    return regions
