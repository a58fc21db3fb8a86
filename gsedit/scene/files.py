"""Scene inputs by kind, and the cameras that come with them: the one place a scene path is read.

A scene is a 3DGS splat file (INRIA `.ply`, `.spz`, `.compressed.ply`, `.sog`, `.splat`: a
GaussianScene), a gsedit nerfacto `.ckpt` (a NerfactoScene), or a trainer's output folder (an
INRIA model folder, a nerfstudio splatfacto run, a gsplat results folder: a GaussianScene in the
trainer's frame, whose own cameras are the default --cameras).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from gsedit.cameras.camera import Cameras
from gsedit.cameras.trainer_folders import trainer_kind, trainer_step_file
from gsedit.errors import GseditError, InputFileError
from gsedit.scene.base import Scene
from gsedit.scene.splat_formats import file_format

SCENE_SUFFIXES = {".ply": "3dgs", ".spz": "3dgs", ".sog": "3dgs", ".splat": "3dgs", ".ckpt": "nerfacto"}
SCENE_KINDS = ("a 3D Gaussian splatting .ply or a gsedit nerfacto .ckpt scene, another splat file (.spz, "
               ".compressed.ply, .sog, .splat), or a trainer's output folder (INRIA, nerfstudio splatfacto, gsplat)")


def trainer_source(path: str | Path, iteration: int | None = None) -> tuple[Path, int | None] | None:
    """(trainer folder, iteration) when `path` is a trainer's output folder or one step's checkpoint
    in it (that step, unless `iteration` names another); None for a scene file."""
    path = Path(path)
    if trainer_kind(path) is not None:
        return path, iteration
    step_file = trainer_step_file(path)
    if step_file is None or not path.is_file():
        return None
    return step_file[0], step_file[1] if iteration is None else iteration


def is_scene_path(path: str | Path) -> bool:
    """A path gsedit reads as a scene (by its name, or a trainer folder by its contents)."""
    path = Path(path)
    return trainer_source(path) is not None or (not path.is_dir() and path.suffix.lower() in SCENE_SUFFIXES)


def scene_backend(path: str | Path) -> str:
    """'3dgs' or 'nerfacto', from the file's suffix (a trainer folder or checkpoint is 3DGS)."""
    path = Path(path)
    if trainer_source(path) is not None:
        return "3dgs"
    if path.is_dir():
        raise InputFileError(path, f"is a folder but not a trainer's output: no point_cloud/iteration_N/ (INRIA), "
                                   f"config.yml + nerfstudio_models/ (nerfstudio) or cfg.yml + ckpts/ (gsplat); expected {SCENE_KINDS}.")
    backend = SCENE_SUFFIXES.get(path.suffix.lower())
    if backend is None:
        found = "" if path.exists() else "not found; "
        raise InputFileError(path, f"{found}expected {SCENE_KINDS}.")
    return backend


def scene_label_names(path: str | Path) -> dict[int, str]:
    """Label id -> name of a scene: a splat file's sidecar, the labels inside a nerfacto .ckpt;
    trainer folders have none."""
    path = Path(path)
    if scene_backend(path) == "nerfacto":
        return load_scene_file(path, "cpu").label_names()
    if trainer_source(path) is not None:
        return {}
    from gsedit.scene.labels import read_labels

    return read_labels(path)


def load_scene_file(path: str | Path, device: str | torch.device, iteration: int | None = None,
                    spz_axes: str = "rub") -> Scene:
    """Loads a scene on `device`; the nerfacto backend is imported only for a .ckpt.

    Args:
        iteration: of a trainer folder, the iteration/step to load (default: the last).
        spz_axes: of an .spz file, "rub" (its specification) or "ply" (splat-transform's); see
            `orient_spz` to choose them by the cameras.
    """
    path = Path(path)
    source = trainer_source(path, iteration)
    if iteration is not None and source is None:
        raise GseditError(f"--iteration {iteration} picks a step of a trainer's output folder; {path} is one scene file.")
    if scene_backend(path) == "nerfacto":
        from gsedit.scene.nerfacto.scene import NerfactoScene

        return NerfactoScene.load(path, device)
    from gsedit.scene.gaussian_scene import GaussianScene

    if source is None:
        return GaussianScene.load(path, device, spz_axes=spz_axes)
    from gsedit.scene.trainer_folders import find_trainer_scene, read_trainer_gaussians

    return GaussianScene(read_trainer_gaussians(find_trainer_scene(*source)).to(device))


def is_copyable_input(path: str | Path) -> bool:
    """True when the input file is itself what a session stores as turn_00: a .ply or .ckpt that is
    not one step of a trainer folder (which --iteration may swap for another step)."""
    path = Path(path)
    return path.is_file() and trainer_source(path) is None and (file_format(path) == "ply" or path.suffix.lower() == ".ckpt")


# -- the cameras of a scene -------------------------------------------------------------------
@dataclass
class SceneCameras:
    """The cameras a command works with, and where they came from."""

    cameras: Cameras
    spec: str | None  # what load_cameras reads them from again; None when mapped in memory
    label: str  # how messages name them


