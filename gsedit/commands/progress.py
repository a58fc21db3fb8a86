"""Progress of long commands: a rich display for people and a JSON-lines log for machines."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# logs and pipes get wide lines, so tables (gsedit eval) are not squeezed to 80 columns
console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


class JsonLog:
    """Appends one JSON object per event to a file (flushed at once, so a killed run keeps its log)."""

    def __init__(self, path: Path | None):
        self.path = path

    def write(self, event: str, **fields) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps({"time": round(time.time(), 3), "event": event, **fields}) + "\n")


class TurnReporter:
    """The edit engine's Reporter: rich progress with ETA (unless quiet) and a JSON-lines log."""

    def __init__(self, progress: Progress | None, log: JsonLog, log_every: int = 10):
        self.progress = progress
        self.log = log
        self.log_every = log_every
        self.task = None
        self.record = None

    def turn_started(self, record, total_steps: int) -> None:
        self.record = record
        self.log.write("turn_started", turn=record.index, instruction=record.instruction, steps=total_steps)
        if self.progress is not None:
            self.task = self.progress.add_task(
                f"turn {record.index}: {record.instruction[:40]}", total=total_steps, edits=0, loss=float("nan")
            )

    def step(self, p) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, completed=p.step, edits=p.edits, loss=p.loss)
        if p.step % self.log_every == 0 or p.step == p.total:
            self.log.write("step", turn=self.record.index, step=p.step, total=p.total, edits=p.edits, loss=p.loss)

    def turn_finished(self, record) -> None:
        self.log.write("turn_finished", **dataclasses.asdict(record))

    def attach(self, scene, cameras) -> None:
        """Nothing to show: the rich display follows the steps only."""


def make_progress(quiet: bool) -> Progress | None:
    if quiet:
        return None
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("edits {task.fields[edits]}  loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )


@contextmanager
def progress_display(quiet: bool) -> Iterator[Progress | None]:
    progress = make_progress(quiet)
    if progress is None:
        yield None
        return
    with progress:
        yield progress


@contextmanager
def fit_progress(quiet: bool, total: int) -> Iterator:
    """Yields an on_step(step, loss) callback drawing a progress bar (a no-op when quiet)."""
    progress = make_progress(quiet)
    if progress is None:
        yield lambda step, loss: None
        return
    with progress:
        task = progress.add_task("fit", total=total, edits=0, loss=float("nan"))
        yield lambda step, loss: progress.update(task, completed=step, loss=loss)
