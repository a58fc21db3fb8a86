"""A comparison of backends run end to end (`gsedit compare`, tools/bench_backends.py): the plan,
the refits, one session per backend through gsedit.Session, then metrics, grids and compare.html.
The steps themselves are in gsedit/evaluation/compare.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gsedit.edit.lock import deferred_lock
from gsedit.edit.options import PlannedSession, options_of, resolve_device
from gsedit.errors import GseditError
from gsedit.evaluation.compare import (
    edit_backend,
    open_plan,
    plan_turns,
    planned_options,
    scene_for,
    summarise,
)
from gsedit.evaluation.evaluate import EvalConfig
from gsedit.scene.convert_config import ConvertConfig


@dataclass
class CompareOptions(PlannedSession):
    """What a comparison runs: the session options shared by every backend, and its own."""

    out: Path = Path("compare")
    resume: bool = False
    """Continue the comparison in `out` (appending the turns it lacks, by the --resume rule)."""
    backends: str = "3dgs,nerfacto"
    refit: ConvertConfig = field(default_factory=ConvertConfig)
    views: int = 4
    """Views shown in each grid."""
    metrics: EvalConfig = field(default_factory=EvalConfig)


def run_comparison(args, run: Callable, fit: Callable | None = None,
                   on_backend: Callable[[str], None] | None = None) -> dict:
    """Runs (or resumes) the comparison of `args` in `args.out`; returns compare.json's plan with results.

    Args:
        args: CompareOptions, or an object with its fields (the `gsedit compare` command).
        run: runs an open Session's planned turns (`Session.run_pending`, or the console's display).
        fit: makes a refit (see compare.scene_for; default: silent).
        on_backend: called with each backend's name before its refit and session.
    """
    device = resolve_device(args.device)
    if args.views < 1:
        raise GseditError(f"--views must be at least 1, got {args.views}.")
    out = Path(args.out)
    with deferred_lock(out) as lock:  # open_plan takes it once the inputs are checked
        from gsedit.edit.plugins import config_from_dict

        plan = open_plan(args, out, lock)
        turns = plan_turns(plan)
        refit_config = config_from_dict(ConvertConfig, plan["refit"])
        options = planned_options(options_of(args), plan)
        for backend in plan["backends"]:
            if on_backend is not None:
                on_backend(backend)
            scene_file = scene_for(backend, plan, out, device, refit_config, fit)
            edit_backend(options, scene_file, out / backend, turns, device, run)
        return summarise(out, plan, args.metrics, device, args.views)
