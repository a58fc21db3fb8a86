"""Validation shared by the camera readers: every problem becomes an InputFileError naming the file."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gsedit.cameras.camera import Cameras
from gsedit.errors import InputFileError

ROTATION_TOL = 1e-3  # how far det(R) and R Rᵀ may be from 1 and I (float32 files, rounded text)
#: the longest image side gsedit accepts: beyond any camera's sensor, and one 16k x 16k view
#: already needs 3 GB per float image; larger sizes are typos or forged files
MAX_IMAGE_SIDE = 16384


def read_json(path: Path) -> Any:
    """Parses a JSON file; a missing file or malformed JSON is an InputFileError."""
    if not path.is_file():
        raise InputFileError(path, "camera file not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputFileError(path, f"not a JSON file ({e})") from e


def short(value: Any, limit: int = 80) -> str:
    """repr(value), cut to `limit` characters so that an error stays one readable paragraph."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def require(path: Path, where: str, entry: Any, key: str) -> Any:
    """`entry[key]`, or an error naming the entry and the missing key."""
    if not isinstance(entry, dict):
        raise InputFileError(path, f"{where} should be a JSON object, found {type(entry).__name__}")
    if key not in entry:
        raise InputFileError(
            path, f"{where} has no '{key}' (it has: {', '.join(entry) or 'nothing'})"
        )
    return entry[key]


def number(path: Path, where: str, key: str, value: Any) -> float:
    """A finite float, or an error naming the entry and the key."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputFileError(path, f"{where}: '{key}' should be a number, found {short(value)}")
    if not math.isfinite(value):
        raise InputFileError(path, f"{where}: '{key}' is not finite ({value})")
    return float(value)


def positive(path: Path, where: str, key: str, value: Any) -> float:
    """A finite number > 0 (focal lengths, image sizes)."""
    x = number(path, where, key, value)
    if x <= 0:
        raise InputFileError(path, f"{where}: '{key}' must be positive, found {value}")
    return x


def array(
    path: Path, where: str, key: str, value: Any, shapes: list[tuple[int, ...]]
) -> np.ndarray:
    """A finite float64 array of one of `shapes`, or an error naming the entry and the key."""
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        m = None
    if m is None or m.shape not in shapes:
        expected = " or ".join("x".join(map(str, s)) for s in shapes)
        raise InputFileError(
            path, f"{where}: '{key}' should be a {expected} array of numbers, found {short(value)}"
        )
    if not np.isfinite(m).all():
        raise InputFileError(path, f"{where}: '{key}' has non-finite values")
    return m


def check_rotation(path: Path, where: str, key: str, R: np.ndarray) -> None:
    """R [3, 3] must be a proper rotation: orthonormal and det +1, within ROTATION_TOL."""
    det = float(np.linalg.det(R))
    off = float(np.abs(R @ R.T - np.eye(3)).max())
    if abs(det - 1.0) > ROTATION_TOL or off > ROTATION_TOL:
        raise InputFileError(
            path,
            f"{where}: '{key}' is not a rotation (det {det:.6g}, largest |R Rᵀ - I| entry {off:.3g}; "
            f"both must be within {ROTATION_TOL} of a rotation)",
        )


def rigid_inverse(T: np.ndarray) -> np.ndarray:
    """Inverse of rigid transforms [..., 4, 4] (exact, unlike a general inverse of float32 input)."""
    R, t = T[..., :3, :3], T[..., :3, 3:]
    out = np.zeros_like(T)
    out[..., :3, :3] = np.swapaxes(R, -1, -2)
    out[..., :3, 3:] = -np.swapaxes(R, -1, -2) @ t
    out[..., 3, 3] = 1.0
    return out


def intrinsics(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """K [3, 3] in pixels; the principal point uses the pixel-centre-at-0.5 convention of gsplat."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def assemble(
    path: Path,
    camtoworlds: list[np.ndarray],
    Ks: list[np.ndarray],
    sizes: list[tuple[int, int]],
    names: list[str],
) -> Cameras:
    """Cameras from per-view OpenCV camera-to-world [4, 4], K [3, 3] and (width, height).

    gsplat renders a batch at one image size, so a file mixing sizes is refused.
    """
    if not camtoworlds:
        raise InputFileError(path, "contains no cameras")
    distinct = sorted(set(sizes))
    if len(distinct) > 1:
        listed = ", ".join(f"{w}x{h}" for w, h in distinct)
        raise InputFileError(
            path,
            f"cameras of different image sizes ({listed}); gsedit renders all views at one size, "
            "so split the file or resize the images to one size first",
        )
    viewmats = rigid_inverse(np.stack(camtoworlds))
    width, height = distinct[0]
    return Cameras(
        torch.from_numpy(viewmats).float(),
        torch.from_numpy(np.stack(Ks)).float(),
        width,
        height,
        names,
    )


def as_numpy(cams: Cameras) -> tuple[np.ndarray, np.ndarray]:
    """(camtoworlds [C, 4, 4], Ks [C, 3, 3]) in float64, for the writers."""
    viewmats = cams.viewmats.detach().cpu().double().numpy()
    return rigid_inverse(viewmats), cams.Ks.detach().cpu().double().numpy()


def image_size(
    path: Path, where: str, width: Any, height: Any, keys: tuple[str, str] = ("width", "height")
) -> tuple[int, int]:
    """(width, height) as positive integers; `keys` are the file's names for them."""
    w = positive(path, where, keys[0], width)
    h = positive(path, where, keys[1], height)
    if w != int(w) or h != int(h):
        raise InputFileError(
            path, f"{where}: image size must be whole pixels, found {width}x{height}"
        )
    if max(w, h) > MAX_IMAGE_SIDE:
        raise InputFileError(
            path,
            f"{where}: image size {int(w)}x{int(h)} is beyond the largest gsedit accepts "
            f"({MAX_IMAGE_SIDE} px a side); check the file's {keys[0]} and {keys[1]}",
        )
    return int(w), int(h)


def warn_distortion(path: Path, detail: str) -> None:
    """Distortion is dropped (gsplat's pinhole model); the user should undistort the images."""
    warnings.warn(
        f"{path}: {detail}; gsedit ignores lens distortion and uses only the pinhole part, so "
        "undistort the images first (e.g. `colmap image_undistorter`) for exact results",
        stacklevel=3,
    )
