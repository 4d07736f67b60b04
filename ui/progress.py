"""Terminal progress for the ingestion job: a bar per file in flight, one overall, a summary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import (BarColumn, Progress, TaskID, TextColumn,
                           TimeElapsedColumn)
from rich.table import Table

from clipcite.ingestion.batch import Outcome

_STYLE = {"indexed": "green", "unchanged": "dim", "failed": "red", "removed": "yellow"}


class RichReporter:
    """Implements ingestion.batch.Reporter with rich progress bars."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}", justify="left"), BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"), TextColumn("{task.fields[stage]}"),
            TimeElapsedColumn(), console=console, transient=False,
        )
        self._overall: TaskID | None = None
        self._files: dict[Path, TaskID] = {}

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def batch_started(self, files: Sequence[Path]) -> None:
        self._overall = self.progress.add_task("[bold]all files", total=max(1, len(files)),
                                               stage=f"{len(files)} files")

    def file_started(self, path: Path) -> None:
        name = path.name if len(path.name) <= 40 else path.name[:37] + "..."
        self._files[path] = self.progress.add_task(name, total=1.0, stage="starting")

    def file_progress(self, path: Path, stage: str, fraction: float) -> None:
        task = self._files.get(path)
        if task is not None:
            self.progress.update(task, completed=fraction, stage=stage)

    def file_finished(self, outcome: Outcome) -> None:
        task = self._files.pop(Path(outcome.path), None)
        if task is not None:
            self.progress.update(task, completed=1.0, stage=outcome.status)
            self.progress.remove_task(task)
        if self._overall is not None:
            self.progress.advance(self._overall)


def summary_table(outcomes: Sequence[Outcome]) -> Table:
    table = Table(title="Ingestion summary", show_lines=False)
    for col in ("file", "status", "length", "segments", "time", "reason / note"):
        table.add_column(col, overflow="fold")
    for o in outcomes:
        segs = ", ".join(f"{n} {m}" for m, n in o.counts.items() if n) or "-"
        length = f"{o.duration:.0f} s" if o.duration else "-"
        took = f"{o.seconds:.1f} s" if o.seconds else "-"
        style = _STYLE.get(o.status, "")
        table.add_row(Path(o.path).name, f"[{style}]{o.status}[/]", length, segs, took,
                      o.reason or "")
    return table
