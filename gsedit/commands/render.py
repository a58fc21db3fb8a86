"""`gsedit render`: every camera of CAMS to PNG files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro
from tyro.conf import Positional

from gsedit.commands.options import (
    CAMERAS_HELP,
    DATAPARSER_HELP,
    FRAME_CHECK_HELP,
    ITERATION_HELP,
    SPZ_AXES_HELP,
    Device,
    SpzAxesOption,
    resolve_device,
)


@dataclass
class Render:
    """Renders every camera of CAMS to PNG files (and a contact sheet)."""

    scene: Positional[Path]
    out: Path
    cameras: Annotated[str | None, tyro.conf.arg(help=CAMERAS_HELP)] = None
    channels: str = "rgb"
    """Comma-separated: rgb, alpha, relevance, label, or any extra property of the scene."""
    device: Device = "auto"
    iteration: Annotated[int | None, tyro.conf.arg(help=ITERATION_HELP)] = None
    dataparser_transforms: Annotated[Path | None, tyro.conf.arg(help=DATAPARSER_HELP)] = None
    frame_check: Annotated[bool, tyro.conf.arg(help=FRAME_CHECK_HELP)] = True
    spz_axes: Annotated[SpzAxesOption, tyro.conf.arg(help=SPZ_AXES_HELP)] = "auto"

    def run(self) -> None:
        from gsedit.render.images import render_channel_images
        from gsedit.scene.files import (
            check_scene_in_view,
            load_scene_file,
            orient_spz,
            scene_cameras,
        )

        scene = load_scene_file(self.scene, resolve_device(self.device), self.iteration)
        cams = scene_cameras(self.scene, self.cameras, self.dataparser_transforms, scene.bounds())
        scene, axes_note = orient_spz(scene, cams, self.scene, self.spz_axes)
        if axes_note:
            print(axes_note)
        if self.frame_check:
            check_scene_in_view(scene, cams, self.scene)
        written = render_channel_images(scene, cams.cameras, [c.strip() for c in self.channels.split(",")], self.out)
        print(f"wrote {written} images to {self.out}")
