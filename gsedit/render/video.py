"""Turntable videos of a scene, and animated before/after comparisons of two scenes.

Frames are rendered a few views at a time and streamed to the writer, so a long or large video
never holds all its frames in memory. `.mp4` goes through imageio-ffmpeg's bundled ffmpeg (H.264,
yuv420p: what browsers and players read); `.gif` through Pillow.

What is filmed is anything with a `device` and a `render(cameras)` whose result holds `rgb`
[C, H, W, 3] (`Renders`): a `gsedit.scene` Scene is one, but this module sits below `scene/` and
names no scene class.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from gsedit.atomic import atomic_path
from gsedit.cameras import Cameras, OrbitConfig, orbit_cameras
from gsedit.errors import GseditError
from gsedit.render.images import to_uint8

VIDEO_SUFFIXES = (".mp4", ".gif")
WIPE_LINE = 255  # the divider between before and after, white


class _Frames(Protocol):
    rgb: Tensor  # [C, H, W, 3] in [0, 1]


class Renders(Protocol):
    """What a video films: a Scene, or anything else that renders views on a device."""

    @property
    def device(self) -> torch.device: ...

    def render(self, cameras: Cameras) -> _Frames: ...


def _check(path: Path, frames: int, size: int, fps: float) -> None:
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise GseditError(
            f"video path {path}: expected a name ending in .mp4 or .gif, got '{path.suffix}'."
        )
    if frames < 1 or size < 16 or fps <= 0:
        raise GseditError(
            f"video needs frames >= 1, size >= 16 and fps > 0, got {frames}, {size}, {fps}."
        )


def _even(size: int) -> int:
    # H.264 in yuv420p stores colour at half resolution: both sides must be even
    return size + size % 2


def turntable_cameras(
    bounds: tuple[Tensor, Tensor], frames: int, size: int, orbit: OrbitConfig | None = None
) -> Cameras:
    """`frames` cameras once around the box `bounds`, square images of side `size` (made even)."""
    side = _even(size)
    return orbit_cameras(frames, bounds, side, side, orbit)


def _rendered(scene: Renders, cameras: Cameras, batch: int) -> Iterator[np.ndarray]:
    """[H, W, 3] uint8 frames, rendered `batch` views at a time."""
    for start in range(0, len(cameras), batch):
        views = cameras[start : start + batch].to(scene.device)
        yield from to_uint8(scene.render(views).rgb)


class _Writer:
    """Appends uint8 frames to an .mp4 or .gif, written under a temporary name then renamed."""

    def __init__(self, path: Path, fps: float):
        self.path, self.fps = Path(path), fps
        self._gif_frames: list[np.ndarray] = []  # Pillow writes an animated GIF in one call

    def __enter__(self):
        import imageio.v2 as imageio

        self._atomic = atomic_path(self.path)
        self._final_tmp = self._atomic.__enter__()
        # imageio picks the codec by extension: write under the real suffix, move when closed
        self._tmp = self._final_tmp.with_name(self._final_tmp.name + self.path.suffix.lower())
        self._mp4 = None
        if self.path.suffix.lower() == ".mp4":
            self._mp4 = imageio.get_writer(
                self._tmp,
                format="FFMPEG",
                fps=self.fps,
                codec="libx264",
                pixelformat="yuv420p",
                quality=8,
                macro_block_size=2,
            )
        return self

    def append(self, frame: np.ndarray) -> None:
        if self._mp4 is not None:
            self._mp4.append_data(frame)
        else:
            self._gif_frames.append(frame)

    def _close(self) -> None:
        import imageio.v3 as iio

        if self._mp4 is not None:
            self._mp4.close()
        else:  # duration per frame in milliseconds; loop=0 repeats forever
            iio.imwrite(
                self._tmp,
                np.stack(self._gif_frames),
                plugin="pillow",
                duration=1000 / self.fps,
                loop=0,
            )

    def __exit__(self, *exc):
        try:
            self._close()
            if exc[0] is None:
                os.replace(self._tmp, self._final_tmp)
        finally:
            self._tmp.unlink(missing_ok=True)
        return self._atomic.__exit__(*exc)


def write_turntable(
    scene: Renders,
    bounds: tuple[Tensor, Tensor],
    path: str | Path,
    frames: int = 48,
    size: int = 256,
    fps: float = 24,
    orbit: OrbitConfig | None = None,
    batch: int = 4,
) -> Path:
    """Writes a video of `scene` seen from `frames` cameras once around `bounds`; returns the path.

    Args:
        bounds: (min [3], max [3]) box to frame; give every turn the same box (e.g. the input
            scene's) so that the videos of a session line up.
        size: side of the square frames in pixels (rounded up to even for H.264).
        orbit: elevation, field of view and up axis of the circle (OrbitConfig's defaults: -y up).
        batch: views rendered together.
    """
    path = Path(path)
    _check(path, frames, size, fps)
    cameras = turntable_cameras(bounds, frames, size, orbit)
    with _Writer(path, fps) as writer:
        for frame in _rendered(scene, cameras, batch):
            writer.append(frame)
    return path


def wipe_position(index: int, frames: int) -> float:
    """Where the divider stands in frame `index`, in [0, 1]: it sweeps right, then back left.

    0 shows all "after", 1 all "before"; one sweep there and back per video, easing at the ends.
    """
    phase = index / max(frames, 1)
    return 0.5 - 0.5 * math.cos(2 * math.pi * phase)


def wipe(before: np.ndarray, after: np.ndarray, position: float) -> np.ndarray:
    """[H, W, 3] before left of column `position * W`, after right of it, a 1-px line between."""
    width = before.shape[1]
    column = round(position * width)
    out = after.copy()
    out[:, :column] = before[:, :column]
    if 0 < column < width:
        out[:, column] = WIPE_LINE
    return out


def write_before_after(
    before_scene: Renders,
    after_scene: Renders,
    bounds: tuple[Tensor, Tensor],
    path: str | Path,
    frames: int = 48,
    size: int = 256,
    fps: float = 24,
    orbit: OrbitConfig | None = None,
    batch: int = 4,
) -> Path:
    """Writes a turntable in which a divider wipes between `before_scene` (left) and `after_scene`.

    Both scenes are rendered from the same cameras around `bounds`; see `write_turntable`.
    """
    path = Path(path)
    _check(path, frames, size, fps)
    cameras = turntable_cameras(bounds, frames, size, orbit)
    pairs = zip(_rendered(before_scene, cameras, batch), _rendered(after_scene, cameras, batch))
    with _Writer(path, fps) as writer:
        for i, (before, after) in enumerate(pairs):
            writer.append(wipe(before, after, wipe_position(i, frames)))
    return path


def read_video(path: str | Path) -> np.ndarray:
    """[T, H, W, 3] uint8 frames of an .mp4 or .gif (for checks and tests)."""
    import imageio.v3 as iio

    path = Path(path)
    plugin = "FFMPEG" if path.suffix.lower() == ".mp4" else "pillow"
    frames = iio.imread(path, plugin=plugin, index=None)
    return np.asarray(frames)[..., :3]
