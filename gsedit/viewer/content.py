"""What a viewer shows: the states of a session folder (turn_00.., refined) or one scene file.

No viser here: the viewer asks this for scenes, training cameras and masks by state index, so the
turn slider's behaviour is testable without a browser.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from gsedit.cameras import Cameras
from gsedit.edit.refine import REFINED_DIR
from gsedit.errors import GseditError, InputFileError
from gsedit.scene.base import Scene
from gsedit.scene.files import is_scene_path, load_scene_file
from gsedit.viewer.camera import up_direction

SHOWS = (
    "the viewer shows a 3D Gaussian splatting .ply, a gsedit nerfacto .ckpt or a session folder (also "
    ".spz, .compressed.ply, .sog, .splat files and trainers' output folders)."
)


@dataclass
class SceneState:
    """One position of the turn slider."""

    label: str  # "turn 1: make the sphere red"
    path: Path  # the scene file
    before: Path | None = None  # the scene file of the state it was made from (None for the input)
    folder: Path | None = None  # turn folder holding renders/ and masks/ (None for a bare file)


class Content(Protocol):
    """What a Viewer shows; ViewerContent (folders, files) and LiveContent (a running edit)."""

    title: str
    device: torch.device
    cameras: Cameras | None  # training cameras: frustums, and where masks line up

    @property
    def labels(self) -> list[str]: ...  # one per turn-slider position
    def scene(self, index: int, before: bool = False) -> Scene: ...
    def masks(self, index: int) -> Tensor | None: ...  # [C, H, W] for the training cameras
    def renders(self, index: int) -> Tensor | None: ...  # [C, H, W, 3]
    def up(self) -> np.ndarray: ...  # [3]


class ViewerContent:
    """States (the turn slider), their scenes (loaded on first use), training cameras and masks."""

    def __init__(
        self,
        states: list[SceneState],
        device: torch.device | str,
        title: str,
        cameras: Cameras | None = None,
    ):
        if not states:
            raise GseditError(f"{title}: nothing to show (no finished turn and no input scene).")
        self.states = states
        self.device = torch.device(device)
        self.title = title
        self.cameras = cameras
        self._scenes: dict[Path, Scene] = {}
        self._lock = threading.Lock()

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def from_path(cls, path: str | Path, device: torch.device | str = "cpu") -> ViewerContent:
        """A session folder (it holds session.json) or a single scene file (.ply, .ckpt)."""
        path = Path(path)
        if path.is_dir() and not is_scene_path(path):  # a trainer's output folder is one scene
            return cls.from_session(path, device)
        if not path.exists():
            raise InputFileError(path, f"not found; {SHOWS}")
        if not is_scene_path(path):
            raise InputFileError(path, SHOWS)
        content = cls([SceneState(path.name, path)], device, path.name)
        content.scene(0)  # fail now, with the file named, rather than in the render thread
        return content

    @classmethod
    def from_session(cls, folder: Path, device: torch.device | str = "cpu") -> ViewerContent:
        from gsedit.edit.session import SessionFolder

        session = SessionFolder.open(folder)
        states = [SceneState("turn 0: input", session.scene_path(0), None, session.turn_dir(0))]
        for index in range(1, session.last_finished() + 1):
            record = session.records[index - 1]
            states.append(
                SceneState(
                    f"turn {index}: {record.instruction}",
                    session.scene_path(index),
                    states[-1].path,
                    session.turn_dir(index),
                )
            )
        refined = session.folder / REFINED_DIR / session.data["scene_file"]
        if refined.is_file():
            states.append(SceneState("refined", refined, states[-1].path, refined.parent))
        content = cls(states, device, session.folder.name)
        content.cameras = training_cameras(session, content.scene(0))
        return content

    # -- state access -----------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.states]

    def scene(self, index: int, before: bool = False) -> Scene:
        """The scene of state `index` (or of the state it was edited from); cached once loaded.

        The input has no "before": asking for it gives the input itself.
        """
        state = self.states[index]
        path = (state.before or state.path) if before else state.path
        with self._lock:
            if path not in self._scenes:
                self._scenes[path] = load_scene_file(path, self.device)
            return self._scenes[path]

    def masks(self, index: int) -> Tensor | None:
        """[C, H, W] the masks the turn used for the training views, or None (input, bare file)."""
        return _read_stack(self.states[index].folder, "masks", self.cameras)

    def renders(self, index: int) -> Tensor | None:
        """[C, H, W, 3] the turn's renders of the training views, or None."""
        return _read_stack(self.states[index].folder, "renders", self.cameras)

    def up(self) -> np.ndarray:
        """[3] world up, from the training cameras when there are some."""
        return up_direction(self.cameras)


def training_cameras(session, scene: Scene) -> Cameras | None:
    """The session's training cameras, or None when their file is gone (only frustums and mask
    overlays need them: the viewer still shows every scene)."""
    from gsedit.edit.session import session_cameras

    try:
        return session_cameras(session, scene)
    except GseditError:
        return None


def _read_stack(folder: Path | None, kind: str, cameras: Cameras | None) -> Tensor | None:
    """[C, H, W] masks (kind "masks") or [C, H, W, 3] images in [0, 1] of folder/kind/NNNN.png for
    every camera; None when any is missing."""
    from gsedit.render.images import read_image, read_image_stack, read_mask

    if folder is None or cameras is None:
        return None
    paths = [folder / kind / f"{i:04d}.png" for i in range(len(cameras))]
    if not all(p.is_file() for p in paths):
        return None
    return read_image_stack(paths, folder / kind, read_mask if kind == "masks" else read_image)
