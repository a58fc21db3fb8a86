"""`gsedit batch JOBS.yaml`: many edit sessions, one Ray task each, on a local or remote Ray cluster.

JOBS.yaml::

    num_cpus: 1            # optional: CPU cores reserved per job (see BatchResources)
    num_gpus: 1            # optional: GPUs reserved per job when the cluster has GPUs
    defaults:              # optional: options every job starts from
      method: gsedit
      editor: ip2p
      iters: 1500
    jobs:
      - scene: scenes/bear.ply         # required (a key of `defaults` counts)
        cameras: scenes/cameras.json   # a path or orbit:N[@WxH]; default: a trainer folder's own
        turns: ["make the bear a panda", "give him a hat"]   # required
        out: sessions/bear             # required, one folder per job
        name: bear                     # optional, the summary's name (default: out's folder name)
        keep: [null, "his face"]       # any `gsedit edit` option, as in the CLI:
        sam_checkpoint: sam_vit_h.pth  #   edit settings and ADSS options flat, ip2p: / sr: nested

Options are named as the `gsedit edit` flags, without dashes (`sam-checkpoint` and
`sam_checkpoint` both work). Relative paths (scene, cameras, out, and path-valued options) are
relative to the folder of JOBS.yaml; model ids are passed as written. On a cluster of several
machines every path must be readable (and `out` writable) at the same place on every node.

Each job is a session folder, run through gsedit.Session as `gsedit edit --resume` would (the rule
of `gsedit.edit.session.continue_plan`): a job whose session has finished all its turns is skipped,
an interrupted one continues from its last finished turn, and turns added at the end of the job's
list in JOBS.yaml are appended. A session keeps the settings it was created with.
A job that fails (bad input, missing model, a crash) is reported and the others carry on.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tyro.conf import Positional

from gsedit.edit.options import (
    Device,
    OptionError,
    SessionOptions,
    build,
    check_names,
    convert,
    fields_of,
    kind,
    session_options,
)
from gsedit.errors import GseditError, InputFileError, MissingPackageError

#: keys of a job that are not options of the session it creates
JOB_KEYS = ("name", "turns", "out", "target", "keep", "device", "refine")
#: job keys a `defaults:` mapping may not set: they must differ between jobs
PER_JOB_KEYS = ("name", "out")

Status = Literal["done", "skipped", "failed"]


@dataclass
class BatchResources:
    """What Ray reserves for each job (top-level keys of JOBS.yaml)."""

    num_cpus: float = 1
    """CPU cores per job; a job on CPU uses that many torch threads."""
    num_gpus: float = 1
    """GPUs per job when the cluster has GPUs and the job's device is not cpu (0.5 packs two a GPU)."""


@dataclass
class BatchJob:
    """One validated job: its place in JOBS.yaml and the `gsedit edit` command that runs it."""

    index: int
    name: str
    edit: JobEdit
    threads: int = 1


@dataclass
class BatchPlan:
    path: Path
    jobs: list[BatchJob]
    resources: BatchResources = field(default_factory=BatchResources)


@dataclass
class JobResult:
    """How one job ended (a row of the summary)."""

    name: str
    status: Status
    turns_done: int = 0
    turns_total: int = 0
    seconds: float = 0.0
    error: str | None = None


# ----------------------------------------------------------------------------- JOBS.yaml


def load_jobs(path: Path) -> BatchPlan:
    """Reads and validates JOBS.yaml up front; every problem names the file and the job's index.

    Raises:
        InputFileError: the file is missing, not YAML, or a job is malformed.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "no such jobs file (expected a YAML file with a `jobs:` list).")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"not valid YAML ({exc}).") from None
    if not isinstance(data, dict):
        raise InputFileError(path, f"expected a mapping with a `jobs:` list, found {kind(data)}.")
    unknown = sorted(set(data) - {"defaults", "jobs", *fields_of(BatchResources)})
    if unknown:
        raise InputFileError(
            path,
            f"unknown top-level keys {unknown}; known: defaults, jobs, "
            f"{', '.join(fields_of(BatchResources))}.",
        )
    base = path.parent.resolve()  # relative paths are the YAML's; workers may run elsewhere
    try:
        resources = build(
            BatchResources, {k: data[k] for k in fields_of(BatchResources) if k in data}, base
        )
        if resources.num_cpus <= 0 or resources.num_gpus < 0:
            raise OptionError(
                f"need num_cpus > 0 and num_gpus >= 0, got {resources.num_cpus}, "
                f"{resources.num_gpus}"
            )
    except OptionError as exc:
        raise InputFileError(path, str(exc)) from None
    defaults = _mapping(path, "defaults", data.get("defaults") or {})
    bad = [k for k in PER_JOB_KEYS if k in defaults]
    if bad:
        raise InputFileError(path, f"defaults: {bad} must be set per job, not in defaults.")
    jobs = data.get("jobs")
    if not isinstance(jobs, list) or not jobs:
        raise InputFileError(
            path, f"`jobs:` must be a non-empty list of jobs, found {kind(jobs)}."
        )
    plan = []
    for index, entry in enumerate(jobs):
        where = f"jobs[{index}]"
        options = _merge(defaults, _mapping(path, where, entry))
        try:
            plan.append(_make_job(index, options, base, resources))
        except (OptionError, GseditError) as exc:
            raise InputFileError(path, f"{where}: {exc}") from None
    _check_unique_outs(path, plan)
    return BatchPlan(path, plan, resources)


@dataclass
class JobEdit(SessionOptions):
    """A job's session: its options, its folder and turns, and what it runs besides them."""

    out: Path = Path("session")
    turn: list[str] = field(default_factory=list)
    target: list[str] = field(default_factory=list)
    keep: list[str] = field(default_factory=list)
    device: Device = "auto"
    refine: bool = False


