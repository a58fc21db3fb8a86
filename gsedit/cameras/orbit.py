"""Orbit cameras: N views on a circle around a scene's bounding box, all looking at its centre."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
from torch import Tensor

from gsedit.cameras.camera import Cameras
from gsedit.cameras.checks import MAX_IMAGE_SIDE
from gsedit.errors import InputFileError

ORBIT_SPEC = re.compile(r"orbit:(\d+)(?:@(\d+)x(\d+))?")
MAX_ORBIT_VIEWS = 10_000


@dataclass
class OrbitConfig:
    """Where orbit cameras sit and how wide they see."""

    elevation_deg: float = 25.0
    """Angle of the cameras above the horizontal plane through the scene centre."""
    fov_deg: float = 50.0
    """Field of view across the shorter image side; the radius makes the bounding box fit in it."""
    up: tuple[float, float, float] = (0.0, -1.0, 0.0)
    """World up axis: the axis of the circle, and "up" in every image. Default -y: the `.ply`'s
    (COLMAP's, OpenCV's) y-down convention, which splat viewers and gsedit's synthetic scenes share."""
    min_radius: float = 1e-3
    """Bounding-sphere radius used for a degenerate (single point) box, so cameras stay off it."""


def orbit_cameras(
    n: int,
    bounds: tuple[Tensor, Tensor],
    width: int = 256,
    height: int = 256,
    config: OrbitConfig | None = None,
) -> Cameras:
    """`n` cameras evenly spaced on a circle around the box `bounds` = (min [3], max [3]).

    The box's bounding sphere fits inside the field of view, so every corner of the box projects
    inside every image, and the box centre projects to the image centre.
    """
    config = config or OrbitConfig()
    # on the CPU in float64 whatever the scene uses: cameras are built once and moved by the caller
    lo, hi = (torch.as_tensor(b).detach().to("cpu", torch.float64).reshape(3) for b in bounds)
    if not (torch.isfinite(lo).all() and torch.isfinite(hi).all() and (lo <= hi).all()):
        raise ValueError(
            f"orbit bounds must be finite with min <= max, got {lo.tolist()}, {hi.tolist()}"
        )
    if n < 1 or width < 1 or height < 1:
        raise ValueError(f"orbit needs n, width, height >= 1, got {n}, {width}, {height}")
    if not (-90 < config.elevation_deg < 90 and 0 < config.fov_deg < 180):
        raise ValueError(
            f"orbit needs -90 < elevation_deg < 90 and 0 < fov_deg < 180, "
            f"got {config.elevation_deg}, {config.fov_deg}"
        )
    centre = (lo + hi) / 2  # [3]
    radius = max(float((hi - lo).norm()) / 2, config.min_radius)
    half_fov = math.radians(config.fov_deg) / 2
    distance = radius / math.sin(half_fov)  # the sphere is tangent to the view cone
    up, east, north = _frame(torch.tensor(config.up, dtype=torch.float64))
    elev = math.radians(config.elevation_deg)
    az = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)  # [n]
    offsets = (
        math.cos(elev) * (az.cos()[:, None] * east + az.sin()[:, None] * north)
        + math.sin(elev) * up
    )
    viewmats = torch.stack(
        [_look_at(centre + distance * o, centre, up) for o in offsets]
    )  # [n, 4, 4]
    focal = 0.5 * min(width, height) / math.tan(half_fov)
    K = torch.tensor([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])
    return Cameras(
        viewmats.float(),
        K.expand(n, 3, 3).clone(),
        width,
        height,
        [f"orbit_{i:04d}" for i in range(n)],
    )


def _frame(up: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(up, east, north): a right-handed orthonormal basis [3] each with `up` as its third axis."""
    up = up / up.norm()
    helper = torch.tensor([1.0, 0.0, 0.0], dtype=up.dtype)
    if abs(float(up @ helper)) > 0.9:
        helper = torch.tensor([0.0, 1.0, 0.0], dtype=up.dtype)
    east = torch.linalg.cross(helper, up)
    east = east - (east @ up) * up
    east = east / east.norm()
    return up, east, torch.linalg.cross(up, east)


def _look_at(eye: Tensor, target: Tensor, up: Tensor) -> Tensor:
    """World-to-camera [4, 4] (OpenCV: x right, y down, z forward) at `eye` looking at `target`."""
    forward = (target - eye) / (target - eye).norm()
    right = torch.linalg.cross(forward, up)
    right = right / right.norm()
    down = torch.linalg.cross(forward, right)
    R = torch.stack([right, down, forward])  # rows: camera axes in world coordinates
    w2c = torch.eye(4, dtype=eye.dtype)
    w2c[:3, :3] = R
    w2c[:3, 3] = -R @ eye
    return w2c


def parse_orbit_spec(spec: str) -> tuple[int, int, int] | None:
    """(n, width, height) of `orbit:N` or `orbit:N@WxH` (default 256x256); None if not an orbit spec."""
    if not spec.startswith("orbit:"):
        return None
    match = ORBIT_SPEC.fullmatch(spec)
    if match is None or int(match[1]) < 1 or (match[2] and min(int(match[2]), int(match[3])) < 1):
        raise InputFileError(
            spec,
            "malformed orbit spec: expected orbit:N or orbit:N@WxH with positive integers, "
            "e.g. orbit:24 or orbit:24@512x384",
        )
    n = int(match[1])
    width, height = (int(match[2]), int(match[3])) if match[2] else (256, 256)
    if n > MAX_ORBIT_VIEWS or max(width, height) > MAX_IMAGE_SIDE:
        raise InputFileError(
            spec,
            f"an orbit has at most {MAX_ORBIT_VIEWS} views of at most {MAX_IMAGE_SIDE} px a side, "
            f"got {n} views of {width}x{height}",
        )
    return n, width, height
