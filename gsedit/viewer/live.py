"""`gsedit edit --view`: the viewer as the engine's Reporter, showing the scene while it trains.

The engine trains the scene on its own thread; the viewer renders on another. Rendering the live
parameters from there would race with densification (it replaces tensors mid-step), so every few
steps the reporter, on the engine's thread, takes a copy (`Scene.clone`) and the viewer renders
that. Between copies a browser can orbit freely.
"""

from __future__ import annotations

import numpy as np
import torch

from gsedit.cameras import Cameras
from gsedit.scene.base import Scene
from gsedit.viewer.camera import up_direction
from gsedit.viewer.server import Viewer, ViewerConfig


class LiveContent:
    """ViewerContent's interface over snapshots of the scene being edited (one state: "live")."""

    title = "live edit"

    def __init__(self, scene: Scene, cameras: Cameras | None):
        self.device = scene.device
        self.cameras = cameras
        self.current = scene.clone()
        self.start = self.current  # the scene at the start of the running turn ("before")
        self.turn = "waiting for the first turn"
        self.detail = ""  # step and loss of the running turn

    @property
    def labels(self) -> list[str]:
        return [f"{self.turn} ({self.detail})" if self.detail else self.turn]

    def scene(self, index: int, before: bool = False) -> Scene:
        return self.start if before else self.current

    def masks(self, index: int) -> None:
        return None  # a turn's masks exist only inside the loop until the turn is written

    def renders(self, index: int) -> None:
        return None

    def up(self) -> np.ndarray:
        return up_direction(self.cameras)


class LiveViewer:
    """The engine's Reporter (turn_started / step / turn_finished) that also feeds a Viewer.

    Reports are passed on to `forward` (the CLI's progress display and log) unchanged.
    """

    def __init__(self, viewer: Viewer, forward=None, refresh_every: int = 5):
        if refresh_every < 1:
            raise ValueError(f"refresh_every must be >= 1, got {refresh_every}")
        self.viewer = viewer
        self.forward = forward
        self.refresh_every = refresh_every
        self.scene: Scene | None = None
        self.content: LiveContent | None = None

    @classmethod
    def start(
        cls,
        device: torch.device | str,
        port: int = 8080,
        max_side: int | None = None,
        forward=None,
        refresh_every: int = 5,
        host: str = "127.0.0.1",
    ) -> LiveViewer:
        """Starts the server (empty until the engine calls `attach`) and returns the reporter."""
        viewer = Viewer(device, ViewerConfig(host=host, port=port, max_side=max_side))
        return cls(viewer, forward, refresh_every)

    def attach(self, scene: Scene, cameras: Cameras | None = None) -> None:
        """Hands over the scene the engine trains (and its training cameras, for the frustums)."""
        self.scene = scene
        self.content = LiveContent(scene, cameras)
        self.viewer.show(self.content)

    # -- Reporter -------------------------------------------------------------------------------
    def turn_started(self, record, total_steps: int) -> None:
        if self.content is not None:
            self.content.start = self.content.current = self.scene.clone()
            self.content.turn = f"turn {record.index}: {record.instruction}"
            self.content.detail = f"step 0/{total_steps}"
            self.viewer.show_label()
            self.viewer.refresh()
        if self.forward is not None:
            self.forward.turn_started(record, total_steps)

    def step(self, progress) -> None:
        if self.forward is not None:
            self.forward.step(progress)
        if self.content is None:
            return
        if progress.step % self.refresh_every == 0 or progress.step == progress.total:
            self.content.current = self.scene.clone()
            self.content.detail = f"step {progress.step}/{progress.total}, loss {progress.loss:.4f}"
            self.viewer.show_label()
            self.viewer.refresh()

    def turn_finished(self, record) -> None:
        if self.content is not None:
            self.content.current = self.scene.clone()
            self.content.detail = "done"
            self.viewer.show_label()
            self.viewer.refresh()
        if self.forward is not None:
            self.forward.turn_finished(record)

    def stop(self) -> None:
        self.viewer.stop()
