"""A recording whose ingest fails keeps its access groups, and catalogs written before that was
so are repaired when opened (schema versions, PRAGMA user_version)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from clipcite.ingestion.batch import BatchOptions, run_batch
from clipcite.ingestion.files import media_id_for
from clipcite.retrieval.catalog import ADMINS_ONLY, MIGRATIONS, SCHEMA_VERSION, Catalog
from clipcite.retrieval.filters import Filters, visible_recordings
from clipcite.retrieval.index import CATALOG_FILE, Index
from tests.conftest import copy_media, ffmpeg

STAFF, HR = frozenset({"staff"}), frozenset({"hr"})


@pytest.fixture(scope="module")
def broken(media: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real recording cut to a third: its header is there, the rest cannot be read."""
    d = tmp_path_factory.mktemp("broken")
    whole = d / "whole.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10:duration=11",
           "-i", str(media / "jfk.flac"), "-shortest", "-c:v", "libx264", "-c:a", "aac",
           str(whole))
    cut = d / "hr memo.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    return cut


def test_a_failed_restricted_recording_keeps_its_groups_and_tags(broken: Path, tmp_path: Path,
                                                                 extract_options):
    index = Index(tmp_path / "index")
    out = run_batch([broken], index, BatchOptions(extract=extract_options, groups=["hr"],
                                                  tags=["memos"]))
    assert out[0].status == "failed" and "truncated or corrupt" in out[0].reason
    rec = index.catalog.by_path(str(broken))
    assert rec.groups == ["hr"] and rec.tags == ["memos"]
    assert not rec.visible_to(STAFF) and not rec.visible_to(frozenset())
    assert rec.visible_to(HR) and rec.visible_to(None)
    # Run again without --groups: unchanged, and still restricted (not reset to everyone).
    again = run_batch([broken], index, BatchOptions(extract=extract_options))
    assert again[0].status == "unchanged"
    assert index.catalog.by_path(str(broken)).groups == ["hr"]


def test_a_file_missing_before_extraction_fails_with_the_batch_groups(tmp_path: Path,
                                                                      extract_options):
    """The failure path before any worker runs (the file cannot even be stat'ed)."""
    dangling = tmp_path / "lib" / "gone.wav"
    dangling.parent.mkdir()
    dangling.symlink_to(tmp_path / "nowhere.wav")
    index = Index(tmp_path / "index")
    out = run_batch([dangling], index, BatchOptions(extract=extract_options, groups=["hr"]))
    assert out[0].status == "failed" and out[0].reason == "file not found"
    rec = index.catalog.by_path(str(dangling))
    assert rec.groups == ["hr"] and not rec.visible_to(STAFF) and rec.visible_to(HR)


def test_an_indexed_recording_that_breaks_keeps_its_groups_unless_new_ones_are_given(
        media: Path, broken: Path, tmp_path: Path, extract_options):
    index = Index(tmp_path / "index")
    path = copy_media(media / "jfk.flac", tmp_path / "lib", "board.flac")
    run_batch([path], index, BatchOptions(extract=extract_options, groups=["hr"]))
    gen = index.catalog.by_path(str(path)).gen
    path.write_bytes(broken.read_bytes())  # the file is replaced by a damaged one

    out = run_batch([path], index, BatchOptions(extract=extract_options))  # no --groups
    assert out[0].status == "failed"
    rec = index.catalog.by_path(str(path))
    assert rec.gen == gen and rec.groups == ["hr"]  # old segments, old groups
    assert [r.media_id for r in visible_recordings(index, Filters(groups=HR))] == [rec.media_id]
    assert not visible_recordings(index, Filters(groups=STAFF))

    index.catalog.forget_content(rec.media_id)  # read it again, now with new groups
    run_batch([path], index, BatchOptions(extract=extract_options, groups=["staff"]))
    rec = index.catalog.by_path(str(path))
    assert rec.status == "failed" and rec.gen == gen and rec.groups == ["staff"]
    assert not visible_recordings(index, Filters(groups=HR))
    read = index.segments("transcript", [gen])  # as every search reads them
    assert read and all(h.metadata["groups"] == ["staff"] for h in read)


def test_the_cli_reports_a_failed_restricted_ingest_with_its_groups(broken: Path,
                                                                    tmp_path: Path, run_cli):
    index_dir = str(tmp_path / "index")
    run_cli("ingest", str(broken), "--index", index_dir, "--groups", "hr", check=False)
    status = json.loads(run_cli("status", "--index", index_dir, "--json").stdout)
    assert [(r["status"], r["groups"]) for r in status] == [("failed", ["hr"])]


def test_the_reserved_group_is_seen_by_unrestricted_callers_only():
    from clipcite.retrieval.catalog import Recording

    rec = Recording("m", "/x.mp4", "X", "failed", groups=[ADMINS_ONLY])
    assert rec.visible_to(None)
    for groups in (frozenset(), STAFF, frozenset({ADMINS_ONLY}), frozenset({ADMINS_ONLY, "hr"})):
        assert not rec.visible_to(groups), groups  # no user can hold the marker
    both = Recording("m", "/x.mp4", "X", "failed", groups=[ADMINS_ONLY, "hr"])
    assert both.visible_to(HR) and not both.visible_to(frozenset({ADMINS_ONLY}))


