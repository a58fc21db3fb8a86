"""`gsedit convert`: a scene in another backend or splat format."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro
from tyro.conf import Positional

from gsedit.commands.options import (
    ITERATION_HELP,
    SPZ_AXES_HELP,
    Device,
    SpzAxesOption,
    resolve_device,
)
from gsedit.errors import GseditError
from gsedit.scene.convert_config import ConvertConfig


@dataclass
class Convert:
    """Re-encodes a 3DGS scene in another splat format (.ply, .spz, .compressed.ply, .splat; no refit), or
    refits a scene in the other backend from its renders (labels kept): e.g. an edited nerfacto turn as a
    standard 3DGS .ply that splat viewers open."""

    scene: Positional[Path]
    """A splat file (.ply, .spz, .compressed.ply, .sog, .splat), a trainer's output folder, or a gsedit nerfacto .ckpt."""
    out: Path
    """The new scene: a splat file (3DGS: .ply, .spz, .compressed.ply, .splat), a .ckpt (nerfacto), or a new
    step of a trainer's folder in its layout, for its viewer: RUN/nerfstudio_models/step-N.ckpt,
    RESULTS/ckpts/ckpt_N_rank0.pt, RESULTS/ply/point_cloud_N.ply, MODEL/point_cloud/iteration_N/point_cloud.ply."""
    cameras: str | None = None
    """Views to refit on (needed only for a refit): as for gsedit edit; default: a trainer folder's own."""
    iteration: Annotated[int | None, tyro.conf.arg(help=ITERATION_HELP)] = None
    max_side: int | None = None
    """Render and fit at most this many pixels on the longer side."""
    refit: ConvertConfig = field(default_factory=ConvertConfig)
    spz_axes: Annotated[SpzAxesOption, tyro.conf.arg(help=SPZ_AXES_HELP)] = "auto"
    device: Device = "auto"
    quiet: bool = False

    def run(self) -> None:
        from gsedit.commands.compare import refit_summary
        from gsedit.commands.compare import refit_with_progress as refit
        from gsedit.scene.files import load_scene_file, scene_backend
        from gsedit.scene.trainer_folders import trainer_step_target, write_trainer_step

        self.refit.validate()
        if trainer_step_target(self.out):  # back into a trainer's folder, for its viewer
            path = write_trainer_step(load_scene_file(self.scene, "cpu", self.iteration).gaussians, self.out)
            print(f"wrote {self.scene} as the {trainer_step_target(self.out)} step {path}")
            return
        backend = scene_backend(self.out)
        if scene_backend(self.scene) == backend == "3dgs":
            path = self._read_scene().save_as(self.out, "ply" if self.spz_axes == "ply" else "rub")
            print(f"re-encoded {self.scene} -> {path}")
            return
        if scene_backend(self.scene) == backend:
            raise GseditError(f"{self.scene} is already a nerfacto scene: give --out a splat file for 3DGS.")
        cameras = self.cameras or str(self.scene)  # a trainer folder's own
        if self.cameras is None and not Path(self.scene).is_dir():
            raise GseditError(f"refitting {self.scene} as {backend} needs --cameras: the views to fit on.")
        entry = refit(str(self.scene), cameras, self.max_side, backend, self.out,
                      resolve_device(self.device), self.refit, self.quiet, spz_axes=self.spz_axes)
        print(f"{backend} scene -> {self.out} ({refit_summary(entry)})")

    def _read_scene(self):
        """The input scene, an .spz in the axes --spz-axes says (auto: chosen by --cameras when given)."""
        from gsedit.scene.files import load_scene_file, orient_spz, scene_cameras

        scene = load_scene_file(self.scene, "cpu", self.iteration)
        cameras = None if self.cameras is None else scene_cameras(self.scene, self.cameras, None, scene.bounds())
        scene, axes_note = orient_spz(scene, cameras, self.scene, self.spz_axes)
        if axes_note:
            print(axes_note)
        return scene
