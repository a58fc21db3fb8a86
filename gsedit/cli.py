"""The `gsedit` command line (tyro): assembles one subcommand per module of gsedit/commands/."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Union

from gsedit.commands.faults import run_reporting_errors
from gsedit.commands.options import DEFAULT_METHOD
from gsedit.edit.lock import refuse_if_busy

#: subcommands that write a session folder, and where their argv names it
_WRITERS = {"edit": ("--out", "session"), "compare": ("--out", "compare"), "undo": (None, None), "refine": (None, None),
            "studio": ("--out", "session")}


def _commands(method: str):
    # imported here, not at the top: a second writer on a busy session is refused before torch loads
    from tyro.conf import subcommand

    from gsedit.commands.batch import Batch
    from gsedit.commands.compare import Compare
    from gsedit.commands.convert import Convert
    from gsedit.commands.demo import Demo
    from gsedit.commands.edit import Edit
    from gsedit.commands.eval import Eval
    from gsedit.commands.fit import Fit
    from gsedit.commands.info import Info
    from gsedit.commands.refine import Refine
    from gsedit.commands.render import Render
    from gsedit.commands.segment import Segment
    from gsedit.commands.studio import Studio
    from gsedit.commands.undo import Undo
    from gsedit.commands.view import View
    from gsedit.edit.config import load_preset

    settings, description = load_preset(method)
    edit_default = Edit(method=method, settings=settings)
    return Union[
        Annotated[Info, subcommand("info")],
        Annotated[Render, subcommand("render")],
        Annotated[Edit, subcommand("edit", default=edit_default, description=Edit.__doc__ + f" Preset '{method}': {description}")],
        Annotated[Compare, subcommand("compare", default=Compare(method=method, settings=settings, out=Path("compare")),
                                      description=Compare.__doc__ + f" Preset '{method}': {description}")],
        Annotated[Fit, subcommand("fit")],
        Annotated[Convert, subcommand("convert")],
        Annotated[Undo, subcommand("undo")],
        Annotated[View, subcommand("view")],
        Annotated[Studio, subcommand("studio", default=Studio(method=method, settings=settings),
                                     description=Studio.__doc__ + f" Preset '{method}': {description}")],
        Annotated[Batch, subcommand("batch")],
        Annotated[Segment, subcommand("segment")],
        Annotated[Refine, subcommand("refine")],
        Annotated[Eval, subcommand("eval")],
        Annotated[Demo, subcommand("demo")],
    ]


def _method_from_argv(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg == "--method" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--method="):
            return arg.split("=", 1)[1]
    return DEFAULT_METHOD


def _written_folder(argv: list[str]) -> Path | None:
    """The session folder that `argv`'s command will write, read off argv without parsing it all."""
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in _WRITERS:
        return None
    flag, default = _WRITERS[command]
    rest = argv[argv.index(command) + 1:]
    if command == "studio" and rest and (Path(rest[0]) / "session.json").is_file():
        return Path(rest[0])  # the studio opens a session folder given as its scene
    if flag is None:  # the session is the command's positional argument
        return Path(rest[0]) if rest and not rest[0].startswith("-") else None
    folder = default
    for i, arg in enumerate(rest):  # the last one counts, as in tyro's own parse
        if arg == flag and i + 1 < len(rest):
            folder = rest[i + 1]
        elif arg.startswith(flag + "="):
            folder = arg.split("=", 1)[1]
    return Path(folder)


def _run(argv: list[str]) -> None:
    import tyro

    folder = _written_folder(argv)
    if folder is not None and "--help" not in argv and "-h" not in argv:
        refuse_if_busy(folder)
    tyro.cli(_commands(_method_from_argv(argv)), args=argv, prog="gsedit").run()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    return run_reporting_errors(lambda: _run(argv), argv, debug)


def entrypoint() -> None:
    import os

    # OpenMP threads sleep at their barriers instead of spinning: where other jobs hold the cores,
    # spinning made a demo turn 15x slower (README, "Studio"). Set before torch loads OpenMP.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    exit_without_teardown(main())


def exit_without_teardown(code: int) -> None:
    """Ends the process with `code`, skipping Python's module teardown once torch is loaded.

    Tearing down torch's modules took 0.3 s of every command on the 2-core machine, after the
    work was done and the files were closed. The atexit handlers (logging, temporary folders,
    Ray, ...) still run and the standard streams are flushed. The ordinary exit runs instead while
    any other thread is alive (a server, a writer: it waits for them) and under a profiler or a
    tracer (cProfile and coverage write their files at exit).
    """
    import atexit
    import os
    import threading

    watched = sys.getprofile() is not None or sys.gettrace() is not None  # cProfile, coverage: they write at exit
    if "torch" not in sys.modules or threading.active_count() > 1 or watched:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing left to say
            pass
    os._exit(code)
