"""Progress of long commands: a rich display for people (the JSON-lines log for machines is the
library's, gsedit.edit.turn_log)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

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


class TurnDisplay:
    """The edit engine's Reporter for people: rich progress with ETA (the Session logs the same
    events to DIR/log.jsonl itself, gsedit.edit.turn_log)."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.task = None

    def turn_started(self, record, total_steps: int) -> None:
        self.task = self.progress.add_task(
            f"turn {record.index}: {record.instruction[:40]}", total=total_steps, edits=0, loss=float("nan")
        )

    def step(self, p) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=p.step, edits=p.edits, loss=p.loss)

    def turn_finished(self, record) -> None:
        """Nothing more to show: the bar is full."""

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
