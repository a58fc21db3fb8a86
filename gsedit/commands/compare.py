"""`gsedit compare`: its options, console output and messages; the comparison is
gsedit.evaluation.compare."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from gsedit.commands.edit import EditRun
from gsedit.commands.progress import console
from gsedit.edit.lock import FolderLock, deferred_lock
from gsedit.errors import GseditError
from gsedit.evaluation.compare import (
    COST_COLUMNS,
    METRIC_COLUMNS,
    edit_backend,
    open_plan,
    plan_turns,
    planned_options,
    scene_for,
    summarise,
)
from gsedit.evaluation.evaluate import EvalConfig, format_value
from gsedit.scene.convert import ConvertConfig


def refit_with_progress(scene_file: str, cameras_spec: str, max_side: int | None, backend: str, path: Path,
                        device, config, quiet: bool) -> dict:
    """gsedit.scene.refit.refit with a progress bar (`gsedit convert`, `gsedit compare`)."""
    from gsedit.commands.progress import fit_progress
    from gsedit.scene.refit import refit as refit_file

    def announce(views: int) -> None:
        console.print(f"refitting the scene as {backend} on {views} views ({config.iters} steps)")

    with fit_progress(quiet, config.iters) as on_step:
        return refit_file(scene_file, cameras_spec, max_side, backend, path, device, config, on_step, announce)


def results_table(plan: dict):
    """A rich table: one row per (turn, backend)."""
    from rich.table import Table

    results = plan["results"]
    caption = []
    if results["editor_is_stand_in"]:
        caption.append("synthetic stand-in editor: these numbers measure mechanics, NOT edit quality.")
    if results["unavailable"]:
        caption.append("— = not available (see 'unavailable' in compare.json).")
    table = Table(title="gsedit compare", caption="\n".join(caption) or None, caption_justify="left")
    columns = {**COST_COLUMNS, **METRIC_COLUMNS}
    for header in ["turn", "backend", *columns.values()]:
        table.add_column(header, justify="right" if header not in ("turn", "backend") else "left")
    for backend, entry in plan["refits"].items():
        table.add_row("refit", backend, format_value(entry["seconds"]), format_value(entry["seconds"] / entry["iters"]),
                      format_value(entry["peak_rss_mb"]), format_value(entry["peak_cuda_mb"]),
                      f"PSNR to input {entry['psnr_to_input']:.2f}", *[""] * (len(METRIC_COLUMNS) - 1))
    for row in sorted(results["rows"], key=lambda r: (r["turn"], plan["backends"].index(r["backend"]))):
        table.add_row(str(row["turn"]), row["backend"], *(format_value(row.get(k)) for k in columns))
    return table


# -- the command ----------------------------------------------------------------------------------
def run_compare(args) -> dict:
    """`gsedit compare` (args: the Compare command): refits, both sessions, grids and tables."""
    from gsedit.commands.options import resolve_device

    device = resolve_device(args.device)
    if args.views < 1:
        raise GseditError(f"--views must be at least 1, got {args.views}.")
    out = Path(args.out)
    with deferred_lock(out) as lock:  # open_plan takes it once the inputs are checked
        return _run_locked(args, device, out, lock)


def _run_locked(args, device, out: Path, lock: FolderLock) -> dict:
    from gsedit.edit.plugins import config_from_dict
    from gsedit.scene.convert import ConvertConfig

    plan = open_plan(args, out, lock)
    turns = plan_turns(plan)
    refit_config = config_from_dict(ConvertConfig, plan["refit"])
    from gsedit.commands.sessions import edit_options, run_session

    options = planned_options(edit_options(args), plan)

    def run(session):
        run_session(session, quiet=args.quiet, turntable=args.turntable,
                    refine=args.sr if args.refine else None, adss=args.adss)

    for backend in plan["backends"]:
        console.rule(f"[bold]{backend}")
        scene_file = scene_for(backend, plan, out, device, refit_config, partial(refit_with_progress, quiet=args.quiet))
        edit_backend(options, scene_file, out / backend, turns, device, run)
    plan = summarise(out, plan, args.metrics, device, args.views)
    console.print(results_table(plan))
    console.print(f"comparison: {out / 'compare.html'}")
    return plan


@dataclass
class Compare(EditRun):
    """Runs the same turns on 3DGS and nerfacto (the other refitted from the scene's renders):
    DIR/3dgs/ and DIR/nerfacto/ sessions, a side-by-side grid per turn, a table of seconds, memory
    and metrics (DIR/compare.html, DIR/compare.json)."""

    backends: str = "3dgs,nerfacto"
    """Comma-separated backends; the one the scene is in edits it as is, the others refit it."""
    refit: ConvertConfig = field(default_factory=ConvertConfig)
    """How the scene is refitted in the other backend (on the session's cameras)."""
    views: int = 4
    """Views shown in each grid."""
    metrics: EvalConfig = field(default_factory=EvalConfig)
    """The metrics of `gsedit eval`, per backend and turn."""

    def run(self) -> None:
        from gsedit.commands.compare import run_compare

        run_compare(self)
