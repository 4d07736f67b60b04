"""Who spoke when, and what the speakers are called: turns, names and voice prints.

Ingestion stores each recording's speaker turns and one voice print per speaker, keyed by the
recording's generation (like its segments), so a replaced or half-written recording never mixes
old and new turns. Speakers are "Speaker 1", "Speaker 2" ... until named. A name is either
confirmed by a user or suggested by ingestion because the voice matched a named speaker's print;
the segments' `speaker` metadata always holds the shown name, so search filters by it.

A named speaker's voice print is the duration-weighted mean of the prints of every recording
where a user confirmed that name; suggestions never feed it (one wrong match would spread).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from clipcite.retrieval.voice_models import KnownVoices, print_model
from clipcite.retrieval.catalog import Recording

CONFIRMED = "confirmed"
SUGGESTED = "suggested"

@dataclass(frozen=True)
class SpeakerTurn:
    start: float
    end: float
    speaker: str  # the shown name: a name, or the label


@dataclass(frozen=True)
class Speaker:
    label: str
    name: str | None
    status: str | None
    score: float | None
    seconds: float

    @property
    def shown(self) -> str:
        return self.name or self.label


@dataclass(frozen=True)
class SpeakerInput:
    """What ingestion hands over for one speaker of a new generation."""

    label: str
    seconds: float
    print: np.ndarray | None
    name: str | None = None  # a suggested name from voice matching
    score: float | None = None
    confirmed: bool = False  # the name came with the recording (an imported transcript's)
    model: str | None = None  # the speaker model of `print` (default: known from its length)


class SpeakerError(ValueError):
    pass


def _status(speaker: SpeakerInput) -> str | None:
    if not speaker.name:
        return None
    return CONFIRMED if speaker.confirmed else SUGGESTED


def _blob(vector: np.ndarray | None) -> bytes | None:
    return None if vector is None else np.asarray(vector, dtype=np.float32).tobytes()


def _vector(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype=np.float32)


class SpeakerStore:
    """Speaker tables beside the catalog, in the same database (`speaker_turns`, `speakers`:
    made and upgraded by retrieval/migrations.py when the catalog is opened). Only reads and
    writes rows, so a read-only connection can use it."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    # -- writing (ingestion) -------------------------------------------------------------
    def add_generation(self, gen: str, turns: Sequence[tuple[float, float, str]],
                       speakers: Sequence[SpeakerInput]) -> None:
        """Store a generation's turns (label per turn) and speakers before it becomes visible."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany("INSERT INTO speaker_turns VALUES (?,?,?,?)",
                                 [(gen, float(s), float(e), label) for s, e, label in turns])
            self._db.executemany(
                "INSERT OR REPLACE INTO speakers (gen, label, name, status, score, seconds,"
                " print, model) VALUES (?,?,?,?,?,?,?,?)",
                [(gen, s.label, s.name, _status(s), s.score, s.seconds, _blob(s.print),
                  s.model or print_model(s.print)) for s in speakers])
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def map_segments(self, gen: str, speakers: Sequence[str]) -> None:
        """Record who said each transcript segment of a generation (`speakers[i]`: segment i's
        shown name, "" for none), replacing what was recorded for it."""
        by_name: dict[str, list[int]] = {"": []}  # a row even without speech: it is recorded
        for i, name in enumerate(speakers):
            by_name.setdefault(name or "", []).append(i)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("DELETE FROM speaker_segments WHERE gen=?", (gen,))
            self._db.executemany(
                "INSERT INTO speaker_segments (gen, speaker, segments) VALUES (?,?,?)",
                [(gen, name, np.asarray(idx, dtype=np.int32).tobytes())
                 for name, idx in by_name.items() if idx or name == ""])
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def segments_of(self, speaker: str, gens: Collection[str]) -> dict[str, np.ndarray] | None:
        """The transcript segment indices `speaker` said in each of these generations (those
        where they said none are absent); None when a generation has no record (written
        before these were kept and not yet filled in)."""
        wanted = set(gens)
        if self.unmapped(wanted):
            return None
        rows = self._db.execute(
            "SELECT gen, segments FROM speaker_segments WHERE speaker=?", (speaker,))
        return {g: np.frombuffer(blob, dtype=np.int32) for g, blob in rows
                if g in wanted and blob}

    def unmapped(self, gens: Collection[str]) -> list[str]:
        """Those of these generations with no record of who said which segment."""
        mapped = {g for (g,) in self._db.execute("SELECT DISTINCT gen FROM speaker_segments")}
        return [g for g in gens if g not in mapped]

    def forget_unused(self) -> int:
        """Delete rows of generations that are neither visible nor being written."""
        cur = self._db.execute(
            "SELECT DISTINCT gen FROM speakers UNION SELECT DISTINCT gen FROM speaker_turns")
        live = {r[0] for r in self._db.execute(
            "SELECT gen FROM recordings WHERE gen IS NOT NULL"
            " UNION SELECT gen FROM garbage WHERE retired=0")}
        dead = [r[0] for r in cur.fetchall() if r[0] not in live]
        dead += [g for (g,) in self._db.execute("SELECT DISTINCT gen FROM speaker_segments")
                 if g not in live and g not in dead]
        for gen in dead:
            self._db.execute("DELETE FROM speaker_turns WHERE gen=?", (gen,))
            self._db.execute("DELETE FROM speakers WHERE gen=?", (gen,))
            self._db.execute("DELETE FROM speaker_segments WHERE gen=?", (gen,))
        return len(dead)

    # -- reading -------------------------------------------------------------------------
    def speakers(self, rec: Recording) -> list[Speaker]:
        rows = self._db.execute(
            "SELECT label, name, status, score, seconds FROM speakers WHERE gen=?"
            " ORDER BY CAST(substr(label, 9) AS INTEGER), label", (rec.gen,)).fetchall()
        return [Speaker(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def turns(self, rec: Recording) -> list[SpeakerTurn]:
        shown = {s.label: s.shown for s in self.speakers(rec)}
        rows = self._db.execute("SELECT start, end_, label FROM speaker_turns WHERE gen=?"
                                " ORDER BY start", (rec.gen,)).fetchall()
        return [SpeakerTurn(r[0], r[1], shown.get(r[2], r[2])) for r in rows]

    def find(self, rec: Recording, speaker: str) -> Speaker:
        """A speaker of the recording by shown name or label (case-insensitive)."""
        wanted = speaker.strip().casefold()
        found = self.speakers(rec)
        for s in found:
            if wanted in (s.shown.casefold(), s.label.casefold()):
                return s
        names = ", ".join(f'"{s.shown}"' for s in found) or "none"
        raise SpeakerError(f'no speaker "{speaker}" in {rec.title} (speakers: {names})')

    def voices(self, audience: Sequence[str] = ()) -> KnownVoices:
        """Each confirmed name's voice print (unit length), over recordings still indexed,
        per speaker model (`KnownVoices.of_model`); as a plain mapping, each name's print of
        the model it has most speech under.

        Only recordings that everyone in `audience` (a new recording's access groups; empty:
        everyone) may see lend their names, so a suggestion never reveals a name from a
        recording its viewers could not open.
        """
        rows = self._db.execute(
            "SELECT s.name, s.seconds, s.print, r.groups_, s.model FROM speakers s"
            " JOIN recordings r ON r.gen = s.gen WHERE s.status=? AND s.print IS NOT NULL",
            (CONFIRMED,)).fetchall()
        sums: dict[str, dict[str, np.ndarray]] = {}
        spoken: dict[tuple[str, str], float] = {}
        for name, seconds, blob, groups_json, model in rows:
            groups = set(json.loads(groups_json or "[]"))
            if groups and (not audience or not set(audience) <= groups):
                continue
            vec = _vector(blob)
            assert vec is not None
            model = model or print_model(vec) or f"{len(vec)}-d"
            weight = max(float(seconds), 1e-3)
            per = sums.setdefault(model, {})
            per[name] = per.get(name, 0) + vec * weight
            spoken[(model, name)] = spoken.get((model, name), 0.0) + weight
        by_model = {m: {n: v / (np.linalg.norm(v) or 1.0) for n, v in per.items()}
                    for m, per in sums.items()}
        best: dict[str, str] = {}
        for (model, name), seconds in spoken.items():
            if name not in best or seconds > spoken[(best[name], name)]:
                best[name] = model
        return KnownVoices(by_model, {n: by_model[m][n] for n, m in best.items()})

    def prints(self, gens: set[str]) -> dict[tuple[str, str], np.ndarray]:
        """Voice prints (unit length) of the speakers of these generations, by (gen, label)."""
        out: dict[tuple[str, str], np.ndarray] = {}
        for gen in gens:
            for label, blob in self._db.execute(
                    "SELECT label, print FROM speakers WHERE gen=? AND print IS NOT NULL", (gen,)):
                vec = _vector(blob)
                assert vec is not None
                out[(gen, label)] = vec / (np.linalg.norm(vec) or 1.0)
        return out

    def shown_names(self, gens: Collection[str] | None = None) -> list[str]:
        """Every name or label shown for a speaker of an indexed recording (of these
        generations: the recordings a caller may search)."""
        rows = self._db.execute("SELECT DISTINCT COALESCE(s.name, s.label), s.gen FROM speakers s"
                                " JOIN recordings r ON r.gen = s.gen").fetchall()
        wanted = None if gens is None else set(gens)
        return list(dict.fromkeys(name for name, gen in rows if wanted is None or gen in wanted))

    def confirmed_turns(self, rec: Recording | None) -> list[tuple[float, float, str]]:
        """(start, end, name) of the turns of a recording's speakers whose name a user
        confirmed (none for a recording not indexed yet)."""
        if rec is None or not rec.gen:
            return []
        rows = self._db.execute(
            "SELECT t.start, t.end_, s.name FROM speaker_turns t JOIN speakers s"
            " ON s.gen = t.gen AND s.label = t.label WHERE t.gen=? AND s.status=?"
            " AND s.name IS NOT NULL ORDER BY t.start", (rec.gen, CONFIRMED)).fetchall()
        return [(float(a), float(b), str(n)) for a, b, n in rows]

    # -- naming --------------------------------------------------------------------------
    def set_name(self, rec: Recording, label: str, name: str) -> None:
        """Name a speaker (a user's choice: confirmed)."""
        self._db.execute("UPDATE speakers SET name=?, status=?, score=NULL WHERE gen=? AND label=?",
                         (name, CONFIRMED, rec.gen, label))

    def carry(self, rec: Recording, names: dict[str, str]) -> list[str]:
        """Confirm names carried over from the recording's earlier diarization (label -> name);
        other speakers suggested one of those names by voice lose the suggestion. Returns the
        labels that lost one (their segments should show the label again)."""
        dropped = []
        for label, name in names.items():
            self.set_name(rec, label, name)
            for other, in self._db.execute(
                    "SELECT label FROM speakers WHERE gen=? AND label<>? AND name=? AND status=?",
                    (rec.gen, label, name, SUGGESTED)).fetchall():
                self._db.execute("UPDATE speakers SET name=NULL, status=NULL, score=NULL"
                                 " WHERE gen=? AND label=?", (rec.gen, other))
                dropped.append(other)
        return dropped


def carried_names(old: Sequence[tuple[float, float, str]],
                  new: Sequence[tuple[float, float, str]], least: float = 0.5) -> dict[str, str]:
    """Names confirmed on a recording's earlier turns for the speakers of its new turns
    (re-diarized, e.g. with another speaker model): a new speaker takes the name whose old
    turns cover the largest part of its speech, if that is at least `least` of it; a name
    goes to one speaker only, the one it covers most."""
    if not old:
        return {}
    starts = np.array([a for a, _, _ in old])
    ends = np.array([b for _, b, _ in old])
    names = [n for _, _, n in old]
    spoken: dict[str, float] = {}
    shared: dict[str, dict[str, float]] = {}
    for a, b, label in new:
        spoken[label] = spoken.get(label, 0.0) + max(0.0, b - a)
        both = np.minimum(ends, b) - np.maximum(starts, a)
        for j in np.flatnonzero(both > 0):
            per = shared.setdefault(label, {})
            per[names[j]] = per.get(names[j], 0.0) + float(both[j])
    chosen: dict[str, tuple[str, float]] = {}  # name -> (label, share of the label's speech)
    for label, per in shared.items():
        name = max(per, key=per.__getitem__)
        share = per[name] / spoken[label] if spoken[label] > 0 else 0.0
        if share >= least and share > chosen.get(name, ("", 0.0))[1]:
            chosen[name] = (label, share)
    return {label: name for name, (label, _) in chosen.items()}
