"""Real two-turn sessions (synthetic scene, synthetic editor) in a few seconds: on a 3DGS scene
(labels segmenter) and on a tiny nerfacto fitted to its renders (whole-view edits)."""

from __future__ import annotations

import warnings
from pathlib import Path

from gsedit.edit.config import EditConfig
from gsedit.edit.session import SessionFolder

TURNS = ["make the sphere red", "make the cube yellow"]
VIEWS = 4
SIZE = 32
NERF_SIZE = 16  # nerfacto marches every pixel's ray: a quarter of the pixels keeps it fast on CPU


def make_tiny_session(folder: Path, iters: int = 4) -> SessionFolder:
    """Runs `gsedit edit` in-process on a 600-Gaussian scene seen by 4 cameras of 32x32 pixels."""
    from gsedit.data.synthetic import SyntheticSceneConfig, write_synthetic_scene

    scene = Path(folder) / "input" / "scene.ply"
    cameras = write_synthetic_scene(
        scene, SyntheticSceneConfig(points_per_object=150), n_cameras=VIEWS, size=SIZE
    )
    return run_tiny_edit(
        scene, cameras, Path(folder) / "session", EditConfig(iters=iters, segmenter="labels")
    )


def write_tiny_nerfacto(folder: Path, steps: int = 4) -> tuple[Path, Path]:
    """(scene.ckpt, cameras.json): the tiny nerfacto preset fitted for `steps` steps to 4 renders
    (16x16) of the synthetic scene, written to folder/input/."""
    from gsedit.cameras.formats import load_cameras
    from gsedit.data.synthetic import SyntheticSceneConfig, write_synthetic_scene
    from gsedit.scene.gaussian_scene import GaussianScene
    from gsedit.scene.nerfacto import NERFACTO_PRESETS, fit_nerfacto

    # not scene.ply: its labels sidecar would also be scene.ckpt's
    ply = Path(folder) / "input" / "gaussians.ply"
    cameras = write_synthetic_scene(
        ply, SyntheticSceneConfig(points_per_object=150), n_cameras=VIEWS, size=NERF_SIZE
    )
    gaussians = GaussianScene.load(ply)
    cams = load_cameras(cameras)
    images = gaussians.render(cams).rgb  # [4, 16, 16, 3]
    scene = fit_nerfacto(images, cams, steps, NERFACTO_PRESETS["tiny"], bounds=gaussians.bounds())
    return scene.save_as(ply.with_name("scene.ckpt")), cameras


def make_tiny_nerfacto_session(folder: Path, iters: int = 2) -> SessionFolder:
    """Runs `gsedit edit scene.ckpt` in-process on `write_tiny_nerfacto`'s checkpoint."""
    scene, cameras = write_tiny_nerfacto(folder)
    settings = EditConfig(iters=iters, edit_every=1, segmenter="none")
    with warnings.catch_warnings():  # the stand-in editor warns that it edits whole views
        warnings.filterwarnings("ignore", "synthetic editor")
        return run_tiny_edit(scene, cameras, Path(folder) / "session", settings)


def run_tiny_edit(scene: Path, cameras: Path, out: Path, settings: EditConfig) -> SessionFolder:
    """`gsedit edit SCENE --cameras CAMERAS --turn ... --editor synthetic --device cpu`."""
    from gsedit.commands.edit import Edit
    from gsedit.commands.sessions import run_edit_command

    args = Edit(
        scene=scene,
        cameras=str(cameras),
        turn=list(TURNS),
        out=out,
        editor="synthetic",
        device="cpu",
        quiet=True,
        settings=settings,
    )
    return run_edit_command(args)
