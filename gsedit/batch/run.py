"""Running the jobs of a JOBS.yaml plan (gsedit.batch.jobs) as Ray tasks, on a local or remote Ray
cluster: one job is one session folder, run through gsedit.Session with its report and log.

Each job is run as `gsedit edit --resume` would (the rule of `gsedit.edit.session.continue_plan`):
a job whose session has finished all its turns is skipped, an interrupted one continues from its
last finished turn, and turns added at the end of the job's list in JOBS.yaml are appended. A
session keeps the settings it was created with. A job that fails (bad input, missing model, a
crash) is reported and the others carry on.
"""

from __future__ import annotations

import os
import re
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gsedit.batch.jobs import BatchJob, BatchPlan, BatchResources, JobEdit
from gsedit.errors import GseditError, MissingPackageError

Status = Literal["done", "skipped", "failed"]


@dataclass
class JobResult:
    """How one job ended (a row of the summary)."""

    name: str
    status: Status
    turns_done: int = 0
    turns_total: int = 0
    seconds: float = 0.0
    error: str | None = None


def run_job(job: BatchJob) -> JobResult:
    """Runs (or resumes, or skips) one job; never raises, so one job cannot stop the others."""
    import torch

    torch.set_num_threads(job.threads)
    start = time.perf_counter()
    result = JobResult(job.name, "failed", turns_total=len(job.edit.turn))
    try:
        result.status = _run_session(job.edit)
    except GseditError as exc:
        result.error = str(exc)
    except Exception as exc:  # noqa: BLE001 -- a bug or a crash in one job must not stop the batch
        traceback.print_exc()
        result.error = f"{type(exc).__name__}: {exc}"
    result.turns_done, result.turns_total = _turn_counts(job.edit.out, result.turns_total)
    result.seconds = round(time.perf_counter() - start, 2)
    return result


def _run_session(edit: JobEdit) -> Status:
    """Starts, resumes or skips the session of `edit` (the report rewritten after every turn and
    the refine stage); returns "done" or "skipped"."""
    from gsedit.edit.api import Session
    from gsedit.edit.refine import REFINED_DIR
    from gsedit.edit.start import make_turns
    from gsedit.evaluation.report import report_after_turn

    resume = resume_rule(edit)
    if resume is not None:
        turns = make_turns(edit.turn, edit.target, edit.keep)
        with Session.start(edit.out, edit, turns, resume=resume, device=edit.device,
                           after_turn=report_after_turn()) as session:
            session.run_pending()
            if edit.refine:
                _refine(session, edit)
        return "done"
    session = _open(edit.out)
    if edit.refine and (
        session.data.get("refine") is None or not (edit.out / REFINED_DIR).is_dir()
    ):
        with Session.open(edit.out, edit.device) as session:
            _refine(session, edit)
        return "done"
    return "skipped"


def _refine(session, edit: JobEdit) -> None:
    """The refine stage of the job's open `session` (face masks from its config only), then its report."""
    from gsedit.evaluation.report import write_report

    session.refine(edit.sr)
    write_report(session.record)


def resume_rule(edit: JobEdit) -> bool | None:
    """How the job `edit` brings its session up to its turns: False to start it, True to resume it
    (the --resume rule, `continue_plan`, then appends the job's turns that the session lacks), None
    when the session has every turn of the job and has finished them.

    Raises:
        GseditError: the folder holds a session of another scene, or the job's turns start like
            the session's and then differ.
    """
    from gsedit.edit.session import SESSION_FILE, continue_plan
    from gsedit.edit.start import make_turns

    session = _open(edit.out)
    if session is None:
        return False
    if not session.is_finished(0):
        # killed while writing turn_00: nothing of it was kept, so start afresh
        (edit.out / SESSION_FILE).unlink()
        return False
    if str(Path(edit.scene).resolve()) != session.data["input"]:
        raise GseditError(
            f"{edit.out} holds a session of {session.data['input']}, not of this job's scene "
            f"{edit.scene}: give the job another `out` folder."
        )
    planned = [r.turn for r in session.records]
    new, start = continue_plan(planned, session.turn_lists, make_turns(edit.turn, edit.target, edit.keep),
                               f"gsedit edit --out {edit.out}")
    if new and start not in session.turn_lists:
        # on the command line a list that starts like none of the session's is appended; a job's
        # list is its whole plan, so it belongs to another session
        raise GseditError(
            f"{edit.out} holds a session with the turns {[t.instruction for t in planned]}, which this "
            f"job's turns {edit.turn} do not start like: give the job another `out` folder."
        )
    if not new and not session.pending():
        return None
    return True