def scene_cameras(
    scene: str | Path, cameras: str | None, dataparser_transforms: str | Path | None, bounds
) -> SceneCameras:
    """The cameras for `scene`: `cameras` (any --cameras source), by default the scene folder's
    own; with `dataparser_transforms`, mapped into that nerfstudio run's frame.

    Args:
        bounds: (min [3], max [3]) of the scene, for orbit cameras.
    """
    from gsedit.cameras.formats import load_cameras

    if cameras is None:
        source = trainer_source(scene)
        if source is None:
            raise GseditError(
                f"{scene} carries no cameras: give --cameras (an INRIA cameras.json, a transforms.json, a COLMAP "
                "model folder, a trainer's output folder, or orbit:N[@WxH])."
            )
        cameras = str(source[0])
    cams = load_cameras(cameras, bounds=bounds)
    if dataparser_transforms is None:
        return SceneCameras(cams, cameras, cameras)
    if cameras.startswith("orbit:") or trainer_kind(cameras) in ("nerfstudio", "gsplat"):
        raise GseditError(
            f"--dataparser-transforms maps a dataset's cameras into a nerfstudio run's frame, but the cameras "
            f"{cameras} are in the scene's frame already (orbit cameras, or a trainer folder's own): drop it."
        )
    from gsedit.cameras.trainer_folders import camera_source_file, to_nerfstudio_frame

    mapped = to_nerfstudio_frame(cams, dataparser_transforms, camera_source_file(Path(cameras)))
    return SceneCameras(mapped, None, f"{cameras} (through {dataparser_transforms})")


def check_scene_in_view(scene: Scene, cameras: SceneCameras, scene_name: str | Path) -> None:
    """Refuses (GseditError with the likely frame mix-up) a scene its cameras do not see."""
    from gsedit.cameras.visibility import check_frames

    check_frames(*_footprints(scene), cameras.cameras, str(scene_name), cameras.label)


def orient_spz(scene: Scene, cameras: SceneCameras | None, path: str | Path, axes: str = "auto") -> tuple[Scene, str | None]:
    """The scene of the file `path`, loaded in RUB axes, in the axes its .spz file holds, and one
    line saying which were taken; (scene, None) for any other file (see `choose_spz_axes`)."""
    from gsedit.scene.splat_formats import half_turn_about_x

    chosen, note = choose_spz_axes(scene, cameras, path, axes)
    if chosen != "ply":
        return scene, note
    flipped = half_turn_about_x(scene.gaussians.to("cpu")).to(scene.device)
    return type(scene)(flipped, scene.labels, scene.config), note


def choose_spz_axes(scene: Scene, cameras: SceneCameras | None, path: str | Path,
                    axes: str = "auto") -> tuple[str | None, str | None]:
    """("rub" or "ply": the axes the .spz file `path` holds, one line saying why); (None, None) for
    any other file. `scene` is the file loaded in RUB axes.

    `axes` "rub" or "ply" forces them; "auto" takes the ones under which the frame check's
    projection finds the cameras seeing the scene, when exactly one does, else the .spz
    specification's RUB (without cameras, with orbit cameras made around the scene itself, or
    when both frames are seen alike, e.g. an object centred on the origin with cameras around it).
    """
    from gsedit.cameras.visibility import visibility

    if file_format(path) != "spz":
        return None, None
    if axes in ("rub", "ply"):
        return axes, f"{path}: read in {axes.upper()} axes (--spz-axes {axes})"
    if cameras is None or (cameras.spec or "").startswith("orbit:"):
        why = "no cameras to choose by" if cameras is None else "orbit cameras circle it whichever way it lies"
        return "rub", (f"{path}: read in the .spz specification's RUB axes ({why}; "
                       "--spz-axes ply reads a splat-transform/SuperSplat file)")
    means, radii = (t.cpu() for t in _footprints(scene))
    sees_rub = visibility(means, radii, cameras.cameras).sees
    sees_ply = visibility(means * torch.tensor([1.0, -1.0, -1.0]), radii, cameras.cameras).sees
    if sees_ply and not sees_rub:
        return "ply", (f"{path}: read in the .ply's own axes (splat-transform's), under which the cameras "
                       f"{cameras.label} see it (--spz-axes rub overrides)")
    if sees_rub and not sees_ply:
        return "rub", (f"{path}: read in the .spz specification's RUB axes, under which the cameras "
                       f"{cameras.label} see it (--spz-axes ply overrides)")
    return "rub", (f"{path}: read in the .spz specification's RUB axes: the cameras {cameras.label} see it "
                   f"{'alike in' if sees_rub else 'in neither of'} RUB and the .ply's axes; if it renders upside "
                   "down, it was written by splat-transform/SuperSplat: add --spz-axes ply")


def _footprints(scene: Scene) -> tuple[torch.Tensor, torch.Tensor]:
    """(centres [N, 3], footprint radii [N]) of what a scene holds, for the frame check."""
    if hasattr(scene, "gaussians"):
        g = scene.gaussians
        keep = torch.sigmoid(g.opacities) >= 1 / 255
        means, radii = g.means[keep], 3 * g.scales[keep].exp().amax(dim=1)  # 3 sigma, as rasterizers cut
    else:  # a radiance field: a lattice over its content bounds
        lo, hi = (b.detach().cpu().float() for b in scene.bounds())
        steps = torch.linspace(0, 1, 9)
        grid = torch.stack(torch.meshgrid(steps, steps, steps, indexing="ij"), dim=-1).reshape(-1, 3)
        means = lo + grid * (hi - lo)
        radii = torch.full((len(means),), float((hi - lo).norm()) / 16)
    return means, radii
