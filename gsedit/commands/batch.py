"""`gsedit batch JOBS.yaml`: many edit sessions, one Ray task each, on a local or remote Ray cluster.

The command's options, the line per finished job and the summary table; JOBS.yaml's format and
checks are gsedit.batch.jobs, running the jobs gsedit.batch.run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tyro.conf import Positional

from gsedit.errors import GseditError

if TYPE_CHECKING:
    from gsedit.batch.run import JobResult


def summary_table(results: list[JobResult], error_width: int = 48):
    """A rich table: job, status, turns, seconds, error (cut to `error_width`; `print_summary`
    prints the errors whole below it: file paths are too long for a table cell)."""
    from rich.table import Table

    colours = {"done": "green", "skipped": "cyan", "failed": "red"}
    table = Table(title="gsedit batch")
    table.add_column("job", overflow="fold")
    for column in ("status", "turns", "seconds"):
        table.add_column(column, no_wrap=True, justify="right" if column == "seconds" else "left")
    table.add_column("error", overflow="fold")
    for r in results:
        error = r.error or ""
        short = error if len(error) <= error_width else error[: error_width - 1] + "…"
        table.add_row(
            r.name,
            f"[{colours[r.status]}]{r.status}[/]",
            f"{r.turns_done}/{r.turns_total}",
            f"{r.seconds:.1f}",
            short,
        )
    return table


def run_batch(jobs_yaml: Path, address: str | None = None, quiet: bool = False) -> int:
    """`gsedit batch`: validates JOBS.yaml, runs its jobs on Ray, prints the summary.

    Returns:
        0 when every job finished or was already finished, 1 when any job failed.

    Raises:
        InputFileError: JOBS.yaml is missing or malformed (nothing has run).
        GseditError: Ray is not installed.
    """
    from gsedit.batch.jobs import load_jobs
    from gsedit.batch.run import run_jobs

    plan = load_jobs(jobs_yaml)
    results = run_jobs(plan, address, quiet, on_result=None if quiet else print_result)
    print_summary(results)
    return 1 if any(r.status == "failed" for r in results) else 0


def print_result(r: JobResult) -> None:
    """The line of a job that has just ended."""
    from gsedit.commands.progress import console

    console.print(f"{r.name}: {r.status} ({r.turns_done}/{r.turns_total} turns, {r.seconds:.1f} s)", highlight=False)


def print_summary(results: list[JobResult]) -> None:
    """The summary table, then each failed job's error in full (paths are long for a table cell)."""
    from gsedit.commands.progress import console

    console.print(summary_table(results))
    for r in results:
        if r.error:
            console.print(f"[red]{r.name}[/]: {r.error}", highlight=False, soft_wrap=True)


@dataclass
class Batch:
    """Runs the edit sessions of JOBS.yaml on Ray (a local instance by default); a summary table at the end."""

    jobs: Positional[Path]
    address: str | None = None
    """Ray cluster: "auto", HOST:PORT or ray://HOST:PORT; default: start a local one."""
    quiet: bool = False

    def run(self) -> None:
        from gsedit.commands.batch import run_batch

        if run_batch(self.jobs, self.address, self.quiet):
            raise GseditError("some jobs failed: see the table above.")
