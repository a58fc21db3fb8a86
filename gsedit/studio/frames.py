"""Server-rendered frames for browsers whose view the splat node cannot draw (nerfacto, overlays).

Each browser's camera is rendered by one thread with gsedit's own renderer: at `moving_side` pixels
while the camera moves, then once more at `max_side` when it has been still for `settle_seconds`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from gsedit.errors import GseditError
from gsedit.viewer.camera import ViewPose


class FrameServer:
    """Renders `draw(pose, max_side) -> [H, W, 3] uint8` for every browser that needs a frame."""

    def __init__(self, server, draw: Callable[[ViewPose, int], np.ndarray], max_side: int,
                 moving_side: int, settle_seconds: float = 0.3, on_error: Callable[[str], None] | None = None):
        self.server = server
        self.draw = draw
        self.max_side = max_side
        self.moving_side = min(moving_side, max_side)
        self.settle_seconds = settle_seconds
        self.on_error = on_error
        self.active = False  # False: the page shows splats, no frames are drawn
        self.frame_seconds: list[float] = []
        self._moved: dict[int, float] = {}  # client id -> when its camera last moved
        self._sharp: set[int] = set()  # clients drawn at full resolution since they last moved
        self._rough: set[int] = set()  # clients drawn at low resolution since they last moved
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="gsedit-studio-frames", daemon=True)
        self._thread.start()

    def moved(self, client_id: int) -> None:
        with self._wake:
            self._moved[client_id] = time.monotonic()
            self._sharp.discard(client_id)
            self._rough.discard(client_id)
            self._wake.notify_all()

    def refresh(self) -> None:
        """Every browser gets a new full frame (the shown scene or overlay changed)."""
        with self._wake:
            for client_id in self._moved:
                self._moved[client_id] = 0.0
            self._sharp.clear()
            self._rough.clear()
            self._wake.notify_all()

    def forget(self, client_id: int) -> None:
        with self._wake:
            self._moved.pop(client_id, None)
            self._sharp.discard(client_id)
            self._rough.discard(client_id)

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify_all()
        self._thread.join(timeout=10)

    def _next(self) -> tuple[int, int] | None:
        """(client id, side) of the frame to draw now, or None once stopped; waits while none is due."""
        with self._wake:
            while not self._stopped:
                now = time.monotonic()
                if self.active:
                    for client_id, moved in sorted(self._moved.items(), key=lambda item: item[1]):
                        if client_id in self._sharp:
                            continue
                        if now - moved >= self.settle_seconds:
                            self._sharp.add(client_id)
                            return client_id, self.max_side
                        if client_id not in self._rough:
                            self._rough.add(client_id)
                            return client_id, self.moving_side
                self._wake.wait(timeout=self.settle_seconds / 3)
            return None

    def _loop(self) -> None:
        while (job := self._next()) is not None:
            client_id, side = job
            client = self.server.get_clients().get(client_id)
            if client is None:
                continue
            camera = client.camera
            pose = ViewPose(np.array(camera.wxyz), np.array(camera.position), float(camera.fov), float(camera.aspect))
            start = time.perf_counter()
            try:
                frame = self.draw(pose, side)
            except (GseditError, ValueError, OSError) as exc:  # e.g. a turn undone while drawn
                if self.on_error:
                    self.on_error(f"cannot render: {exc}")
                continue
            if side == self.max_side:
                self.frame_seconds.append(time.perf_counter() - start)
            client.scene.set_background_image(frame, format="jpeg", jpeg_quality=85)
