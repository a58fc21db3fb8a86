"""A real two-turn session (synthetic scene, synthetic editor, labels segmenter) in a few seconds."""

from __future__ import annotations

from pathlib import Path

from gsedit.edit.session import Session

TURNS = ["make the sphere red", "make the cube yellow"]
VIEWS = 4
SIZE = 32


def make_tiny_session(folder: Path, iters: int = 4) -> Session:
    """Runs `gsedit edit` in-process on a 600-Gaussian scene seen by 4 cameras of 32x32 pixels."""
    from gsedit.cli import Edit
    from gsedit.data.synthetic import SyntheticSceneConfig, write_synthetic_scene
    from gsedit.edit.config import EditConfig
    from gsedit.edit.run import run_edit_command

    scene = Path(folder) / "input" / "scene.ply"
    cameras = write_synthetic_scene(
        scene, SyntheticSceneConfig(points_per_object=150), n_cameras=VIEWS, size=SIZE
    )
    args = Edit(
        scene=scene,
        cameras=str(cameras),
        turn=list(TURNS),
        out=Path(folder) / "session",
        editor="synthetic",
        device="cpu",
        quiet=True,
        settings=EditConfig(iters=iters, segmenter="labels"),
    )
    return run_edit_command(args)