def _open(folder: Path):
    from gsedit.edit.session import SESSION_FILE, SessionFolder

    return SessionFolder.open(folder) if (Path(folder) / SESSION_FILE).is_file() else None


def _turn_counts(folder: Path, planned: int) -> tuple[int, int]:
    """(finished turns, turns) of the session in `folder`; (0, planned) when there is none."""
    try:
        session = _open(folder)
    except GseditError:
        return 0, planned
    if session is None:
        return 0, planned
    return session.last_finished(), max(len(session.records), planned)


def run_jobs(plan: BatchPlan, address: str | None = None, quiet: bool = False,
             on_result: Callable[[JobResult], None] | None = None) -> list[JobResult]:
    """Runs every job of `plan` as a Ray task; returns their results in the order of JOBS.yaml.

    Uses the Ray instance this process is connected to, or connects to `address` ("auto",
    "HOST:PORT", "ray://HOST:PORT"), or starts a local one (None); disconnects only from one it
    connected to itself.

    Args:
        quiet: the workers' output is not forwarded to this process.
        on_result: called with each job's result as it ends (the console prints a line).
    """
    try:
        import ray
    except ImportError:
        raise MissingPackageError("gsedit batch", "Ray") from None

    connected_here = not ray.is_initialized()
    if connected_here:
        try:
            # without --address a new local instance, even where `ray start` left a cluster's address
            # file behind (Ray would join that one, or fail on it once stopped); RAY_ADDRESS still joins
            local = address if address is not None else os.environ.get("RAY_ADDRESS") or "local"
            ray.init(address=local, include_dashboard=False, log_to_driver=not quiet)
        except (ConnectionError, RuntimeError) as exc:  # ConnectionError is an OSError: not "a file: ..."
            if address is None:
                raise
            raise GseditError(cluster_error(address, ray.__version__, str(exc))) from None
    try:
        has_gpus = ray.cluster_resources().get("GPU", 0) > 0
        task = ray.remote(max_retries=0)(run_job)
        refs = {
            task.options(**job_resources(job, plan.resources, has_gpus)).remote(job): job
            for job in plan.jobs
        }
        results: dict[int, JobResult] = {}
        waiting = list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            job = refs[ready[0]]
            try:
                results[job.index] = ray.get(ready[0])
            except ray.exceptions.RayError as exc:  # the worker died (out of memory, killed)
                results[job.index] = JobResult(
                    job.name,
                    "failed",
                    turns_total=len(job.edit.turn),
                    error=f"the Ray task died: {exc}",
                )
            if on_result is not None:
                on_result(results[job.index])
        return [results[job.index] for job in plan.jobs]
    finally:
        if connected_here:
            ray.shutdown()


def cluster_error(address: str, version: str, reason: str) -> str:
    """Why `gsedit batch --address` found no cluster, and the likely causes (README, "Running on a Ray cluster")."""
    tried = re.search(r" at (\S+?:\d+)", reason)
    rewritten = ""
    if tried and address != "auto" and tried[1] != address.removeprefix("ray://"):
        rewritten = f" (Ray rewrote {address} to {tried[1]})"
    return (
        f"gsedit batch could not connect to the Ray cluster at {address}{rewritten}: {reason.strip().rstrip('.')}. "
        "Likely causes: the address (Ray replaces a loopback address by this machine's other interface, where a "
        "head started without --node-ip-address 127.0.0.1 may not listen: start the head with `ray start --head "
        "--node-ip-address 127.0.0.1` and give --address auto); token authentication, on by default in current "
        "Ray (InvalidAuthToken lines above: this process needs the head's token, ~/.ray/auth_token on the head's "
        "machine or RAY_AUTH_TOKEN); or another Ray version on the head than gsedit's "
        f"Ray {version} (`ray --version` on both)."
    )


def job_resources(job: BatchJob, resources: BatchResources, has_gpus: bool) -> dict[str, float]:
    """Ray resources of a job: a GPU share when the cluster has GPUs and the job may use one."""
    gpus = resources.num_gpus if has_gpus and job.edit.device != "cpu" else 0
    return {"num_cpus": resources.num_cpus, "num_gpus": gpus}