# -- an index written before schema versions -------------------------------------------------
# The catalog's tables as the code before version 2 created them (no user_version).
OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS recordings (
    media_id     TEXT PRIMARY KEY,
    path         TEXT NOT NULL UNIQUE,
    title        TEXT NOT NULL,
    size         INTEGER,
    mtime        REAL,
    content_hash TEXT,
    duration     REAL,
    recorded_at  REAL,
    tags         TEXT NOT NULL DEFAULT '[]',
    groups_      TEXT NOT NULL DEFAULT '[]',
    status       TEXT NOT NULL,
    error        TEXT,
    gen          TEXT,
    models       TEXT NOT NULL DEFAULT '{}',
    counts       TEXT NOT NULL DEFAULT '{}',
    ingested_at  REAL
);
CREATE TABLE IF NOT EXISTS garbage (
    gen        TEXT PRIMARY KEY,
    pid        INTEGER NOT NULL,
    retired    INTEGER NOT NULL,  -- 1: replaced or removed; 0: being written by pid
    created_at REAL NOT NULL
);
"""

_INSERT = ("INSERT INTO recordings (media_id, path, title, size, mtime, content_hash, tags,"
           " groups_, status, error, gen, counts) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)")


def _old_catalog(path: Path, broken: Path) -> None:
    """A catalog as the old code wrote it, with each kind of row it could hold."""
    db = sqlite3.connect(str(path))
    db.executescript(OLD_SCHEMA)
    rows = [  # the broken file's row is the one an ingest with --groups hr wrote
        (media_id_for(broken), str(broken), "Hr memo", 10, 1.0, "h1", "[]", "[]", "failed",
         "truncated or corrupt MP4/MOV file", None, "{}"),
        ("restricted", "/a/board.mp4", "Board", 11, 2.0, "h2", '["x"]', '["board"]', "failed",
         "no audio track", None, "{}"),
        ("broke-later", "/a/call.wav", "Call", 12, 3.0, None, "[]", "[]", "failed",
         "gave up after 200 s", "gen1", '{"transcript": 4}'),
        ("open", "/a/talk.flac", "Talk", 13, 4.0, "h4", '["talks"]', "[]", "indexed", None,
         "gen2", '{"transcript": 9}'),
    ]
    db.executemany(_INSERT, rows)
    db.execute("INSERT INTO garbage VALUES ('gen0', 1, 1, 5.0)")
    db.commit()
    db.close()


def _rows(path: Path) -> dict[str, tuple]:
    db = sqlite3.connect(str(path))
    rows = {r[0]: tuple(r) for r in db.execute("SELECT * FROM recordings")}
    db.close()
    return rows


def _version(path: Path) -> int:
    db = sqlite3.connect(str(path))
    version = db.execute("PRAGMA user_version").fetchone()[0]
    db.close()
    return version


def test_an_old_catalog_is_repaired_when_opened(broken: Path, tmp_path: Path):
    path = tmp_path / "index" / CATALOG_FILE
    path.parent.mkdir()
    _old_catalog(path, broken)
    before = _rows(path)
    assert _version(path) == 0

    catalog = Catalog(path)
    assert _version(path) == SCHEMA_VERSION == len(MIGRATIONS)
    failed = catalog.by_path(str(broken))
    assert failed.groups == [ADMINS_ONLY]  # its groups are unknown: administrators only
    assert not failed.visible_to(STAFF) and not failed.visible_to(HR)
    assert not failed.visible_to(frozenset()) and failed.visible_to(None)
    after = _rows(path)
    for media_id in ("restricted", "broke-later", "open"):  # the other rows are untouched
        assert after[media_id] == before[media_id], media_id
    assert catalog.garbage() == ["gen0"]
    assert {r.media_id for r in catalog.visible(STAFF)} == {"broke-later", "open"}
    catalog.close()

    # Opening again is a no-op: a row that is public now (as a failure without --groups is
    # written today) stays public.
    db = sqlite3.connect(str(path))
    db.execute("UPDATE recordings SET groups_='[]' WHERE media_id=?", (failed.media_id,))
    db.commit()
    db.close()
    again = Catalog(path)
    assert _version(path) == SCHEMA_VERSION
    assert again.by_path(str(broken)).groups == []
    reopened = _rows(path)
    assert all(reopened[k] == after[k] for k in ("restricted", "broke-later", "open"))
    again.close()


def test_a_repaired_recording_gets_its_groups_from_a_reingest(broken: Path, tmp_path: Path,
                                                              extract_options):
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    _old_catalog(index_dir / CATALOG_FILE, broken)
    index = Index(index_dir)  # opening the index repairs its catalog
    assert index.catalog.by_path(str(broken)).groups == [ADMINS_ONLY]
    run_batch([broken], index, BatchOptions(extract=extract_options))  # no --groups: kept
    assert index.catalog.by_path(str(broken)).groups == [ADMINS_ONLY]
    run_batch([broken], index, BatchOptions(extract=extract_options, groups=["hr"], again=True))
    rec = index.catalog.by_path(str(broken))
    assert rec.status == "failed" and rec.groups == ["hr"] and rec.visible_to(HR)


def test_a_fresh_catalog_starts_at_the_current_version(tmp_path: Path):
    path = tmp_path / CATALOG_FILE
    catalog = Catalog(path)
    assert _version(path) == SCHEMA_VERSION and catalog.all() == [] and catalog.garbage() == []
    catalog.close()
