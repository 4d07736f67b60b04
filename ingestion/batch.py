"""The ingestion job: many files, incremental, isolated, with progress and a summary.

Extraction runs in worker processes: a decoder that crashes or hangs on a hostile file takes
down only its worker, which is replaced, and the file is reported as failed. Only this process
writes to the index, one recording at a time, each as a single visible switch.

ingestion/distributed.py runs the extraction on Ray instead of the local pool; it shares
everything else here (deciding what to do with a file, outcomes, reasons, writing).
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import queue as queue_mod
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from clipcite.ingestion.extract import Extraction, ExtractOptions, Models, extract
from clipcite.ingestion.files import content_hash, discover, media_id_for, sidecar_of, title_from_path
from clipcite.ingestion.media import MediaError, sound_seconds_cap
from clipcite.ingestion.transcripts import TRANSCRIPT_EXTENSIONS
from clipcite.ingestion.writer import write_recording
from clipcite.retrieval.catalog import FAILED, Recording
from clipcite.retrieval.index import Index
from clipcite.retrieval.speakers import carried_names

INDEXED = "indexed"
UNCHANGED = "unchanged"
REMOVED = "removed"


class DiskFullError(Exception):
    """The disk holding the index is full. Every later write would fail the same way, so the
    batch stops with this one-line message instead of failing each remaining file."""


_NO_SPACE = ("disk is full", "no space left", "os error 28", "sqlite_full", "quota exceeded")


def is_disk_full(exc: BaseException | None) -> bool:
    """True when an error (or one it was raised from) means no space is left: SQLite says
    "database or disk is full", Chroma's Rust core passes that or "os error 28" on as text."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(words in str(exc).lower() for words in _NO_SPACE):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full_message(index_dir: Path, indexed: int = 0) -> str:
    done = (f"{indexed} recording{'s' if indexed != 1 else ''} indexed in this run before it "
            "filled, and all indexed before, are intact" if indexed else
            "recordings indexed before are intact")
    return (f"the disk holding the index is full (no space left on device: {index_dir}); "
            f"{done}. Free some space and run the ingest again to index the rest.")


@dataclass
class BatchOptions:
    extract: ExtractOptions = field(default_factory=ExtractOptions)
    tags: list[str] | None = None  # None: keep what the catalog has
    groups: list[str] | None = None
    workers: int = 1
    prune: bool = False
    again: bool = False  # read unchanged files again (e.g. with a known speaker count)
    # A file is given up when it runs longer than this (None: 120 s plus three times the most
    # sound its size can hold, see _time_limit), or when its worker reports no progress for
    # stall_timeout seconds (a hung decoder). Neither trusts the file's header.
    file_timeout: float | None = None
    stall_timeout: float = 300.0
    # The transcript of the one media file of the batch (clipcite ingest FILE --transcript T);
    # other media files use their sidecar (same stem, .vtt or .srt) if they have one.
    transcript: Path | None = None


@dataclass
class Outcome:
    path: str
    status: str  # indexed | unchanged | failed | removed
    reason: str = ""
    media_id: str = ""
    duration: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    write_seconds: float = 0.0  # of `seconds`, writing to the index (the single writer's share)


class Reporter(Protocol):
    def batch_started(self, files: Sequence[Path]) -> None: ...

    def file_started(self, path: Path) -> None: ...

    def file_progress(self, path: Path, stage: str, fraction: float) -> None: ...

    def file_finished(self, outcome: Outcome) -> None: ...


class SilentReporter:
    def batch_started(self, files: Sequence[Path]) -> None: ...

    def file_started(self, path: Path) -> None: ...

    def file_progress(self, path: Path, stage: str, fraction: float) -> None: ...

    def file_finished(self, outcome: Outcome) -> None: ...


# How the files to extract are run (local pool, or Ray): it extracts each job and finishes it
# through a Running (written, failed or given up; its Outcome appended to the list, reported).
ExtractAll = Callable[["deque[_Job]", Index, BatchOptions, Reporter, "list[Outcome]"], None]


