"""`gsedit view`: a viser web viewer that renders with gsedit's own renderers.

Every connected browser sends its camera; one render thread draws the chosen scene from it with
`Scene.render` at a reduced resolution and sends the frame back as the page's background image.
Any Scene backend shows the same way (3DGS: gsplat on CUDA, the PyTorch reference rasterizer on
CPU; nerfacto: ray marching), only at different speeds.

Why one module over 400 lines: it is one class, the viser server, whose GUI handles and callbacks
sit beside the state they change (viser's own examples do so); the render thread, the frustums and
the panel all read and write that state.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gsedit.errors import GseditError, MissingPackageError
from gsedit.scene.base import Scene
from gsedit.scene.files import scene_backend
from gsedit.viewer.camera import (
    ViewPose,
    cameras_to_poses,
    matching_view,
    pose_to_cameras,
    quat_to_matrix,
    warp_between,
)
from gsedit.viewer.content import Content, ViewerContent
from gsedit.viewer.frame import OVERLAYS, Overlay, blend, render_frame, thumbnail

FRUSTUM_COLOUR = (255, 140, 0)


@dataclass
class ViewerConfig:
    """How the viewer serves and renders."""

    host: str = "127.0.0.1"
    """Address to listen on: loopback by default (reach it from elsewhere through an SSH tunnel)."""
    port: int = 8080
    """HTTP/websocket port of the page."""
    max_side: int | None = None
    """Longer side of a rendered frame in pixels; None: by backend and device (DEFAULT_MAX_SIDE)."""
    jpeg_quality: int = 85
    """JPEG quality of the frames sent to the browser."""
    thumbnail_side: int = 96
    """Longer side of the images shown inside the training-camera frustums."""


#: (backend, device type) -> longer side of a frame when none is asked for. The CPU rasterizer
#: draws a few-thousand-Gaussian scene at 256 px in ~0.1 s; nerfacto marches every pixel's ray
#: through hash grids: the tiny preset takes ~0.4 s at 64 px on one CPU core, the full one ~10 s.
DEFAULT_MAX_SIDE = {
    ("3dgs", "cpu"): 256,
    ("3dgs", "cuda"): 1024,
    ("nerfacto", "cpu"): 64,
    ("nerfacto", "cuda"): 256,
}


def default_max_side(device: torch.device, scene: Scene | None = None) -> int:
    """The frame size for `scene` (a 3DGS one until a scene is shown) on `device`."""
    backend = "3dgs" if scene is None else scene_backend(scene.filename)
    return DEFAULT_MAX_SIDE[backend, "cuda" if device.type == "cuda" else "cpu"]


def require_viser():
    try:
        import viser
    except ImportError:
        raise MissingPackageError("The web viewer", "viser") from None
    return viser


class Viewer:
    """A viser server showing a ViewerContent; `show` swaps the content, `refresh` redraws it."""

    def __init__(self, device: torch.device | str, config: ViewerConfig | None = None):
        viser = require_viser()
        self.config = config or ViewerConfig()
        self.device = torch.device(device)
        self.content: Content | None = None  # set by `show`; until then the page shows nothing
        self.max_side = self.config.max_side or default_max_side(self.device)
        self.frame_seconds: deque[float] = deque(maxlen=200)
        self.last_pose: ViewPose | None = None  # the camera of the last frame sent to a browser
        self._dirty: set[int] = set()
        self._ready: set[int] = set()  # clients whose camera has been reported at least once
        self._wake = threading.Condition()
        self._stopped = False
        self._frustums: list = []
        self._mask_cache: dict[int, torch.Tensor | None] = {}
        # GUI changes come from viser's thread pool and, in a live edit, from the engine's thread
        self._gui_lock = threading.RLock()
        self._batch = False  # True while `show`/`select` set several widgets: one redraw at the end
        self.server = viser.ViserServer(host=self.config.host, port=self.config.port, verbose=False)
        self._build_gui()
        self.server.on_client_connect(self._on_connect)
        self.server.on_client_disconnect(lambda client: self._forget(client.client_id))
        self._thread = threading.Thread(target=self._render_loop, name="gsedit-viewer", daemon=True)
        self._thread.start()

    # -- addresses and life cycle -------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.server.get_port()

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def stop(self) -> None:
        """Stops the render thread and the server (a second call does nothing)."""
        with self._wake:
            if self._stopped:
                return
            self._stopped = True
            self._wake.notify_all()
        self._thread.join(timeout=10)
        self.server.stop()

    def serve_forever(self) -> None:
        """Blocks until Ctrl-C, then stops the server (returns normally)."""
        try:
            while not self._stopped:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    # -- what is shown ------------------------------------------------------------------------
    @property
    def index(self) -> int:
        return int(self._turn.value)

    @property
    def before(self) -> bool:
        return bool(self._before.value)

    @property
    def overlay(self) -> Overlay:
        return self._overlay.value

    def show(self, content: Content) -> None:
        """Shows `content` (a session, a scene file, a live edit): slider, frustums, camera."""
        with self._gui_lock:
            self.content = content
            self._mask_cache.clear()
            last = len(content.labels) - 1
            with self._batched():
                self._turn.max = max(last, 1)  # viser needs max > min; one state hides the slider
                self._turn.value = last
                self._turn.visible = last > 0
                if self.config.max_side is None:
                    self.max_side = default_max_side(self.device, content.scene(0))
                    self._resolution.value = self.max_side
            self._place_initial_camera()
            self.server.scene.set_up_direction(tuple(float(v) for v in content.up()))
            self._state_changed()

    def refresh(self) -> None:
        """Redraws every browser (the scenes changed under the same state)."""
        with self._wake:
            self._dirty |= self._ready
            self._wake.notify_all()

    def select(self, index: int, before: bool = False, overlay: Overlay = "none") -> None:
        """Sets the GUI as a person would: turn slider, before/after toggle, overlay."""
        with self._gui_lock:
            with self._batched():
                self._turn.value = index
                self._before.value = before
                self._overlay.value = overlay
            self._state_changed()

    @contextmanager
    def _batched(self) -> Iterator[None]:
        self._batch = True
        try:
            yield
        finally:
            self._batch = False

    def render_view(self, pose: ViewPose) -> np.ndarray:
        """[H, W, 3] uint8: the current state seen from `pose` (what a browser at `pose` gets)."""
        camera = pose_to_cameras(pose, self.max_side, self.device)
        scene = self.content.scene(self.index, before=self.before)
        mask = self._mask_for(pose, camera) if self.overlay == "mask" else None
        return render_frame(scene, camera, self.overlay, mask)

    # -- GUI ----------------------------------------------------------------------------------
    def _build_gui(self) -> None:
        gui = self.server.gui
        self._title = gui.add_markdown("**gsedit**  \nwaiting for a scene")
        self._turn = gui.add_slider(
            "turn",
            min=0,
            max=1,
            step=1,
            initial_value=0,
            hint="turn_00 (input) .. last finished turn, then refined/",
        )
        self._before = gui.add_checkbox(
            "before", False, hint="show the scene this turn started from"
        )
        self._overlay = gui.add_dropdown(
            "overlay",
            OVERLAYS,
            initial_value="none",
            hint="relevance: the rendered relevance channel; mask: the "
            "turn's mask (exact from a training camera: click one)",
        )
        self._show_cameras = gui.add_checkbox("training cameras", True)
        self._resolution = gui.add_slider(
            "max side (px)",
            min=16,
            max=max(2048, self.max_side),
            step=16,
            initial_value=self.max_side,
        )
        self._status = gui.add_markdown("")
        for handle in (self._turn, self._before, self._overlay):
            handle.on_update(lambda _: None if self._batch else self._state_changed())
        self._show_cameras.on_update(lambda _: self._set_frustums_visible())
        self._resolution.on_update(lambda _: self._set_resolution())

    def show_label(self) -> None:
        """Rewrites the heading (the content's labels changed, e.g. a live edit's step count)."""
        if self.content is None:
            return
        label = self.content.labels[min(self.index, len(self.content.labels) - 1)]
        which = "before" if self.before else "after"
        self._title.content = f"**{self.content.title}**  \n{label} ({which})"

    def _state_changed(self) -> None:
        with self._gui_lock:
            if self.content is None:
                return
            self.show_label()
            self._draw_frustums()
        self.refresh()

    def _set_resolution(self) -> None:
        self.max_side = int(self._resolution.value)
        self.refresh()

    # -- training cameras ---------------------------------------------------------------------
    def _draw_frustums(self) -> None:
        for handle in self._frustums:
            handle.remove()
        self._frustums = []
        cameras = self.content.cameras
        if cameras is None:
            return
        images = self._frustum_images()
        poses = cameras_to_poses(cameras)
        centres = np.stack([p.position for p in poses])
        scale = 0.1 * max(float(np.linalg.norm(centres - centres.mean(0), axis=1).max()), 1e-2)
        for i, pose in enumerate(poses):
            handle = self.server.scene.add_camera_frustum(
                f"/training/{cameras.names[i]}",
                fov=pose.fov_y,
                aspect=pose.aspect,
                scale=scale,
                color=FRUSTUM_COLOUR,
                # thin in pixels: a frustum seen from its own camera would fill the view's edges
                thickness=1.5,
                thickness_units="screen",
                wxyz=pose.wxyz,
                position=pose.position,
                image=None if images is None else images[i],
                visible=bool(self._show_cameras.value),
            )
            handle.on_click(lambda event, pose=pose: self._jump_to(event.client, pose))
            self._frustums.append(handle)

    def _frustum_images(self) -> list[np.ndarray] | None:
        """The turn's render of each training view, its mask tinted in when the mask overlay is on."""
        from gsedit.render.images import to_uint8
        from gsedit.viewer.frame import MASK_TINT

        renders = self.content.renders(self.index)
        if renders is None:
            return None
        masks = self._masks() if self.overlay == "mask" else None
        if masks is not None:
            renders = blend(renders, torch.tensor(MASK_TINT), 0.6 * masks)
        return [to_uint8(thumbnail(r, self.config.thumbnail_side)) for r in renders]

    def _set_frustums_visible(self) -> None:
        for handle in self._frustums:
            handle.visible = bool(self._show_cameras.value)

    def _jump_to(self, client, pose: ViewPose) -> None:
        with client.atomic():
            client.camera.fov = pose.fov_y
            client.camera.wxyz = pose.wxyz
            client.camera.position = pose.position

    def _place_initial_camera(self) -> None:
        place_initial_camera(self.server, self.content.scene(0), self.content.cameras)

    # -- masks --------------------------------------------------------------------------------
    def _masks(self) -> torch.Tensor | None:
        if self.index not in self._mask_cache:
            self._mask_cache[self.index] = self.content.masks(self.index)
        return self._mask_cache[self.index]

    def _mask_for(self, pose: ViewPose, camera) -> torch.Tensor | None:
        """The turn mask of the training view at `pose`, mapped onto `camera`; None elsewhere."""
        masks, cameras, view = self._masks(), self.content.cameras, self.training_view(pose)
        if masks is None or view is None:
            return None
        return warp_between(
            masks[view], cameras.Ks[view], camera.Ks[0], camera.width, camera.height
        )

    # -- browsers and the render thread ---------------------------------------------------------
    def _on_connect(self, client) -> None:
        client.camera.on_update(lambda camera: self._camera_moved(camera.client.client_id))

    def _camera_moved(self, client_id: int) -> None:
        with self._wake:
            self._ready.add(client_id)
            self._dirty.add(client_id)
            self._wake.notify_all()

    def _forget(self, client_id: int) -> None:
        with self._wake:
            self._ready.discard(client_id)
            self._dirty.discard(client_id)

    def _render_loop(self) -> None:
        while True:
            with self._wake:
                while not self._dirty and not self._stopped:
                    self._wake.wait()
                if self._stopped:
                    return
                client_id = self._dirty.pop()
            client = self.server.get_clients().get(client_id)
            if client is not None and self.content is not None:
                self._send_frame(client)

    def _send_frame(self, client) -> None:
        camera = client.camera
        pose = ViewPose(
            np.array(camera.wxyz),
            np.array(camera.position),
            float(camera.fov),
            float(camera.aspect),
        )
        self.last_pose = pose
        start = time.perf_counter()
        try:
            frame = self.render_view(pose)
        except (GseditError, ValueError) as exc:  # e.g. a scene file removed while being viewed
            self._status.content = f"cannot render: {exc}"
            return
        client.scene.set_background_image(
            frame, format="jpeg", jpeg_quality=self.config.jpeg_quality
        )
        seconds = time.perf_counter() - start
        self.frame_seconds.append(seconds)
        h, w = frame.shape[:2]
        status = f"{w}×{h} px · {1000 * seconds:.0f} ms/frame on {self.device}"
        if self.overlay == "mask" and self.training_view(pose) is None:
            status += "  \nmask overlay: click a training camera to see its mask"
        self._status.content = status

    def training_view(self, pose: ViewPose) -> int | None:
        """Index of the training camera at `pose` (where masks line up exactly), else None."""
        cameras = self.content.cameras
        return None if cameras is None else matching_view(cameras, pose)


