"""`gsedit compare`: its options, console output and messages; the comparison is
gsedit.evaluation.compare."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from gsedit.commands.edit import EditRun
from gsedit.commands.progress import console
from gsedit.evaluation.evaluate_config import EvalConfig
from gsedit.scene.convert_config import ConvertConfig


def refit_with_progress(scene_file: str, cameras_spec: str, max_side: int | None, backend: str, path: Path,
                        device, config, quiet: bool, session_iters: int | None = None, spz_axes: str = "auto") -> dict:
    """gsedit.scene.refit.refit with a progress bar (`gsedit convert`, `gsedit compare`): says its
    step cap and check interval before, its PSNR and why it stopped after."""
    from contextlib import ExitStack

    from gsedit.commands.progress import fit_progress
    from gsedit.scene.refit import refit as refit_file

    with ExitStack() as bar:
        steps = []  # the bar's on_step, once the refit has said how many steps it may take

        def announce(stop) -> None:
            console.print(f"refitting the scene as {backend} on {stop.views} views: at most {stop.cap} steps, "
                          f"until its PSNR to the input's renders stops improving (checked every "
                          f"{stop.check_every} steps)")
            steps.append(bar.enter_context(fit_progress(quiet, stop.cap)))

        entry = refit_file(scene_file, cameras_spec, max_side, backend, path, device, config,
                           lambda step, loss: steps[0](step, loss), announce, session_iters, spz_axes)
    if "spz_axes_note" in entry:
        console.print(entry["spz_axes_note"], highlight=False)
    console.print(f"{backend} refit: {refit_summary(entry)}")
    return entry


def refit_summary(entry: dict) -> str:
    """'27.03 dB to the input's renders after 456 of 760 steps (plateau)' of a refit's entry."""
    why = "plateau" if entry["stopped"] == "plateau" else "step cap"
    return (f"{entry['psnr_to_input']:.2f} dB to the input's renders after {entry['steps']} of {entry['step_cap']} "
            f"steps ({why}), {entry['seconds']:.0f} s")


def results_table(plan: dict):
    """A rich table: one row per (turn, backend)."""
    from rich.table import Table

    from gsedit.evaluation.compare import COST_COLUMNS, METRIC_COLUMNS
    from gsedit.evaluation.metrics_table import format_value

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
        steps = entry.get("steps", entry["iters"])  # a comparison made before the plateau rule ran all its iters
        table.add_row("refit", backend, format_value(entry["seconds"]), format_value(entry["seconds"] / steps),
                      format_value(entry["peak_rss_mb"]), format_value(entry["peak_cuda_mb"]),
                      f"PSNR to input {entry['psnr_to_input']:.2f} ({entry.get('stopped', 'cap')} at {steps})",
                      *[""] * (len(METRIC_COLUMNS) - 1))
    for row in sorted(results["rows"], key=lambda r: (r["turn"], plan["backends"].index(r["backend"]))):
        table.add_row(str(row["turn"]), row["backend"], *(format_value(row.get(k)) for k in columns))
    return table


# -- the command ----------------------------------------------------------------------------------
def run_compare(args) -> dict:
    """`gsedit compare` (args: the Compare command): refits, both sessions, grids and tables."""
    from gsedit.commands.sessions import run_session
    from gsedit.evaluation.comparison import run_comparison

    def run(session):
        run_session(session, quiet=args.quiet, turntable=args.turntable,
                    refine=args.sr if args.refine else None, adss=args.adss)

    plan = run_comparison(args, run, partial(refit_with_progress, quiet=args.quiet),
                          lambda backend: console.rule(f"[bold]{backend}"))
    console.print(results_table(plan))
    console.print(f"comparison: {Path(args.out) / 'compare.html'}")
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