# -- worker process side ---------------------------------------------------------------------
_models: Models | None = None
_events: Any = None


def _init_worker(options: ExtractOptions, events: Any) -> None:
    global _models, _events
    _models, _events = Models(options), events
    _thread_lock_for_tqdm()


def _thread_lock_for_tqdm() -> None:
    """tqdm (faster-whisper's progress bars, never shown in a worker) makes a semaphore shared
    between processes. A worker killed on a time limit or SIGTERM cannot release it, and the
    resource tracker then warns of a leak at exit; a thread lock is all a worker needs."""
    try:
        from tqdm import tqdm
    except ImportError:
        return
    tqdm.set_lock(threading.RLock())


def _work(path: str, title: str, transcript: str | None = None) -> Extraction:
    assert _models is not None

    def progress(stage: str, fraction: float) -> None:
        _events.put(("progress", path, stage, fraction))

    def probed(duration: float) -> None:
        _events.put(("duration", path, duration))

    return extract(Path(path), title, _models.options, _models, progress, on_probe=probed,
                   transcript=Path(transcript) if transcript else None)


# -- this process ----------------------------------------------------------------------------
@dataclass
class _Job:
    path: Path
    rec: Recording
    transcript: Path | None = None  # the recording's own transcript, used for its words
    solo: bool = False  # after a worker crash, run alone so the culprit is known
    started: float = 0.0
    heard: float = 0.0  # when it started, or its worker last reported progress (monotonic)
    duration: float | None = None


class _Pool:
    """A process pool that can be killed and replaced when a worker hangs or dies."""

    def __init__(self, options: ExtractOptions, workers: int) -> None:
        self._options, self._workers = options, workers
        self._ctx = multiprocessing.get_context("forkserver")
        self.events = self._ctx.Queue()
        self._executor = self._new()

    def _new(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self._workers, mp_context=self._ctx,
                                   initializer=_init_worker, initargs=(self._options, self.events))

    def submit(self, job: _Job) -> Future:
        return self._executor.submit(_work, str(job.path), job.rec.title,
                                     str(job.transcript) if job.transcript else None)

    def restart(self) -> None:
        self.kill()
        self._executor = self._new()

    def kill(self) -> None:
        """Stop now: the workers are killed, not left to finish the files they are on."""
        processes = list(getattr(self._executor, "_processes", {}).values())
        for proc in processes:
            if proc.is_alive():
                proc.kill()
        self._executor.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, MediaError):
        return str(exc)
    text = " ".join(str(exc).split())[:200]
    return f"unexpected error ({type(exc).__name__}: {text})" if text else type(exc).__name__


def _stat_job(path: Path, index: Index, options: BatchOptions) -> tuple[_Job | None, Outcome | None]:
    """Decide what to do with one file: skip it (unchanged), fail it now, or extract it."""
    media_id = media_id_for(path)
    existing = index.catalog.get(media_id)
    title = existing.title if existing else title_from_path(path)
    tags, groups = _access(options, existing)
    transcript = _transcript_for(path, options)
    try:
        st = path.stat()
        size, mtime = _stamp(st, transcript)
    except OSError as e:
        reason = "file not found" if isinstance(e, FileNotFoundError) else f"cannot read: {e.strerror}"
        if e.filename and transcript is not None and Path(e.filename) == transcript:
            reason = f"transcript {transcript}: {reason}"
        _record_failure(index, Recording(media_id, str(path), title, FAILED, tags=tags,
                                         groups=groups), reason)
        return None, Outcome(str(path), FAILED, reason, media_id)
    if (not options.again and existing and existing.size == size
            and existing.mtime == mtime):
        return None, _unchanged(index, existing, options)
    try:
        digest = content_hash(path)
        if transcript is not None:  # a changed sidecar alone re-reads the recording
            digest += ":" + content_hash(transcript)
    except OSError as e:
        reason = f"cannot read the file: {e.strerror.lower() if e.strerror else e}"
        _record_failure(index, Recording(media_id, str(path), title, FAILED, size=size,
                                         mtime=mtime, tags=tags, groups=groups), reason)
        return None, Outcome(str(path), FAILED, reason, media_id)
    if not options.again and existing and existing.content_hash == digest:
        index.catalog.touch(media_id, size, mtime)
        return None, _unchanged(index, existing, options)
    rec = Recording(
        media_id=media_id, path=str(path), title=title, status="pending", size=size,
        mtime=mtime, content_hash=digest, tags=tags, groups=groups, recorded_at=st.st_mtime,
    )
    return _Job(path=path, rec=rec, transcript=transcript), None


