"""Browser camera <-> gsedit Cameras, and the 2D maps between two pinhole cameras at one pose.

viser reports a client's camera as camera-to-world rotation (wxyz quaternion) and position, in the
OpenCV convention (x right, y down, z forward) that gsedit uses too, plus a vertical field of view
and the canvas aspect ratio. No viser import here: these are plain numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gsedit.cameras import Cameras


@dataclass
class ViewPose:
    """One camera as the browser sees it."""

    wxyz: np.ndarray  # [4] camera-to-world rotation
    position: np.ndarray  # [3] camera centre in world space
    fov_y: float  # vertical field of view, radians
    aspect: float  # width / height


def quat_to_matrix(wxyz: np.ndarray) -> np.ndarray:
    """[4] wxyz quaternion (any norm) -> [3, 3] rotation matrix."""
    w, x, y, z = np.asarray(wxyz, dtype=np.float64) / np.linalg.norm(wxyz)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat(R: np.ndarray) -> np.ndarray:
    """[3, 3] rotation matrix -> [4] unit wxyz quaternion with w >= 0.

    Takes the square root of the largest of the four diagonal combinations, which keeps the
    division well conditioned for every rotation (180-degree turns included).
    """
    R = np.asarray(R, dtype=np.float64)
    trace = np.trace(R)
    candidates = [trace, R[0, 0], R[1, 1], R[2, 2]]
    k = int(np.argmax(candidates))
    if k == 0:
        s = 2 * math.sqrt(1 + trace)
        q = [s / 4, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    else:
        i, j, m = k - 1, k % 3, (k + 1) % 3
        s = 2 * math.sqrt(1 + R[i, i] - R[j, j] - R[m, m])
        q = [0.0, 0.0, 0.0, 0.0]
        q[0] = (R[m, j] - R[j, m]) / s
        q[1 + i] = s / 4
        q[1 + j] = (R[j, i] + R[i, j]) / s
        q[1 + m] = (R[m, i] + R[i, m]) / s
    q = np.array(q)
    return q if q[0] >= 0 else -q


def frame_size(aspect: float, max_side: int) -> tuple[int, int]:
    """(width, height) with the given aspect and the longer side `max_side` pixels."""
    if aspect >= 1:
        return max_side, max(1, round(max_side / aspect))
    return max(1, round(max_side * aspect)), max_side


def pose_to_cameras(pose: ViewPose, max_side: int, device: torch.device | str = "cpu") -> Cameras:
    """A batch of one gsedit camera seeing what the browser's camera sees, at most `max_side` wide.

    Square pixels, principal point at the image centre (gsedit's pixel-centre convention).
    """
    if not (0 < pose.fov_y < math.pi) or pose.aspect <= 0:
        raise ValueError(
            f"camera needs 0 < fov_y < pi and aspect > 0, got {pose.fov_y}, {pose.aspect}"
        )
    width, height = frame_size(pose.aspect, max_side)
    R = quat_to_matrix(pose.wxyz)  # camera-to-world
    w2c = np.eye(4)
    w2c[:3, :3] = R.T
    w2c[:3, 3] = -R.T @ np.asarray(pose.position, dtype=np.float64)
    focal = 0.5 * height / math.tan(pose.fov_y / 2)
    K = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]])
    return Cameras(
        torch.tensor(w2c, dtype=torch.float32, device=device)[None],
        torch.tensor(K, dtype=torch.float32, device=device)[None],
        width,
        height,
        ["view"],
    )


def cameras_to_poses(cameras: Cameras) -> list[ViewPose]:
    """The browser poses of gsedit cameras (for frustums and for jumping to a training view)."""
    c2w = cameras.camtoworlds.detach().double().cpu().numpy()  # [C, 4, 4]
    Ks = cameras.Ks.detach().double().cpu().numpy()
    aspect = cameras.width / cameras.height
    return [
        ViewPose(
            matrix_to_quat(m[:3, :3]),
            m[:3, 3].copy(),
            2 * math.atan(0.5 * cameras.height / K[1, 1]),
            aspect,
        )
        for m, K in zip(c2w, Ks)
    ]


def matching_view(cameras: Cameras, pose: ViewPose, tolerance: float = 1e-3) -> int | None:
    """Index of the camera of `cameras` at the pose of `pose` (position and axes), else None.

    `tolerance` is relative to the distance between the cameras' centres and their mean, so it
    does not depend on the scene's units.
    """
    centres = cameras.centers.detach().double().cpu().numpy()  # [C, 3]
    scale = max(float(np.linalg.norm(centres - centres.mean(0), axis=1).max()), 1.0)
    R = quat_to_matrix(pose.wxyz)
    rotations = cameras.camtoworlds.detach().double().cpu().numpy()[:, :3, :3]
    for i, (centre, rot) in enumerate(zip(centres, rotations)):
        close = np.linalg.norm(centre - pose.position) <= tolerance * scale
        if close and np.abs(rot - R).max() <= 10 * tolerance:
            return i
    return None


def up_direction(cameras: Cameras | None) -> np.ndarray:
    """[3] the world's up as the cameras agree on it: the mean of their image-up axes (-y).

    Captures are shot mostly level, so their -y axes cluster around the world's up; orbit cameras
    point it exactly along their circle's axis. Without cameras: -y (the .ply's y-down
    convention, gsedit's orbits and synthetic scenes).
    """
    if cameras is None:
        return np.array([0.0, -1.0, 0.0])
    c2w = cameras.camtoworlds.detach().double().cpu().numpy()
    up = -c2w[:, :3, 1].mean(axis=0)
    norm = np.linalg.norm(up)
    return up / norm if norm > 1e-6 else np.array([0.0, -1.0, 0.0])


def warp_between(image: Tensor, K_src: Tensor, K_dst: Tensor, width: int, height: int) -> Tensor:
    """Resamples `image` [H, W] or [H, W, D] seen by pinhole K_src into a camera at the same pose
    with intrinsics K_dst and size (width, height); outside the source image is 0.

    Two pinhole cameras at one pose differ by a 2D affine map of their pixel coordinates, so a
    training view's mask lines up exactly with a browser view of another field of view and aspect.
    """
    flat = image.ndim == 2
    src = (image[..., None] if flat else image).permute(2, 0, 1)[None].float()  # [1, D, Hs, Ws]
    hs, ws = src.shape[-2:]
    K_src, K_dst = K_src.double().cpu(), K_dst.double().cpu()
    u = torch.arange(width, dtype=torch.float64) + 0.5  # pixel centres of the destination
    v = torch.arange(height, dtype=torch.float64) + 0.5
    x = (u - K_dst[0, 2]) / K_dst[0, 0] * K_src[0, 0] + K_src[0, 2]  # source pixel coordinates
    y = (v - K_dst[1, 2]) / K_dst[1, 1] * K_src[1, 1] + K_src[1, 2]
    gx, gy = 2 * x / ws - 1, 2 * y / hs - 1  # grid_sample's [-1, 1] with align_corners=False
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)[None]  # [1, H, W, 2]
    out = F.grid_sample(
        src, grid.to(src), mode="bilinear", padding_mode="zeros", align_corners=False
    )
    out = out[0].permute(1, 2, 0).to(image.device)  # [H, W, D]
    return out[..., 0] if flat else out
