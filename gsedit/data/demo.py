"""The demo's scene and turns (`gsedit demo`, the README's Python API example, the benchmarks)."""

from __future__ import annotations

from pathlib import Path

DEMO_TURNS = ["make the sphere red", "make the cube yellow"]
# The 3DGS learning rates are tuned for 30k-step fits; a few-hundred-step CPU turn needs larger
# steps for colours to move (GaussianEditor raises its colour rate for the same reason). Recolouring
# needs no new geometry, so the demo turns densification off (it would also slow the CPU down),
# and edits twice as often as IN2N's default so every view is edited a few times in a short turn.
DEMO_OVERRIDES = {"lr_scale": 5.0, "densify": False, "edit_every": 5}
DEMO_SCENE = Path("input") / "scene.ply"
"""Where in the demo folder the scene goes; its cameras are `cameras.json` beside it."""


def write_demo_scene(folder: Path, size: int = 96) -> tuple[Path, Path]:
    """(scene.ply, cameras.json): the synthetic labelled scene seen by 12 cameras, in folder/input/."""
    from gsedit.data.synthetic import write_synthetic_scene

    scene = Path(folder) / DEMO_SCENE
    return scene, write_synthetic_scene(scene, n_cameras=12, size=size)