def _access(options: BatchOptions, existing: Recording | None) -> tuple[list[str], list[str]]:
    """The tags and groups a file of this batch gets, whether it is indexed or fails: those
    given, else those it had. A failure never resets them to none: that would show a
    restricted recording (and serve its file) to everyone."""
    old_tags, old_groups = (existing.tags, existing.groups) if existing else ([], [])
    return (options.tags if options.tags is not None else old_tags,
            options.groups if options.groups is not None else old_groups)


def _transcript_for(path: Path, options: BatchOptions) -> Path | None:
    if path.suffix.lower() in TRANSCRIPT_EXTENSIONS:
        return None  # the transcript is the recording
    if options.transcript is not None:
        return options.transcript
    return sidecar_of(path) if options.extract.transcript_source != "speech" else None


def _stamp(st: os.stat_result, transcript: Path | None) -> tuple[int, float]:
    """Size and modification time that change when the recording (`st`) or its transcript
    does (the catalog's quick check before hashing): sizes added, the later time."""
    if transcript is None:
        return st.st_size, st.st_mtime
    side = transcript.stat()
    return st.st_size + side.st_size, max(st.st_mtime, side.st_mtime)


def _unchanged(index: Index, rec: Recording, options: BatchOptions) -> Outcome:
    tags = options.tags if options.tags is not None else rec.tags
    groups = options.groups if options.groups is not None else rec.groups
    if (tags, groups) != (rec.tags, rec.groups):
        index.set_access(rec, tags, groups)
    reason = f"failed before: {rec.error}" if rec.status == FAILED and rec.error else ""
    return Outcome(rec.path, UNCHANGED, reason, rec.media_id, rec.duration, rec.counts)


def _finish(index: Index, job: _Job, extraction: Extraction) -> Outcome:
    rec = job.rec
    rec.duration = extraction.duration
    if extraction.title_tag:
        rec.title = extraction.title_tag
    if extraction.created_at:
        rec.recorded_at = extraction.created_at
    # Read again (--again, or changed): names users confirmed stay where the new turns
    # overlap the old ones, whatever speaker model made either.
    started = time.monotonic()
    carried = {} if extraction.named else carried_names(
        index.speakers.confirmed_turns(index.catalog.get(rec.media_id)), extraction.turns)
    write_recording(index, rec, extraction)
    for label, name in carried.items():
        index.set_speaker(rec, label, name)
    for label in index.speakers.carry(rec, carried):
        index.set_speaker(rec, label, label)
    now = time.monotonic()
    return Outcome(rec.path, INDEXED, "; ".join(extraction.notes), rec.media_id,
                   extraction.duration, rec.counts, now - job.started, now - started)


def _write(index: Index, job: _Job, extraction: Extraction) -> Outcome:
    """Write one extracted recording; a write error fails the file (transiently), not the batch."""
    try:
        return _finish(index, job, extraction)
    except Exception as e:  # noqa: BLE001 - the batch must go on
        if is_disk_full(e):
            raise  # every later write would fail too: run_batch says so once
        return _fail(index, job, f"could not write to the index: {_reason(e)}", transient=True)


def _crashed(index: Index, job: _Job) -> Outcome:
    return _fail(index, job, "the media decoder crashed on this file", transient=True)


