"""The catalog of recordings: one SQLite file beside the Chroma index.

The catalog is the source of truth for what search may see. Each recording points at one
*generation* (`gen`) of segments; segments of any other generation are invisible to search,
whatever state Chroma is in. A write therefore goes: note the new gen as garbage-if-I-die,
write its segments, then switch the recording to it in one transaction. A crash at any point
leaves either the old generation or the new one visible, never a mix.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# The schema lives with every table of the database; MIGRATIONS and SCHEMA_VERSION are also
# importable from here, as before.
from clipcite.retrieval.migrations import MIGRATIONS, SCHEMA_VERSION, migrate
from clipcite.retrieval.schema import segment_id

log = logging.getLogger("clipcite.index")

__all__ = ["ADMINS_ONLY", "FAILED", "INDEXED", "MIGRATIONS", "SCHEMA_VERSION", "Catalog",
           "Recording", "may_see"]

INDEXED = "indexed"
FAILED = "failed"

# A group no user can have: a recording whose only group is this one is visible to unrestricted
# callers (administrators, the CLI without --groups) alone. It marks rows whose intended groups
# are unknown (see migrations._failed_rows_admins_only); `--groups` on a re-ingest replaces it.
ADMINS_ONLY = "(admins only)"


def may_see(owner: Collection[str], caller: frozenset[str] | None) -> bool:
    """The access rule. `caller` None is unrestricted; a recording with no groups is visible
    to all; otherwise the caller needs one of its groups, ADMINS_ONLY never counting."""
    if caller is None or not owner:
        return True
    return any(group in caller for group in owner if group != ADMINS_ONLY)


@dataclass
class Recording:
    media_id: str
    path: str
    title: str
    status: str
    size: int | None = None
    mtime: float | None = None
    content_hash: str | None = None
    duration: float | None = None
    recorded_at: float | None = None
    tags: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    error: str | None = None
    gen: str | None = None
    models: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    ingested_at: float | None = None

    @property
    def searchable(self) -> bool:
        return self.gen is not None

    def visible_to(self, groups: frozenset[str] | None) -> bool:
        """None means an unrestricted caller; see may_see."""
        return may_see(self.groups, groups)


def _row_to_recording(row: sqlite3.Row) -> Recording:
    return Recording(
        media_id=row["media_id"], path=row["path"], title=row["title"], status=row["status"],
        size=row["size"], mtime=row["mtime"], content_hash=row["content_hash"],
        duration=row["duration"], recorded_at=row["recorded_at"],
        tags=json.loads(row["tags"]), groups=json.loads(row["groups_"]), error=row["error"],
        gen=row["gen"], models=json.loads(row["models"]), counts=json.loads(row["counts"]),
        ingested_at=row["ingested_at"],
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Catalog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        if migrate(self._db) < SCHEMA_VERSION:  # every table of the file
            self._reclaim_space()
        self._before_commit: list[Callable[[str], None]] = []
        # Searchable recordings with their groups frozen at read time, reused until the catalog
        # changes (parsing every row cost 12-30 ms per search at 500 recordings).
        self._searchable: list[tuple[Recording, frozenset[str]]] | None = None
        self._by_gen: dict[str, Recording] | None = None
        self._data_version = -1

    def _reclaim_space(self) -> None:
        """After an upgrade that freed most of the file (version 6 moved the FTS5 keyword rows
        out: 220 of 247 MB at 1M segments), give the space back. Skipped while another
        process holds the database; the file is then only larger than it need be."""
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        if free * 2 <= self._db.execute("PRAGMA page_count").fetchone()[0]:
            return
        try:
            self._db.execute("VACUUM")
        except sqlite3.OperationalError as e:
            log.warning("could not compact %s after upgrading it: %s", self.path, e)

    @property
    def connection(self) -> sqlite3.Connection:
        """The catalog's database, shared with the keyword index that lives in it."""
        return self._db

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (a full disk) leaves the transaction open; without this
                # rollback a long-lived process (the web app's ingester) fails every later write.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        finally:
            self._changed()  # every transaction here writes the recordings or garbage tables

    # -- reading -------------------------------------------------------------------------
    def get(self, media_id: str) -> Recording | None:
        row = self._db.execute("SELECT * FROM recordings WHERE media_id=?", (media_id,)).fetchone()
        return _row_to_recording(row) if row else None

    def by_path(self, path: str) -> Recording | None:
        row = self._db.execute("SELECT * FROM recordings WHERE path=?", (path,)).fetchone()
        return _row_to_recording(row) if row else None

    def all(self) -> list[Recording]:
        rows = self._db.execute("SELECT * FROM recordings ORDER BY title, path").fetchall()
        return [_row_to_recording(r) for r in rows]

    def generation_count(self) -> int:
        """How many generations are visible to someone (one per searchable recording)."""
        return len(self._searchable_recordings())

    def segment_count(self, modality: str, gens: Collection[str]) -> int:
        """Segments of `modality` in these visible generations, as counted when each was
        committed (no segment is read)."""
        wanted = set(gens)
        return sum(rec.counts.get(modality, 0) for rec, _ in self._searchable_recordings()
                   if rec.gen in wanted)

    def segment_ids(self, modality: str, gens: Collection[str]) -> list[str] | None:
        """Every segment id of `modality` in these visible generations, from the counts kept
        at commit (ids are numbered 0..count-1: schema.segment_id; a modality the recording
        has no count of had no segments); None when a recording's counts are not known (rows
        from before counts were kept)."""
        wanted = set(gens)
        ids: list[str] = []
        for rec, _ in self._searchable_recordings():
            if rec.gen not in wanted:
                continue
            if not rec.counts:
                return None
            ids.extend(segment_id(rec.media_id, rec.gen, modality, i)
                       for i in range(rec.counts.get(modality, 0)))
        return ids

    def visible(self, groups: frozenset[str] | None = None) -> list[Recording]:
        """Searchable recordings the caller may see.

        The Recording objects are shared between calls until the catalog changes: read them,
        don't modify them. The access decision uses the groups frozen when the row was read,
        so a caller modifying a returned object cannot widen what later calls see.
        """
        return [rec for rec, frozen in self._searchable_recordings() if may_see(frozen, groups)]

    def by_gen(self) -> dict[str, Recording]:
        """Searchable recordings by their visible generation (shared like `visible`'s)."""
        self._searchable_recordings()
        if self._by_gen is None:
            self._by_gen = {rec.gen: rec for rec, _ in self._searchable or () if rec.gen}
        return self._by_gen

    def _searchable_recordings(self) -> list[tuple[Recording, frozenset[str]]]:
        # data_version moves when another connection (another process: an ingest, the CLI)
        # commits; this connection's own writes go through _changed().
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if self._searchable is None or version != self._data_version:
            rows = self._db.execute("SELECT * FROM recordings WHERE gen IS NOT NULL"
                                    " ORDER BY title, path").fetchall()
            recs = [_row_to_recording(r) for r in rows]
            self._searchable = [(r, frozenset(r.groups)) for r in recs]
            self._by_gen = None
            self._data_version = version
        return self._searchable

    def _changed(self) -> None:
        self._searchable = None
        self._by_gen = None

    # -- writing -------------------------------------------------------------------------
    def record_failure(self, media_id: str, path: str, title: str, error: str,
                       tags: list[str], groups: list[str], size: int | None = None,
                       mtime: float | None = None, content_hash: str | None = None) -> None:
        """Note a failed attempt with the access the batch gave the recording (a failed
        recording's file is still listed and served to those who may see it). A recording
        that was indexed before keeps its segments, now under these tags and groups."""
        access = (json.dumps(tags), json.dumps(groups))
        with self._tx() as db:
            if db.execute("SELECT 1 FROM recordings WHERE media_id=?", (media_id,)).fetchone():
                db.execute(
                    "UPDATE recordings SET status=?, error=?, size=?, mtime=?, content_hash=?,"
                    " tags=?, groups_=? WHERE media_id=?",
                    (FAILED, error, size, mtime, content_hash, *access, media_id),
                )
            else:
                db.execute(
                    "INSERT INTO recordings (media_id, path, title, status, error, size, mtime,"
                    " content_hash, tags, groups_, ingested_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (media_id, path, title, FAILED, error, size, mtime, content_hash, *access,
                     time.time()),
                )

    def touch(self, media_id: str, size: int, mtime: float) -> None:
        """The file's stat changed but its content did not: remember the new stat."""
        self._db.execute("UPDATE recordings SET size=?, mtime=? WHERE media_id=?",
                         (size, mtime, media_id))
        self._changed()

    def forget_content(self, media_id: str) -> None:
        """Make the next ingest read the file again (its segments stay visible until then)."""
        self._db.execute("UPDATE recordings SET size=NULL, mtime=NULL, content_hash=NULL"
                         " WHERE media_id=?", (media_id,))
        self._changed()

    def update_access(self, media_id: str, tags: list[str], groups: list[str]) -> None:
        self._db.execute("UPDATE recordings SET tags=?, groups_=? WHERE media_id=?",
                         (json.dumps(tags), json.dumps(groups), media_id))
        self._changed()

    def begin_generation(self, gen: str) -> None:
        """Before writing segments of `gen`: if this process dies, they are garbage."""
        self._add_garbage(self._db, gen, retired=False)

    def before_commit(self, hook: Callable[[str], None]) -> None:
        """Call hook(gen) before commit_generation makes `gen` visible: a store that holds a
        generation's writes back (the keyword index commits once per recording) commits them
        then, so that they are searchable when the catalog points at them."""
        self._before_commit.append(hook)

    def commit_generation(self, rec: Recording) -> str | None:
        """Make `rec.gen` the visible generation of the recording; returns the retired gen."""
        assert rec.gen is not None
        for hook in self._before_commit:
            hook(rec.gen)
        with self._tx() as db:
            row = db.execute("SELECT gen FROM recordings WHERE media_id=?",
                             (rec.media_id,)).fetchone()
            old = row["gen"] if row else None
            db.execute("DELETE FROM recordings WHERE media_id=? OR path=?",
                       (rec.media_id, rec.path))
            db.execute(
                "INSERT INTO recordings (media_id, path, title, size, mtime, content_hash,"
                " duration, recorded_at, tags, groups_, status, error, gen, models, counts,"
                " ingested_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (rec.media_id, rec.path, rec.title, rec.size, rec.mtime, rec.content_hash,
                 rec.duration, rec.recorded_at, json.dumps(rec.tags), json.dumps(rec.groups),
                 INDEXED, None, rec.gen, json.dumps(rec.models), json.dumps(rec.counts),
                 rec.ingested_at or time.time()),
            )
            db.execute("DELETE FROM garbage WHERE gen=?", (rec.gen,))
            if old and old != rec.gen:
                self._add_garbage(db, old, retired=True)
        return old if old != rec.gen else None

    def remove(self, media_id: str) -> str | None:
        """Forget a recording; its generation becomes garbage. Returns that gen."""
        with self._tx() as db:
            row = db.execute("SELECT gen FROM recordings WHERE media_id=?",
                             (media_id,)).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM recordings WHERE media_id=?", (media_id,))
            if row["gen"]:
                self._add_garbage(db, row["gen"], retired=True)
            return row["gen"]

    @staticmethod
    def _add_garbage(db: sqlite3.Connection, gen: str, retired: bool) -> None:
        db.execute("INSERT OR REPLACE INTO garbage (gen, pid, retired, created_at)"
                   " VALUES (?,?,?,?)", (gen, os.getpid(), int(retired), time.time()))

    def collectable_garbage(self) -> list[str]:
        """Retired generations, and generations whose writer died before committing them."""
        rows = self._db.execute("SELECT gen, pid, retired FROM garbage").fetchall()
        return [r["gen"] for r in rows if r["retired"] or not _pid_alive(r["pid"])]

    def forget_garbage(self, gen: str) -> None:
        self._db.execute("DELETE FROM garbage WHERE gen=?", (gen,))

    def garbage(self) -> list[str]:
        return [r["gen"] for r in self._db.execute("SELECT gen FROM garbage").fetchall()]