def _make_job(index: int, options: dict, base: Path, resources: BatchResources) -> BatchJob:
    from gsedit.edit.start import make_turns

    check_names(options, JOB_KEYS)
    missing = [k for k in ("scene", "turns", "out") if options.get(k) is None]
    if missing:
        raise OptionError(f"missing {', '.join(missing)} (required for every job, or in defaults).")
    from gsedit.scene.files import trainer_source

    scene = convert(options["scene"], Path, "scene", base)
    if options.get("cameras") is None and trainer_source(scene) is None:
        raise OptionError("missing cameras (required for every job, or in defaults, unless the scene is a trainer's output folder).")
    turns = convert(options["turns"], list[str], "turns", base)
    if not turns or not all(isinstance(t, str) for t in turns):
        raise OptionError(f"turns: expected a non-empty list of instructions, got {kind(options['turns'])}")
    hints = typing.get_type_hints(JobEdit, include_extras=False)
    own = {k: convert(options[k], hints[k], k, base) for k in ("out", "target", "keep", "device", "refine") if k in options}
    make_turns(turns, own.get("target", []), own.get("keep", []))  # empty and mismatched lists
    session = session_options({k: v for k, v in options.items() if k not in JOB_KEYS}, base)
    edit = JobEdit(**{f.name: getattr(session, f.name) for f in dataclasses.fields(SessionOptions)}, turn=turns, **own)
    name = convert(options.get("name", edit.out.name), str, "name", base)
    return BatchJob(index, name, edit, threads=max(1, int(resources.num_cpus)))


def _check_unique_outs(path: Path, jobs: list[BatchJob]) -> None:
    seen: dict[Path, int] = {}
    for job in jobs:
        out = job.edit.out.resolve()
        if out in seen:
            raise InputFileError(
                path,
                f"jobs[{seen[out]}] and jobs[{job.index}] both write to {out}: "
                "give every job its own `out` folder.",
            )
        seen[out] = job.index


def _mapping(path: Path, where: str, value) -> dict:
    if not isinstance(value, dict):
        raise InputFileError(path, f"{where}: expected a mapping of options, found {kind(value)}.")
    return {str(k).replace("-", "_"): v for k, v in value.items()}


def _merge(defaults: dict, job: dict) -> dict:
    """`job` over `defaults`; nested mappings (ip2p:, sr:, sam_masks:) merge key by key."""
    merged = dict(defaults)
    for key, value in job.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            value = _merge(merged[key], value)
        merged[key] = value
    return merged


# ----------------------------------------------------------------------------- one job (a Ray task)


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
    """Starts, resumes or skips the session of `edit`; returns "done" or "skipped"."""
    from gsedit.commands.sessions import run_refine_command, run_session
    from gsedit.edit.api import Session
    from gsedit.edit.refine import REFINED_DIR
    from gsedit.edit.start import make_turns

    resume = resume_rule(edit)
    if resume is not None:
        turns = make_turns(edit.turn, edit.target, edit.keep)
        with Session.start(edit.out, edit, turns, resume=resume, device=edit.device) as session:
            run_session(session, quiet=True, refine=edit.sr if edit.refine else None, adss=edit.adss)
        return "done"
    session = _open(edit.out)
    if edit.refine and (
        session.data.get("refine") is None or not (edit.out / REFINED_DIR).is_dir()
    ):
        with Session.open(edit.out, edit.device) as session:
            run_refine_command(session, edit.sr, "none", edit.adss, True)
        return "done"
    return "skipped"


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


# ----------------------------------------------------------------------------- the batch (driver)


def run_jobs(plan: BatchPlan, address: str | None = None, quiet: bool = False) -> list[JobResult]:
    """Runs every job of `plan` as a Ray task; returns their results in the order of JOBS.yaml.

    Uses the Ray instance this process is connected to, or connects to `address` ("auto",
    "HOST:PORT", "ray://HOST:PORT"), or starts a local one (None); disconnects only from one it
    connected to itself.
    """
    try:
        import ray
    except ImportError:
        raise MissingPackageError("gsedit batch", "Ray") from None
    from gsedit.commands.progress import console

    connected_here = not ray.is_initialized()
    if connected_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=not quiet)
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
            if not quiet:
                r = results[job.index]
                console.print(
                    f"{r.name}: {r.status} ({r.turns_done}/{r.turns_total} turns, "
                    f"{r.seconds:.1f} s)",
                    highlight=False,
                )
        return [results[job.index] for job in plan.jobs]
    finally:
        if connected_here:
            ray.shutdown()


def job_resources(job: BatchJob, resources: BatchResources, has_gpus: bool) -> dict[str, float]:
    """Ray resources of a job: a GPU share when the cluster has GPUs and the job may use one."""
    gpus = resources.num_gpus if has_gpus and job.edit.device != "cpu" else 0
    return {"num_cpus": resources.num_cpus, "num_gpus": gpus}


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
    plan = load_jobs(jobs_yaml)
    results = run_jobs(plan, address, quiet)
    print_summary(results)
    return 1 if any(r.status == "failed" for r in results) else 0


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