def _fail(index: Index, job: _Job, reason: str, transient: bool = False) -> Outcome:
    """Record a failure. A transient one (time limit, crash, write error) forgets the content
    hash, so the next run tries the file again; a media error is final until the file changes."""
    rec = job.rec
    _record_failure(index, replace(rec, size=None, mtime=None, content_hash=None)
                    if transient else rec, reason)
    return Outcome(rec.path, FAILED, reason, rec.media_id, job.duration,
                   seconds=time.monotonic() - job.started)


def _record_failure(index: Index, rec: Recording, reason: str) -> None:
    """The failure row, with the batch's tags and groups (and rec's size, mtime and hash, which
    make the failure final until the file changes). A recording indexed before stays
    searchable under these groups, so its segments' copies of them follow."""
    before = index.catalog.get(rec.media_id)
    index.catalog.record_failure(rec.media_id, rec.path, rec.title, reason, rec.tags,
                                 rec.groups, rec.size, rec.mtime, rec.content_hash)
    if before is not None and before.gen and (before.tags, before.groups) != (rec.tags, rec.groups):
        index.set_access(before, rec.tags, rec.groups)


def _overdue(job: _Job, options: BatchOptions, now: float) -> str | None:
    """Why a running file is given up now, or None. Measured, never read from the file's
    header: its worker's last progress report, and a total time bounded by its size."""
    if now - job.heard > options.stall_timeout:
        return (f"no progress for {options.stall_timeout:g} s (the decoder hung, or the "
                "file is damaged)")
    if now - job.started > _time_limit(job, options):
        return (f"gave up after {_time_limit(job, options):.0f} s (file too slow to decode, "
                "or damaged)")
    return None


def _time_limit(job: _Job, options: BatchOptions) -> float:
    if options.file_timeout is not None:
        return options.file_timeout
    return 120.0 + 3.0 * sound_seconds_cap(job.rec.size or 0, options.extract.max_media_seconds)


def run_batch(paths: Sequence[Path], index: Index, options: BatchOptions,
              reporter: Reporter | None = None,
              extract_all: ExtractAll | None = None) -> list[Outcome]:
    """Ingest files and folders; returns one outcome per file (and per pruned recording).

    `extract_all` runs the extraction (default: the local worker pool; see distributed.py).

    Raises DiskFullError when the index's disk fills: what was committed stays whole and
    searchable, a half-written recording is garbage that the next run collects.
    """
    outcomes: list[Outcome] = []
    try:
        with _terminate_on_sigterm():
            _run(paths, index, options, reporter or SilentReporter(), outcomes,
                 extract_all or _extract_all)
        return outcomes
    except Exception as e:
        if not is_disk_full(e):
            raise
    # Raised outside the handler: one sentence, not chained to the SQLite or Chroma error.
    raise DiskFullError(disk_full_message(index.directory,
                                          sum(o.status == INDEXED for o in outcomes)))


class Terminated(SystemExit):
    """SIGTERM arrived during a batch (`kill`, a service stop). Raised in the main thread, so
    the batch unwinds like Ctrl-C: its worker processes are killed on the way out (left alone,
    they went on for minutes), what was committed stays whole, and the process exits 143."""


