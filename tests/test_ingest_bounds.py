"""Bounded work: a file's header cannot size a buffer or lift a time limit, a worker that stops
making progress is given up, and SIGTERM stops an ingest with its worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import tracemalloc
from pathlib import Path

import pytest

from clipcite.ingestion.batch import BatchOptions, _Job, _time_limit, run_batch
from clipcite.ingestion.media import MediaError, decode_audio, probe, sound_seconds_cap
from clipcite.retrieval.catalog import Recording
from clipcite.retrieval.index import Index
from clipcite.retrieval.schema import MODALITIES, TRANSCRIPT
from tests.conftest import CLI, ffmpeg

_TOTAL_SAMPLES = 18  # byte offset of STREAMINFO's sample-rate .. total-samples field in FLAC


def _flac_claiming(src: Path, dst: Path, total_samples: int) -> Path:
    """A copy of a FLAC file whose header claims `total_samples` (36 bits; 0: unknown)."""
    data = bytearray(src.read_bytes())
    assert data[:4] == b"fLaC"
    field = int.from_bytes(data[_TOTAL_SAMPLES:_TOTAL_SAMPLES + 8], "big")
    field = (field & ~((1 << 36) - 1)) | total_samples
    data[_TOTAL_SAMPLES:_TOTAL_SAMPLES + 8] = field.to_bytes(8, "big")
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="module")
def made(media: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bounded")
    speech = d / "speech.flac"  # 11 s of real speech at 16 kHz, 0.2 MB
    ffmpeg("-i", str(media / "jfk.flac"), "-ar", "16000", "-ac", "1", str(speech))
    silence = d / "silence.flac"  # two hours of silence in 33 kB: large FLAC blocks
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "7200", "-c:a", "flac",
           "-frame_size", "65535", str(silence))
    long = d / "long meeting.wav"  # two minutes of real speech from four recordings
    inputs = [arg for name in ("dev00", "dev01", "tst00", "sample")
              for arg in ("-i", str(media / f"{name}.wav"))]
    ffmpeg(*inputs, "-filter_complex", "concat=n=4:v=0:a=1", "-ar", "16000", "-ac", "1",
           str(long))
    return {
        # 2^36 - 1 samples: 49 days (the old code asked for a 256 GiB buffer)
        "forged": _flac_claiming(speech, d / "forged.flac", (1 << 36) - 1),
        # three hours: under the absolute cap, far beyond what 0.2 MB of sound can be
        "forged_3h": _flac_claiming(speech, d / "forged 3h.flac", 3 * 3600 * 16000),
        # says nothing of its length, then decodes to two hours: a decompression bomb
        "bomb": _flac_claiming(silence, d / "bomb.flac", 0),
        "long": long,
    }


def _peak_mb(fn) -> tuple[object, float]:
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def test_a_forged_length_in_the_header_is_refused_with_a_reason(made: dict[str, Path]):
    with pytest.raises(MediaError, match=r"its header claims 1193 h, more than the 12 h"):
        probe(made["forged"])
    size_kb = made["forged_3h"].stat().st_size / 1e3
    with pytest.raises(MediaError, match=rf"3 h, more sound than a file of {size_kb:.0f} kB"):
        probe(made["forged_3h"])


def test_a_forged_header_does_not_size_the_decode_buffer(made: dict[str, Path]):
    """The header sizes the buffer only within what the file's size can hold (the old code
    asked for 256 GiB here and failed with MemoryError)."""
    (audio, warning), peak = _peak_mb(lambda: decode_audio(made["forged"]))
    assert 10.5 < len(audio) / 16000 < 11.5 and warning is None
    bound = sound_seconds_cap(made["forged"].stat().st_size) * 16000 * 4 / 1e6
    assert bound < 250 and peak < bound + 10, f"{peak:.0f} MB for 11 s of sound"


def test_a_decompression_bomb_stops_at_what_its_size_can_hold(made: dict[str, Path]):
    size = made["bomb"].stat().st_size
    cap = sound_seconds_cap(size)
    assert cap < 600  # 33 kB
    started = time.monotonic()
    tracemalloc.start()
    try:
        with pytest.raises(MediaError, match="decodes to more sound than a file of 33 kB can hold"):
            decode_audio(made["bomb"])
        peak = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 30
    assert peak < cap * 16000 * 4 * 2.2 / 1e6 + 5  # the capped buffer and one copy (2 hours: 460)
    # An absolute cap smaller than the size's wins, with its own reason.
    with pytest.raises(MediaError, match="more than 90 s of sound, the most one recording"):
        decode_audio(made["bomb"], max_seconds=90)


def test_the_time_limit_follows_the_file_size_not_its_header():
    job = _Job(path=Path("x.flac"), rec=Recording("m", "x.flac", "X", "pending", size=200_000),
               duration=4_294_967.0)  # what a forged header reports
    assert _time_limit(job, BatchOptions()) == 120 + 3 * 1600
    job.rec.size = 10**12  # a huge file: the absolute cap
    assert _time_limit(job, BatchOptions()) == 120 + 3 * 12 * 3600
    assert _time_limit(job, BatchOptions(file_timeout=30)) == 30


def test_forged_files_fail_fast_and_a_long_recording_still_ingests(made: dict[str, Path],
                                                                   tmp_path: Path,
                                                                   extract_options):
    index = Index(tmp_path / "index")
    files = [made["forged"], made["bomb"], made["long"]]
    started = time.monotonic()
    outcomes = {Path(o.path).name: o for o in
                run_batch(files, index, BatchOptions(extract=extract_options, groups=["hr"]))}
    took = time.monotonic() - started
    forged, bomb, long = (outcomes[p.name] for p in files)
    assert forged.status == "failed" and "its header claims 1193 h" in forged.reason
    assert bomb.status == "failed" and "decodes to more sound" in bomb.reason
    assert forged.seconds < 60 and bomb.seconds < 60
    assert long.status == "indexed", long.reason
    rec = index.catalog.by_path(str(made["long"]))
    assert 119 < rec.duration < 121 and rec.counts[TRANSCRIPT] > 10
    for path in (made["forged"], made["bomb"]):  # failed, final until the file changes
        failed = index.catalog.by_path(str(path))
        assert failed.status == "failed" and failed.content_hash and failed.groups == ["hr"]
    assert took < 300, f"batch took {took:.0f} s"


def test_a_worker_that_reports_no_progress_is_given_up(made: dict[str, Path], tmp_path: Path,
                                                       extract_options):
    """Real work with a stall limit shorter than loading a speech model: the file is given up
    for want of progress (not for its length), transient, so the next run tries it again."""
    index = Index(tmp_path / "index")
    started = time.monotonic()
    out = run_batch([made["long"]], index, BatchOptions(extract=extract_options,
                                                        stall_timeout=0.5, groups=["hr"]))
    assert out[0].status == "failed"
    assert out[0].reason == "no progress for 0.5 s (the decoder hung, or the file is damaged)"
    assert time.monotonic() - started < 60
    rec = index.catalog.by_path(str(made["long"]))
    assert rec.content_hash is None and rec.groups == ["hr"]  # tried again next time


# -- SIGTERM -----------------------------------------------------------------------------------
def _session(sid: int) -> list[tuple[int, str]]:
    """Live processes of a session: (pid, command line)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if stat[0] != "Z" and int(stat[3]) == sid:  # state, session id
            found.append((int(entry), cmd))
    return found


