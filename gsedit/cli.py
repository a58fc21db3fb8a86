"""The `gsedit` command line (tyro): assembles one subcommand per module of gsedit/commands/."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Union

import tyro
from tyro.conf import subcommand

from gsedit.commands.batch import Batch
from gsedit.commands.compare import Compare
from gsedit.commands.convert import Convert
from gsedit.commands.demo import Demo
from gsedit.commands.edit import Edit
from gsedit.commands.eval import Eval
from gsedit.commands.faults import run_reporting_errors
from gsedit.commands.fit import Fit
from gsedit.commands.info import Info
from gsedit.commands.options import DEFAULT_METHOD
from gsedit.commands.refine import Refine
from gsedit.commands.render import Render
from gsedit.commands.segment import Segment
from gsedit.commands.undo import Undo
from gsedit.commands.view import View
from gsedit.edit.config import load_preset


def _commands(method: str):
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    return run_reporting_errors(
        lambda: tyro.cli(_commands(_method_from_argv(argv)), args=argv, prog="gsedit").run(), argv, debug
    )


def entrypoint() -> None:
    sys.exit(main())