@contextmanager
def _terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into Terminated while the batch runs. Only the main thread can handle
    signals, and a process that handles SIGTERM itself keeps its own way."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return

    def stop(signum: int, _frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
        raise Terminated(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _run(paths: Sequence[Path], index: Index, options: BatchOptions, reporter: Reporter,
         outcomes: list[Outcome], extract_all: ExtractAll) -> None:
    index.collect_garbage()  # segments left by a writer that was killed
    files, missing = discover([Path(p) for p in paths])
    outcomes.extend(Outcome(str(p), FAILED, "file or folder not found") for p in missing)
    reporter.batch_started(files)
    todo: deque[_Job] = deque()
    for path in files:
        job, outcome = _stat_job(path, index, options)
        if outcome is not None:
            reporter.file_started(path)
            reporter.file_finished(outcome)
            outcomes.append(outcome)
        elif job is not None:
            todo.append(job)
    if todo:
        extract_all(todo, index, options, reporter, outcomes)
    if options.prune:
        outcomes.extend(prune(index))


class Running:
    """The files being extracted, whoever runs them (the local pool here, Ray actors in
    distributed.py): each started, heard from, and finished with one outcome, reported."""

    def __init__(self, index: Index, options: BatchOptions, reporter: Reporter,
                 outcomes: list[Outcome]) -> None:
        self.index, self.options, self.reporter, self.outcomes = index, options, reporter, outcomes
        self._by_path: dict[str, _Job] = {}

    def start(self, job: _Job) -> None:
        job.started = job.heard = time.monotonic()
        self._by_path[str(job.path)] = job
        self.reporter.file_started(job.path)

    def hear(self, events: Any) -> None:
        """Take the workers' progress events waiting in `events` (a queue)."""
        while True:
            try:
                event = events.get_nowait()
            except (queue_mod.Empty, OSError, EOFError):
                return
            job = self._by_path.get(event[1])
            if job is None:
                continue
            job.heard = time.monotonic()  # any report means its worker is not stuck
            if event[0] == "duration":
                job.duration = event[2]
            else:
                self.reporter.file_progress(job.path, event[2], event[3])

    def finish(self, job: _Job, outcome: Outcome) -> None:
        self._by_path.pop(str(job.path), None)
        self.outcomes.append(outcome)
        self.reporter.file_finished(outcome)

    def extracted(self, job: _Job, extraction: Extraction) -> None:
        self.finish(job, _write(self.index, job, extraction))

    def failed(self, job: _Job, exc: BaseException) -> None:
        """extract() raised: a media error is final until the file changes, others are not."""
        self.finish(job, _fail(self.index, job, _reason(exc),
                               transient=not isinstance(exc, MediaError)))

    def crashed(self, job: _Job) -> None:
        self.finish(job, _crashed(self.index, job))

    def overdue(self, job: _Job, now: float) -> str | None:
        return _overdue(job, self.options, now)

    def given_up(self, job: _Job, why: str) -> None:
        self.finish(job, _fail(self.index, job, why, transient=True))


def _extract_all(todo: deque[_Job], index: Index, options: BatchOptions,
                 reporter: Reporter, outcomes: list[Outcome]) -> None:
    workers = max(1, options.workers)
    pool = _Pool(options.extract, workers)
    inflight: dict[Future, _Job] = {}
    files = Running(index, options, reporter, outcomes)
    try:
        while todo or inflight:
            while todo and len(inflight) < workers:
                if todo[0].solo and inflight:
                    break
                job = todo.popleft()
                files.start(job)
                inflight[pool.submit(job)] = job
                if job.solo:
                    break
            finished, _ = wait(list(inflight), timeout=0.2, return_when=FIRST_COMPLETED)
            files.hear(pool.events)
            crashed = False
            running = len(inflight)
            for fut in finished:
                job = inflight.pop(fut)
                exc = fut.exception()
                if exc is None:
                    files.extracted(job, fut.result())
                elif isinstance(exc, BrokenProcessPool):
                    crashed = True
                    if job.solo or running == 1:
                        files.crashed(job)
                    else:
                        job.solo = True
                        todo.appendleft(job)
                else:
                    files.failed(job, exc)
            now = time.monotonic()
            late = {f: why for f, j in inflight.items() if (why := files.overdue(j, now))}
            if crashed or late:
                for fut, job in list(inflight.items()):
                    if fut in late:
                        files.given_up(job, late[fut])
                    else:
                        job.solo = job.solo or crashed  # the culprit is among them: one at a time
                        todo.appendleft(job)  # not known to be its fault: run it again
                inflight.clear()
                pool.restart()
    except BaseException:
        pool.kill()  # stopping early (SIGTERM, Ctrl-C, a full disk): no file is waited for
        raise
    pool.close()


def prune(index: Index) -> list[Outcome]:
    """Forget recordings whose files are gone."""
    outcomes = []
    for rec in index.catalog.all():
        if not os.path.exists(rec.path):
            index.remove_recording(rec.media_id)
            outcomes.append(Outcome(rec.path, REMOVED, "file is gone", rec.media_id))
    return outcomes
