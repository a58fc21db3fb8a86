"""`gsedit fit`: a scene fitted to posed images."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tyro.conf import OmitArgPrefixes, Positional

from gsedit.commands.options import (
    Device,
    SpzAxesOption,
    resolve_device,
)
from gsedit.scene.fit_config import FitConfig


@dataclass
class Fit:
    """Fits a 3DGS scene to posed images (the 3DGS recipe: Adam, L1 + D-SSIM, densification)."""

    images: Positional[Path]
    """Folder of images named like the cameras (png/jpg); a uniform downscale of them is fine."""
    cameras: str
    """INRIA cameras.json, transforms.json or a COLMAP model folder."""
    out: Path = Path("scene.ply")
    iters: int = 7000
    points: int = 20_000
    """Initial Gaussians, spread in the region the cameras look at (without --init)."""
    init: Path | None = None
    """A point-cloud .ply (x y z, optional red green blue: e.g. COLMAP's points) to start from."""
    backend: Literal["3dgs", "nerfacto"] = "3dgs"
    """3DGS writes a .ply; nerfacto (needs the [nerf] install, see README) writes a .ckpt."""
    nerfacto_preset: Literal["nerfacto", "tiny"] = "nerfacto"
    """nerfacto size: the method's defaults (GPU), or a tiny one that trains on CPU."""
    spz_axes: SpzAxesOption = "auto"
    """The axes of an .spz --out: rub (auto: the specification's, Niantic's viewers) or ply (SuperSplat)."""
    device: Device = "auto"
    quiet: bool = False
    recipe: OmitArgPrefixes[FitConfig] = field(default_factory=FitConfig)
    """The 3DGS recipe (--backend 3dgs)."""

    def run(self) -> None:
        from gsedit.cameras.formats import load_cameras
        from gsedit.commands.progress import fit_progress
        from gsedit.scene.fit import (
            fit_scene,
            images_for_cameras,
            init_from_points,
            random_init,
            read_point_cloud,
        )
        from gsedit.scene.gaussian_scene import GaussianScene

        device = resolve_device(self.device)
        images, cams = images_for_cameras(self.images, load_cameras(self.cameras))
        if self.backend == "nerfacto":
            self._fit_nerfacto(images, cams, device)
            return
        start = GaussianScene(init_from_points(*read_point_cloud(self.init)) if self.init
                              else random_init(cams, self.points))
        start.config.fit = self.recipe
        scene = start.to(device)
        with fit_progress(self.quiet, self.iters) as on_step:
            loss = fit_scene(scene, cams, images, self.iters, on_step)
        path = scene.save_as(self.out, "ply" if self.spz_axes == "ply" else "rub")
        print(f"fitted {len(scene):,} Gaussians (last loss {loss:.4f}) -> {path}")

    def _fit_nerfacto(self, images, cams, device) -> None:
        from gsedit.commands.progress import fit_progress
        from gsedit.scene.nerfacto.config import NERFACTO_PRESETS
        from gsedit.scene.nerfacto.scene import fit_nerfacto

        with fit_progress(self.quiet, self.iters) as on_step:
            scene = fit_nerfacto(images.to(device), cams, self.iters, NERFACTO_PRESETS[self.nerfacto_preset],
                                 on_step=on_step)
        path = scene.save_as(self.out.with_suffix(".ckpt"))
        print(f"fitted nerfacto -> {path}")
