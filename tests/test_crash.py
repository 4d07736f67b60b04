"""Crash safety of the ingestion job: `kill -9` at random points, and a disk that fills up.

Both run the installed `clipcite ingest` as a user would, on short real clips cut from
../shared/media, and check the index with the consistency checker of test_ingest.py.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from clipcite.ingestion.files import content_hash
from clipcite.retrieval.index import CATALOG_FILE, Index
from clipcite.retrieval.schema import MODALITIES, TEXT_MODALITIES
from tests.conftest import CLI, ffmpeg
from tests.test_ingest import consistent

# Diarization off: loading the voice encoder costs ~10 s of every run's start on 2 shared
# cores, which 20 restarts cannot afford. The write path (segments, keywords, the speaker
# tables' empty generation, the switch) is the same.
ENV = {**os.environ, "CLIPCITE_DIARIZE": "0", "COLUMNS": "400"}
# Where each has speech for the 5 s of a clip (a silent clip fails, and is not indexed).
SOURCES = {"dev00.wav": (5, 20), "dev01.wav": (5, 20), "tst00.wav": (5, 20),
           "sample.wav": (3, 13, 22), "jfk.flac": (0, 5)}


@pytest.fixture(scope="module")
def clips(media: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """5-second pieces of the real recordings: each costs ~2 s to ingest once models load."""
    out = tmp_path_factory.mktemp("clips")
    found = []
    for name, starts in SOURCES.items():
        for start in starts:
            clip = out / f"{Path(name).stem}-{start:02d}.wav"
            ffmpeg("-ss", str(start), "-t", "5", "-i", str(media / name), "-ac", "1",
                   "-ar", "16000", str(clip))
            found.append(clip)
    return found


def ingest(library: Path, index_dir: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([str(CLI), "ingest", str(library), "--index", str(index_dir)],
                            env=ENV, start_new_session=True, **kw)


def visible_and_pending(index: Index) -> None:
    """What the killed run left: visible recordings whole, every other segment registered as
    garbage (so the next run deletes it), no id twice."""
    recs = {r.gen: r for r in index.catalog.all() if r.gen}
    pending = set(index.catalog.garbage())
    for modality in MODALITIES:
        got = index.collection(modality).get(include=["metadatas"])
        assert len(got["ids"]) == len(set(got["ids"])), f"duplicate ids in {modality}"
        gens = [m["gen"] for m in got["metadatas"]]
        orphans = set(gens) - set(recs) - pending
        assert not orphans, f"{modality}: segments of {orphans} belong to nothing"
        for gen, rec in recs.items():
            assert gens.count(gen) == rec.counts.get(modality, 0), (modality, rec.path)
    for gen, rec in recs.items():
        assert index.keywords.count(gen) == sum(rec.counts.get(m, 0) for m in TEXT_MODALITIES)


def check_copy(index_dir: Path, scratch: Path) -> int:
    """Check a copy of the killed run's index, so the next run still finds (and must clean up)
    the leftovers itself; a fresh path also gets a fresh Chroma system, not a cached one."""
    import chromadb

    if not index_dir.exists():  # killed before it made the index
        return 0
    copy = scratch / f"copy-{time.monotonic_ns()}"
    shutil.copytree(index_dir, copy)
    try:
        index = Index(copy)
        visible_and_pending(index)
        collected = index.collect_garbage()  # what the next run does first
        consistent(index)
        assert index.catalog.garbage() == []
        index.catalog.close()
        del index
        return collected
    finally:
        chromadb.api.client.SharedSystemClient.clear_system_cache()
        shutil.rmtree(copy, ignore_errors=True)


def _catalog_state(index_dir: Path) -> tuple[int, float]:
    """(writes in progress, latest switch time) read from the catalog, or (0, 0) before it."""
    path = index_dir / CATALOG_FILE
    if not path.is_file():
        return 0, 0.0
    db = sqlite3.connect(str(path), timeout=5.0)
    try:
        writing = db.execute("SELECT count(*) FROM garbage WHERE retired=0").fetchone()[0]
        switched = db.execute("SELECT max(ingested_at) FROM recordings WHERE gen IS NOT NULL"
                              ).fetchone()[0]
        return writing, switched or 0.0
    except sqlite3.OperationalError:  # tables not made yet
        return 0, 0.0
    finally:
        db.close()


def kill_point(proc: subprocess.Popen, index_dir: Path, mode: str, rng: random.Random,
               limit: float = 40.0) -> bool:
    """Wait for the chosen moment, then SIGKILL the CLI and its workers; False if the run
    ended first. `anywhere`: a random delay into the run (start-up, garbage collection,
    extraction, writes); `writing`: just after a recording's segments started going in
    (before its switch); `switched`: just after a recording became visible (while its old
    generation is deleted, or the next file starts)."""
    start = time.monotonic()
    if mode == "anywhere":
        deadline = start + rng.uniform(0.3, 9.0)
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
    else:
        _, switched_before = _catalog_state(index_dir)
        while proc.poll() is None and time.monotonic() - start < limit:
            writing, switched = _catalog_state(index_dir)
            if (mode == "writing" and writing) or (mode == "switched"
                                                   and switched > switched_before):
                time.sleep(rng.uniform(0.0, 0.15 if mode == "writing" else 0.05))
                break
            time.sleep(0.01)
    if proc.poll() is not None:
        return False
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its workers at once, like a power cut
    proc.wait()
    return True


@pytest.mark.slow
def test_twenty_sigkills_at_random_points_then_a_rerun_completes(clips: list[Path],
                                                                 tmp_path: Path):
    rng = random.Random(20240611)
    library, index_dir = tmp_path / "library", tmp_path / "index"
    library.mkdir()
    names = [f"rec{i}.wav" for i in range(6)]
    for name, clip in zip(names, rng.sample(clips, len(names))):
        shutil.copyfile(clip, library / name)
    kills, runs, modes, collected = 0, 0, [], 0
    started = time.monotonic()
    while kills < 20:
        runs += 1
        assert runs <= 30, f"only {kills} kills landed in {runs - 1} runs"
        # New content for two files each time, so every run has recordings to replace (their
        # old generations are retired and deleted: more crash points than first writes).
        for name in rng.sample(names, 2):
            shutil.copyfile(rng.choice(clips), library / name)
            os.utime(library / name)
        mode = rng.choice(["anywhere", "anywhere", "writing", "switched"])
        proc = ingest(library, index_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if kill_point(proc, index_dir, mode, rng):
            kills += 1
            modes.append(mode)
        collected += check_copy(index_dir, tmp_path)
    assert {"anywhere", "writing", "switched"} <= set(modes)
    assert collected > 0  # some kills did land between writing segments and the switch

    done = ingest(library, index_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                  text=True)
    out, _ = done.communicate(timeout=300)
    assert done.returncode == 0, out
    index = Index(index_dir)
    consistent(index)
    assert index.catalog.garbage() == []
    recs = {Path(r.path).name: r for r in index.catalog.all()}
    assert sorted(recs) == names and {r.status for r in recs.values()} == {"indexed"}
    for name in names:  # the index holds what the files hold now, not an older version
        assert recs[name].content_hash == content_hash(library / name)
    print(f"{kills} kills in {runs} runs ({', '.join(modes)}), {collected} half-written "
          f"generations collected, {time.monotonic() - started:.0f} s")


def _mount_tmpfs(where: Path, size: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    where.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode}): "
                    "the full-disk test needs a small filesystem of its own")


def test_full_disk_stops_with_one_clear_line_and_keeps_what_was_indexed(clips: list[Path],
                                                                        tmp_path: Path):
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "6m")
    try:
        index_dir, library = disk / "index", tmp_path / "library"
        library.mkdir()
        for clip in clips[:8]:
            shutil.copyfile(clip, library / clip.name)
        first = subprocess.run([str(CLI), "ingest", str(library / clips[0].name), "--index",
                                str(index_dir)], env=ENV, capture_output=True, text=True,
                               timeout=300)
        assert first.returncode == 0, first.stdout + first.stderr
        before = Index(index_dir).catalog.by_path(str(library / clips[0].name))
        # Take all but 150 KB: enough to open the index and write a recording or two, then
        # the batch fills the disk part-way through.
        free = shutil.disk_usage(disk).free
        with open(disk / "filler", "wb") as f:
            f.write(b"\0" * (free - 150 * 1024))
        full = subprocess.run([str(CLI), "ingest", str(library), "--index", str(index_dir)],
                              env=ENV, capture_output=True, text=True, timeout=300)
        said = full.stdout + full.stderr
        assert full.returncode != 0, said
        assert "Traceback" not in said and "UserWarning" not in said, said
        errors = [line for line in said.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, said
        assert "disk" in errors[0] and "full" in errors[0] and "no space left" in errors[0]
        assert str(index_dir) in errors[0] and "run the ingest again" in errors[0]

        (disk / "filler").unlink()  # room to open the index and collect the half-written one
        import chromadb

        chromadb.api.client.SharedSystemClient.clear_system_cache()
        index = Index(index_dir)
        visible_and_pending(index)
        kept = index.catalog.by_path(str(before.path))
        assert (kept.gen, kept.counts, kept.status) == (before.gen, before.counts, "indexed")
        assert len([r for r in index.catalog.all() if r.gen]) < 8  # it did stop part-way
        index.catalog.close()
        chromadb.api.client.SharedSystemClient.clear_system_cache()
        del index

        again = subprocess.run([str(CLI), "ingest", str(library), "--index", str(index_dir)],
                               env=ENV, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stdout + again.stderr
        index = Index(index_dir)
        consistent(index)
        assert index.catalog.garbage() == []
        assert {(Path(r.path).name, r.status, r.error) for r in index.catalog.all()} == \
            {(c.name, "indexed", None) for c in clips[:8]}
        index.catalog.close()
    finally:
        import chromadb

        chromadb.api.client.SharedSystemClient.clear_system_cache()
        subprocess.run(["umount", "-l", str(disk)], check=False)
