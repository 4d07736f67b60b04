"""Extraction on a Ray cluster: `clipcite ingest --ray [ADDRESS]`.

Ray actors, one per CPU of the cluster, each hold the models (ingestion.extract.Models) loaded
once and extract one file at a time (decode, ASR, OCR, embed), returning the Extraction. This
process alone writes it (batch.Running): the generation protocol and SQLite keep one writer, so
the index is the one a local ingest of the same files builds. Everything but the executor
(what to do with a file, outcomes, reasons, time and stall limits, progress) is
ingestion/batch.py's.

Every node must see the media files and the model cache at the same paths, in the same venv.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any

from clipcite.ingestion import batch
from clipcite.ingestion.batch import BatchOptions, ExtractAll, Outcome, Reporter, Running, _Job
from clipcite.ingestion.extract import Extraction, ExtractOptions
from clipcite.retrieval.index import Index


class _Extractor:
    """One Ray actor: batch's worker-process side (models loaded once, progress events)."""

    def __init__(self, options: ExtractOptions, events: Any) -> None:
        batch._init_worker(options, events)

    def extract(self, path: str, title: str, transcript: str | None = None) -> Extraction:
        return batch._work(path, title, transcript)


# Ray sets OMP_NUM_THREADS=1 in a worker whose environment lacks it; numpy's BLAS reads it at
# import, and the thread count changes Whisper's features enough to change its words (tiny.en
# on jfk.flac: one sentence or two). "${VAR}" keeps the node's own value, or "" (the libraries'
# defaults) when it has none: the extraction runs as in a local worker process.
_RUNTIME_ENV = {"env_vars": {"OMP_NUM_THREADS": "${OMP_NUM_THREADS}"}}


def ray_executor(address: str | None = None) -> ExtractAll:
    """The extraction step of run_batch on Ray: a local cluster of `options.workers` CPUs when
    `address` is empty, else the cluster at `address` ("HOST:6379", "auto", "ray://...")."""
    if importlib.util.find_spec("ray") is None:  # an extra: said before any file is read
        raise RuntimeError("ingesting on Ray needs the ray package: pip install 'clipcite[ray]'")
    return functools.partial(_extract_on_ray, address=address or None)


def connect(address: str | None, cpus: int) -> bool:
    """Join the cluster at `address`, or start a local one with `cpus` CPUs; True if this call
    started Ray (and so must shut it down). An already initialised Ray is used as it is."""
    import ray

    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address:
        ray.init(address=address, **quiet)
    else:  # on loopback only when RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (the CLI sets it)
        ray.init(num_cpus=max(1, cpus), include_dashboard=False, **quiet)
    return True


def _extract_on_ray(todo: deque[_Job], index: Index, options: BatchOptions, reporter: Reporter,
                    outcomes: list[Outcome], address: str | None) -> None:
    import ray
    from ray.exceptions import RayActorError, RayTaskError
    from ray.util.queue import Queue

    started_ray = connect(address, options.workers)
    events: Any = None
    idle: list[Any] = []
    inflight: dict[Any, tuple[_Job, Any]] = {}  # object ref -> (job, actor)
    files = Running(index, options, reporter, outcomes)
    try:
        events = Queue(actor_options={"num_cpus": 0})  # progress events from the actors
        # No restarts or task retries: a crash is reported for the file that caused it.
        actor_class = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0,
                                 runtime_env=_RUNTIME_ENV)(_Extractor)

        def new_actor() -> Any:
            return actor_class.remote(options.extract, events)

        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        idle.extend(new_actor() for _ in range(min(cpus, len(todo))))
        while todo or inflight:
            while todo and idle:
                job, actor = todo.popleft(), idle.pop()
                files.start(job)
                inflight[actor.extract.remote(
                    str(job.path), job.rec.title,
                    str(job.transcript) if job.transcript else None)] = (job, actor)
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.2)
            files.hear(events)
            for ref in ready:
                job, actor = inflight.pop(ref)
                try:
                    extraction = ray.get(ref)
                except RayActorError:  # the actor's process died (decoder crash, OOM, node lost)
                    files.crashed(job)
                    actor = new_actor()
                except RayTaskError as e:  # extract() raised: the same reasons as locally
                    files.failed(job, e.cause if isinstance(e.cause, BaseException) else e)
                else:
                    files.extracted(job, extraction)
                idle.append(actor)
            now = time.monotonic()
            for ref, (job, actor) in list(inflight.items()):
                why = files.overdue(job, now)
                if why:
                    ray.kill(actor)  # only this file's actor: the others go on
                    del inflight[ref]
                    files.given_up(job, why)
                    idle.append(new_actor())
    finally:
        for actor in [*idle, *(a for _, a in inflight.values())]:
            ray.kill(actor)
        if events is not None:
            events.shutdown()
        if started_ray:
            ray.shutdown()


def run_batch_on_ray(paths: list[Path], index: Index, options: BatchOptions,
                     reporter: Reporter | None = None,
                     address: str | None = None) -> list[Outcome]:
    """batch.run_batch with the extraction on Ray (see ray_executor)."""
    return batch.run_batch(paths, index, options, reporter, ray_executor(address))
