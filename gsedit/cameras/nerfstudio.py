"""nerfstudio / instant-ngp / Blender `transforms.json`.

`frames[i].transform_matrix` is camera-to-world in OpenGL axes (x right, y up, z backward);
gsedit uses OpenCV axes (x right, y down, z forward), so the camera's y and z columns flip.
Intrinsics (`fl_x fl_y cx cy w h`) sit per frame or at the top level (a frame's own win);
Blender and instant-ngp files may give `camera_angle_x` (and `camera_angle_y`) instead of focal
lengths, and Blender files carry no image size, which is then read from the first image. Pixel
centres sit at +0.5 in nerfstudio as in gsplat, so `cx cy` are used unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from gsedit.atomic import write_json
from gsedit.cameras import checks
from gsedit.cameras.camera import Cameras
from gsedit.errors import InputFileError

GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])  # right-multiplied: flips the camera's y and z axes
PINHOLE_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "PERSPECTIVE")
DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


def read_transforms_json(path: str | Path, data: Any | None = None) -> Cameras:
    """Reads a `transforms.json` (`data`: its already parsed content, if the caller has it)."""
    path = Path(path)
    if data is None:
        data = checks.read_json(path)
    if not isinstance(data, dict) or "frames" not in data:
        raise InputFileError(path, "a transforms.json is a JSON object with a 'frames' list")
    frames = data["frames"]
    if not isinstance(frames, list):
        raise InputFileError(path, f"'frames' should be a list, found {checks.short(frames)}")
    camtoworlds, Ks, sizes, names, distorted = [], [], [], [], set()
    for i, frame in enumerate(frames):
        where = f"frame {i}"
        name = str(checks.require(path, where, frame, "file_path"))
        camtoworlds.append(_camtoworld(path, where, frame))
        K, size = _intrinsics(path, where, frame, data, name)
        Ks.append(K)
        sizes.append(size)
        names.append(name)
        distorted |= {k for k in DISTORTION_KEYS if _lookup(frame, data, k) not in (None, 0, 0.0)}
    if distorted:
        checks.warn_distortion(
            path, f"distortion coefficients {', '.join(sorted(distorted))} are set"
        )
    return checks.assemble(path, camtoworlds, Ks, sizes, names)


def _lookup(frame: dict, meta: dict, key: str) -> Any:
    """A frame's own value, else the top-level one, else None."""
    return frame[key] if key in frame else meta.get(key)


def _camtoworld(path: Path, where: str, frame: dict) -> np.ndarray:
    """OpenCV camera-to-world [4, 4] from an OpenGL `transform_matrix` [4, 4] or [3, 4]."""
    value = checks.require(path, where, frame, "transform_matrix")
    m = checks.array(path, where, "transform_matrix", value, [(4, 4), (3, 4)])
    checks.check_rotation(path, where, "transform_matrix", m[:3, :3])
    c2w = np.eye(4)
    c2w[:3, :] = m[:3, :]
    return c2w @ GL_TO_CV


def _intrinsics(
    path: Path, where: str, frame: dict, meta: dict, name: str
) -> tuple[np.ndarray, tuple[int, int]]:
    """(K [3, 3], (width, height)) of one frame."""
    model = _lookup(frame, meta, "camera_model")
    if model is not None and model not in PINHOLE_MODELS:
        raise InputFileError(
            path,
            f"{where}: camera_model {model!r} is not a pinhole model ({', '.join(PINHOLE_MODELS)})",
        )
    w, h = _lookup(frame, meta, "w"), _lookup(frame, meta, "h")
    if w is None or h is None:
        w, h = _size_from_image(path, where, name)
    width, height = checks.image_size(path, where, w, h, keys=("w", "h"))
    fx = _focal(path, where, frame, meta, "x", width)
    fy = _focal(path, where, frame, meta, "y", height, fallback=fx)  # square pixels by default
    cx = _optional_number(path, where, frame, meta, "cx", width / 2)
    cy = _optional_number(path, where, frame, meta, "cy", height / 2)
    return checks.intrinsics(fx, fy, cx, cy), (width, height)


def _focal(
    path: Path,
    where: str,
    frame: dict,
    meta: dict,
    axis: str,
    size: int,
    fallback: float | None = None,
) -> float:
    """`fl_{axis}`, else from the field of view `camera_angle_{axis}` over `size` pixels, else `fallback`."""
    fl, angle = _lookup(frame, meta, f"fl_{axis}"), _lookup(frame, meta, f"camera_angle_{axis}")
    if fl is not None:
        return checks.positive(path, where, f"fl_{axis}", fl)
    if angle is None and fallback is not None:
        return fallback
    if angle is None:
        raise InputFileError(
            path,
            f"{where} has no 'fl_{axis}' or 'camera_angle_{axis}' (in the frame or at the top level)",
        )
    angle = checks.positive(path, where, f"camera_angle_{axis}", angle)
    if angle >= math.pi:
        raise InputFileError(path, f"{where}: 'camera_angle_{axis}' is {angle} rad, not below pi")
    return 0.5 * size / math.tan(0.5 * angle)


def _optional_number(
    path: Path, where: str, frame: dict, meta: dict, key: str, default: float
) -> float:
    value = _lookup(frame, meta, key)
    return default if value is None else checks.number(path, where, key, value)


def _size_from_image(path: Path, where: str, name: str) -> tuple[int, int]:
    """(width, height) of the frame's image; Blender files name it without the `.png`."""
    from PIL import Image

    for candidate in (path.parent / name, path.parent / f"{name}.png"):
        if candidate.is_file():
            with Image.open(candidate) as im:
                return im.size
    raise InputFileError(
        path,
        f"{where} has no 'w'/'h' (in the frame or at the top level) and its image {name!r} "
        "was not found next to the file to read the size from",
    )


def write_transforms_json(cams: Cameras, path: str | Path) -> None:
    """Writes `cams` as a nerfstudio `transforms.json` (atomically), `file_path` = camera name.

    Intrinsics go to the top level when all cameras share them, else into every frame.
    """
    camtoworlds, Ks = checks.as_numpy(cams)
    gl = camtoworlds @ GL_TO_CV  # GL_TO_CV is its own inverse
    shared = bool(np.all(Ks == Ks[:1]))
    frames = [
        {
            "file_path": name,
            "transform_matrix": m.tolist(),
            **({} if shared else _intrinsic_keys(K)),
        }
        for name, m, K in zip(cams.names, gl, Ks)
    ]
    meta = {"camera_model": "OPENCV", "w": cams.width, "h": cams.height}
    if shared:
        meta.update(_intrinsic_keys(Ks[0]))
    write_json(path, {**meta, "frames": frames})


def _intrinsic_keys(K: np.ndarray) -> dict[str, float]:
    return {
        "fl_x": float(K[0, 0]),
        "fl_y": float(K[1, 1]),
        "cx": float(K[0, 2]),
        "cy": float(K[1, 2]),
    }
