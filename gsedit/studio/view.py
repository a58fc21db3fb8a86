"""The scene in the page: viser's splat node for 3DGS scenes, server-rendered frames otherwise.

Splats are drawn by the browser at full resolution with no server round trip; nerfacto scenes and
the mask and relevance overlays are rendered here (gsedit.viewer.frame) and sent as the page's
background, at low resolution while the camera moves (frames.FrameServer).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from gsedit.cameras import Cameras
from gsedit.edit.masks import MASK_CHANNEL
from gsedit.scene.base import Scene
from gsedit.scene.gaussian_scene import GaussianScene
from gsedit.studio.frames import FrameServer
from gsedit.studio.splats import splat_arrays
from gsedit.viewer.camera import ViewPose, pose_to_cameras
from gsedit.viewer.frame import Overlay, render_frame

SPLATS = "/scene"


class SceneView:
    """What the page draws: one scene, an overlay, the selection's tint."""

    def __init__(self, server, device: torch.device, max_side: int, moving_side: int, on_error=None):
        self.server = server
        self.device = device
        self.scene: Scene | None = None
        self.overlay: Overlay = "none"
        self.masks: tuple[Tensor, Cameras] | None = None  # the shown turn's masks and their cameras
        self._splats = None
        self.frames = FrameServer(server, self.draw, max_side, moving_side, on_error=on_error)

    def show(self, scene: Scene, overlay: Overlay = "none", selected: Tensor | None = None,
             masks: tuple[Tensor, Cameras] | None = None) -> None:
        """Shows `scene` with `overlay` (its mask overlay from `masks`: [C, H, W] and their cameras),
        the `selected` [N] bool Gaussians tinted."""
        self.scene, self.overlay = scene, overlay
        if overlay == "mask" and masks is not None and isinstance(scene, GaussianScene):
            # lifted to the Gaussians once, so the turn's mask shows from every angle
            scene = scene.clone()
            scene.lift_channel(MASK_CHANNEL, masks[1].to(scene.device), masks[0].to(scene.device))
            self.scene = scene
        in_browser = isinstance(scene, GaussianScene) and overlay == "none"
        if in_browser:
            arrays = splat_arrays(scene.gaussians, selected)
            self._splats = self.server.scene.add_gaussian_splats(
                SPLATS, centers=arrays.centers, covariances=arrays.covariances,
                rgbs=arrays.rgbs, opacities=arrays.opacities,
            )
            self.server.scene.set_background_image(None)
        elif self._splats is not None:
            self._splats.remove()
            self._splats = None
        self.frames.active = not in_browser
        if not in_browser:
            self.frames.refresh()

    def draw(self, pose: ViewPose, side: int) -> np.ndarray:
        """[H, W, 3] uint8: the shown scene and overlay from `pose`, at most `side` pixels wide."""
        camera = pose_to_cameras(pose, side, self.device)
        scene, overlay = self.scene, self.overlay
        if overlay == "mask":
            if MASK_CHANNEL not in scene.channel_names():
                return render_frame(scene, camera)
            mask = scene.render(camera, channels=[MASK_CHANNEL]).channels[MASK_CHANNEL][0]
            return render_frame(scene, camera, "mask", mask)
        return render_frame(scene, camera, overlay)

    def stop(self) -> None:
        self.frames.stop()
