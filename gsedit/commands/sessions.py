"""`gsedit edit` (and batch, compare, demo) over gsedit.Session: the console's progress display,
messages and report."""

from __future__ import annotations

from pathlib import Path

from gsedit.commands.progress import TurnDisplay, console, progress_display
from gsedit.edit.session import SessionFolder

STAND_IN_NOTE = ("[yellow]note:[/] the synthetic editor is an offline stand-in for InstructPix2Pix: it exercises "
                 "the loop and its numbers are not edit quality.")


def run_edit_command(args) -> SessionFolder:
    """Runs `gsedit edit` (args: the Edit command) through gsedit.Session."""
    from gsedit.commands.options import resolve_device
    from gsedit.edit.api import Session
    from gsedit.edit.options import options_of
    from gsedit.edit.start import make_turns

    device = resolve_device(args.device)
    turns = make_turns(args.turn, args.target, args.keep)
    with Session.start(args.out, options_of(args), turns, resume=args.resume, device=device) as session:
        if not args.resume and session.record.data.get("input_note"):
            console.print(session.record.data["input_note"])
        if session.pending:
            _plan_memory(session, args)
        live = run_session(session, quiet=args.quiet, turntable=args.turntable, refine=args.sr if args.refine else None,
                           adss=args.adss, view_port=args.view_port if getattr(args, "view", False) else None)
    if live is not None:
        console.print(f"edit finished; the viewer stays at {live.viewer.url} until Ctrl-C")
        live.viewer.serve_forever()
    return session.record


def _plan_memory(session, args) -> None:
    """The pre-flight memory estimate and the editor settings for the budget (--gpu-memory), printed
    before any work; the memory settings of --ip2p.* are this run's own, also on --resume."""
    from gsedit.edit.budget import MEMORY_FIELDS

    line = session.plan_memory(args.gpu_memory, **{name: getattr(args.ip2p, name) for name in MEMORY_FIELDS})
    if line:
        console.print(line, highlight=False)


def run_session(session, *, quiet: bool, turntable: bool = False, refine=None, adss=None,
                view_port: int | None = None):
    """Runs the open `session`'s planned turns with the console's display and the report (the
    session writes the JSON-lines log), then the refine stage if `refine` (its RefineConfig) is
    given; the live viewer if `view_port` (--view), else None."""
    from gsedit.evaluation.report import report_after_turn, update_report

    if turntable:
        _print_report(update_report(session, 0, turntable=True))
    session.after_turn = report_after_turn(turntable, on_report=_print_report)
    live = None
    if not session.pending:  # no editor to load (IP2P takes a while)
        console.print(f"nothing to do: every turn of {session.folder} that the --turn list names is finished.")
    else:
        live = _run_pending_turns(session, quiet, turntable, view_port)
    if refine is not None:
        run_refine_command(session, refine, "none", adss, quiet)
    return live


def _run_pending_turns(session, quiet: bool, turntable: bool, view_port: int | None):
    """Runs the session's pending turns with its progress display; the live viewer if asked for, else None."""
    if session.record.data["plugins"]["editor"] == "synthetic":
        console.print(STAND_IN_NOTE, highlight=False)
    live = None
    finished = []
    with progress_display(quiet) as progress:
        reporter = TurnDisplay(progress) if progress is not None else None
        if view_port is not None:
            from gsedit.viewer import LiveViewer

            live = LiveViewer.start(session.device, port=view_port, forward=reporter)
            console.print(f"live viewer at {live.viewer.url}")
            reporter = live
        for turn in session.pending:
            finished.append(session.run_turn(turn.instruction, turn.target, turn.keep, reporter=reporter,
                                             target_selection=turn.target_selection,
                                             keep_selection=turn.keep_selection))
    for info in finished:
        console.print(f"turn {info.index} done in {info.seconds:.1f} s → {info.scene_path.parent}")
    return live


def _print_report(path: Path) -> None:
    console.print(f"report: {path}")


def run_refine_command(session, config, face_segmenter: str, adss_config, quiet: bool) -> Path:
    """The refine stage of the open `session` with a progress bar; rewrites the report."""
    from gsedit.commands.progress import fit_progress

    with fit_progress(quiet, config.iters) as on_step:
        refined = session.refine(config, adss_config if face_segmenter == "adss" else None, on_step)
    from gsedit.evaluation.report import write_report

    console.print(f"refined scene: {refined}")
    _print_report(write_report(session.record))
    return refined