def run_viewer(
    path: str | Path,
    port: int = 8080,
    max_side: int | None = None,
    device: torch.device | str = "cpu",
    host: str = "127.0.0.1",
) -> Viewer:
    """Starts a viewer of a session folder or a scene file and returns it (serving in background).

    Call `.serve_forever()` to block until Ctrl-C, or `.stop()`.
    """
    if max_side is not None and max_side < 16:
        raise GseditError(f"--max-side must be at least 16 pixels, got {max_side}.")
    content = ViewerContent.from_path(path, device)
    viewer = Viewer(device, ViewerConfig(host=host, port=port, max_side=max_side))
    viewer.show(content)
    return viewer


def place_initial_camera(server, scene: Scene, cameras) -> None:
    """New browsers start at the first training camera (masks line up), else at an orbit view."""
    from gsedit.cameras import orbit_cameras

    lo, hi = scene.bounds()
    centre = ((lo + hi) / 2).detach().double().cpu().numpy()
    if cameras is None:
        cameras = orbit_cameras(1, (lo, hi), 256, 256)
    pose = cameras_to_poses(cameras[0])[0]
    axes = quat_to_matrix(pose.wxyz)  # columns: camera x (right), y (down), z (forward)
    distance = max(float(np.dot(centre - pose.position, axes[:, 2])), 1e-3)
    initial = server.initial_camera
    initial.position = tuple(pose.position)
    initial.look_at = tuple(pose.position + distance * axes[:, 2])
    initial.up = tuple(-axes[:, 1])
    initial.fov = pose.fov_y


def frame_time_summary(seconds) -> str:
    """'median 85 ms, p90 120 ms over 40 frames' for a list of frame durations in seconds."""
    values = sorted(seconds)
    if not values:
        return "no frames"
    median = values[len(values) // 2]
    p90 = values[min(len(values) - 1, math.ceil(0.9 * len(values)) - 1)]
    return f"median {1000 * median:.0f} ms, p90 {1000 * p90:.0f} ms over {len(values)} frames"
