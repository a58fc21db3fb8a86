"""JOBS.yaml, the plan of `gsedit batch` (many edit sessions, one Ray task each): read and checked
up front, before anything runs (running it: gsedit.batch.run).

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

How the jobs run, resume and fail: gsedit.batch.run.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

from gsedit.edit.options import (
    OptionError,
    PlannedSession,
    SessionOptions,
    build,
    check_names,
    convert,
    fields_of,
    kind,
    session_options,
)
from gsedit.errors import GseditError, InputFileError

#: keys of a job that are not options of the session it creates
JOB_KEYS = ("name", "turns", "out", "target", "keep", "device", "refine")
#: job keys a `defaults:` mapping may not set: they must differ between jobs
PER_JOB_KEYS = ("name", "out")

@dataclass
class BatchResources:
    """What Ray reserves for each job (top-level keys of JOBS.yaml)."""

    num_cpus: float = 1
    """CPU cores per job; a job on CPU uses that many torch threads."""
    num_gpus: float = 1
    """GPUs per job when the cluster has GPUs and the job's device is not cpu (0.5 packs two a GPU)."""


@dataclass
class JobEdit(PlannedSession):
    """A job's session: its options, its folder and turns, and what it runs besides them."""

    refine: bool = False


@dataclass
class BatchJob:
    """One validated job: its place in JOBS.yaml, its name, its session and the torch threads it uses."""

    index: int
    name: str
    edit: JobEdit
    threads: int = 1


@dataclass
class BatchPlan:
    path: Path
    jobs: list[BatchJob]
    resources: BatchResources = field(default_factory=BatchResources)


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
