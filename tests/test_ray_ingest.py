"""Distributed ingestion on a local Ray cluster of 2 CPUs (2 actors) on loopback only.

RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 makes Ray bind and address 127.0.0.1 instead of the
machine's network address (read when ray is imported, so it is set before that).
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from clipcite.ingestion.batch import BatchOptions, Outcome, run_batch  # noqa: E402
from clipcite.ingestion.distributed import connect, run_batch_on_ray  # noqa: E402
from clipcite.retrieval.index import Index  # noqa: E402
from clipcite.retrieval.schema import MODALITIES  # noqa: E402
from tests.conftest import copy_media  # noqa: E402
from tests.test_ingest import consistent  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    import ray

    assert connect(None, 2)
    assert ray.util.get_node_ip_address() == "127.0.0.1"
    assert ray.cluster_resources()["CPU"] == 2
    yield
    ray.shutdown()


@pytest.fixture()
def library(media: Path, tmp_path: Path) -> Path:
    lib = tmp_path / "library"
    copy_media(media / "jfk.flac", lib)
    copy_media(media / "sample.wav", lib, "phone call.wav")
    copy_media(media / "jfk.flac", lib, "jfk again.flac")
    return lib


class Recorder:
    """Every reporter call, to compare with the local batch's."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def batch_started(self, files) -> None:
        self.calls.append(("batch", str(len(files))))

    def file_started(self, path: Path) -> None:
        self.calls.append(("started", path.name))

    def file_progress(self, path: Path, stage: str, fraction: float) -> None:
        self.calls.append(("progress", path.name))

    def file_finished(self, outcome: Outcome) -> None:
        self.calls.append(("finished", Path(outcome.path).name))


def content(index: Index) -> dict[str, list[tuple]]:
    """Per recording: its counts and its segments as (modality, start, end, text, speaker)."""
    out: dict[str, list[tuple]] = {}
    for rec in index.catalog.all():
        segs = sorted((m, round(h.metadata["start"], 3), round(h.metadata["end"], 3), h.text,
                       h.metadata.get("speaker")) for m in MODALITIES
                      for h in index.segments(m, [rec.gen]))
        out[Path(rec.path).name] = [(rec.status, sorted(rec.counts.items()))] + segs
    return out


def test_ray_ingest_equals_single_process_ingest(ray_cluster, library: Path, tmp_path: Path,
                                                 extract_options):
    ray_index, local_index = Index(tmp_path / "ray"), Index(tmp_path / "local")
    recorder = Recorder()
    on_ray = run_batch_on_ray([library], ray_index,
                              BatchOptions(extract=extract_options, workers=2), recorder)
    local = run_batch([library], local_index, BatchOptions(extract=extract_options, workers=1))

    assert sorted((Path(o.path).name, o.status, o.reason) for o in on_ray) == \
        sorted((Path(o.path).name, o.status, o.reason) for o in local)
    assert {o.status for o in on_ray} == {"indexed"}
    consistent(ray_index)
    got, want = content(ray_index), content(local_index)
    assert got == want
    assert sum(len(v) for v in got.values()) > 6
    names = {p.name for p in library.iterdir()}
    kinds = {kind for kind, _ in recorder.calls}
    assert kinds == {"batch", "started", "progress", "finished"}
    assert {n for k, n in recorder.calls if k == "finished"} == names
    assert {n for k, n in recorder.calls if k == "progress"} == names  # progress from the actors

    again = run_batch_on_ray([library], ray_index, BatchOptions(extract=extract_options))
    assert {o.status for o in again} == {"unchanged"}


def test_a_file_over_its_time_limit_fails_alone_on_ray(ray_cluster, library: Path,
                                                       tmp_path: Path, extract_options):
    index = Index(tmp_path / "index")
    opts = BatchOptions(extract=extract_options, workers=2, file_timeout=0.5)
    outcomes = run_batch_on_ray([library], index, opts)
    assert len(outcomes) == 3
    assert all(o.status == "failed" and o.reason.startswith("gave up after") for o in outcomes)
    recs = index.catalog.all()
    assert all(r.status == "failed" and r.content_hash is None for r in recs)  # tried again later
    consistent(index)


def test_cli_ingest_with_ray_starts_a_local_cluster(library: Path, tmp_path: Path, run_cli):
    index_dir = tmp_path / "index"
    out = run_cli("ingest", str(library / "jfk.flac"), "--ray", "--workers", "2",
                  "--index", str(index_dir), "--no-speakers", env={"COLUMNS": "200"})
    assert "1 indexed" in out.stdout, out.stdout
    consistent(Index(index_dir))
