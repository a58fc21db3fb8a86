"""`gsedit info`: what a scene file or trainer folder holds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro
from tyro.conf import Positional

from gsedit.commands.options import SPZ_AXES_HELP, SpzAxesOption


@dataclass
class Info:
    """What a scene holds: a splat file or trainer folder (count, SH degree, bounds, extras, labels, the
    trainer's step and cameras) or a nerfacto .ckpt."""

    scene: Positional[Path]
    iteration: int | None = None
    """Of a trainer's output folder: the iteration/step to describe (default: the last)."""
    spz_axes: Annotated[SpzAxesOption, tyro.conf.arg(help=SPZ_AXES_HELP)] = "auto"

    def run(self) -> None:
        from gsedit.scene.describe import describe_scene

        lines = describe_scene(self.scene, self.iteration, self.spz_axes)
        width = max(len(name) for name, _ in lines) + 3  # values in one column, after "name: "
        for name, value in lines:
            print(f"{name + ':':<{width}}{value}")