def _wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_sigterm_stops_the_ingest_and_its_workers_and_keeps_the_index(media: Path,
                                                                       made: dict[str, Path],
                                                                       tmp_path: Path, run_cli):
    index_dir = tmp_path / "index"
    run_cli("ingest", str(media / "jfk.flac"), "--index", str(index_dir), "--no-speakers")
    said, told = tmp_path / "stderr.txt", tmp_path / "stdout.txt"
    with open(said, "wb") as err, open(told, "wb") as out:
        proc = subprocess.Popen([str(CLI), "ingest", str(made["long"]), "--index",
                                 str(index_dir)], stdout=out, stderr=err,
                                start_new_session=True)
    try:
        # A worker (a child of the forkserver, both "forkserver" on their command line) is on
        # the file; give it a few seconds into the work.
        assert _wait_for(lambda: sum("forkserver" in c for _, c in _session(proc.pid)) >= 2,
                         120), _session(proc.pid)
        time.sleep(4)
        assert proc.poll() is None, "the ingest ended before it could be stopped"
        os.kill(proc.pid, signal.SIGTERM)  # the CLI only, as `kill PID` or a service stop
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        assert _wait_for(lambda: not _session(proc.pid), 20), _session(proc.pid)
        # No traceback, and no semaphore left to the resource tracker by a killed worker.
        assert "Traceback" not in said.read_text() and "leaked" not in said.read_text()
        assert "Stopped (terminated)" in told.read_text()  # as Ctrl-C says, in words
    finally:
        for pid, _ in _session(proc.pid):  # never leave them behind, even when failing
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
    index = Index(index_dir)
    jfk = index.catalog.by_path(str(media / "jfk.flac"))
    assert jfk.status == "indexed"
    hits = index.hydrate(index.keyword_hits("ask not what your country can do", (TRANSCRIPT,), 3,
                                            [jfk.gen])[TRANSCRIPT], {jfk.gen})
    assert hits and hits[0].metadata["media_id"] == jfk.media_id
    for rec in index.catalog.all():  # what search can see is whole recordings only
        if rec.gen:
            for modality in MODALITIES:
                stored = index.collection(modality).get(where={"gen": rec.gen}, include=[])
                assert len(stored["ids"]) == rec.counts.get(modality, 0), (rec.path, modality)
