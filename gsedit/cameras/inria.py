"""INRIA 3DGS `cameras.json`: what graphdeco-inria/gaussian-splatting writes next to a trained scene.

Each entry is `{id, img_name, width, height, position, rotation, fx, fy}` where `position` is the
camera centre and `rotation` the camera-to-world rotation (rows), OpenCV axes (COLMAP's): the
INRIA code builds `Rt` = world-to-camera from COLMAP's pose, inverts it, and writes the inverse's
translation and rotation. The principal point is not stored; INRIA renders it at the image centre.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from gsedit.atomic import write_json
from gsedit.cameras import checks
from gsedit.cameras.camera import Cameras
from gsedit.errors import InputFileError


def read_inria_cameras(path: str | Path, data: Any | None = None) -> Cameras:
    """Reads an INRIA `cameras.json` (`data`: its already parsed content, if the caller has it)."""
    path = Path(path)
    if data is None:
        data = checks.read_json(path)
    if not isinstance(data, list):
        raise InputFileError(
            path, f"an INRIA cameras.json is a JSON list, found {type(data).__name__}"
        )
    camtoworlds, Ks, sizes, names = [], [], [], []
    for i, entry in enumerate(data):
        c2w, K, size, name = _read_entry(path, i, entry)
        camtoworlds.append(c2w)
        Ks.append(K)
        sizes.append(size)
        names.append(name)
    return checks.assemble(path, camtoworlds, Ks, sizes, names)


def _read_entry(
    path: Path, i: int, entry: Any
) -> tuple[np.ndarray, np.ndarray, tuple[int, int], str]:
    """(camera-to-world [4, 4], K [3, 3], (width, height), name) of entry `i`."""
    where = f"entry {i}"

    def get(key: str) -> Any:
        return checks.require(path, where, entry, key)

    name = str(get("img_name"))
    width, height = checks.image_size(path, where, get("width"), get("height"))
    R = checks.array(path, where, "rotation", get("rotation"), [(3, 3)])
    checks.check_rotation(path, where, "rotation", R)
    centre = checks.array(path, where, "position", get("position"), [(3,)])
    fx = checks.positive(path, where, "fx", get("fx"))
    fy = checks.positive(path, where, "fy", get("fy"))
    c2w = np.eye(4)
    c2w[:3, :3] = R
    c2w[:3, 3] = centre
    return c2w, checks.intrinsics(fx, fy, width / 2, height / 2), (width, height), name


def write_inria_cameras(cams: Cameras, path: str | Path) -> None:
    """Writes `cams` as an INRIA `cameras.json` (atomically).

    The format has no principal point: one away from the image centre is lost (with a warning).
    """
    path = Path(path)
    camtoworlds, Ks = checks.as_numpy(cams)
    centre = np.array([cams.width / 2, cams.height / 2])
    if np.abs(Ks[:, :2, 2] - centre).max() > 1e-3:
        warnings.warn(
            f"{path}: INRIA cameras.json cannot store a principal point away from the image "
            "centre; readers will assume the centre",
            stacklevel=2,
        )
    entries = [
        {
            "id": i,
            "img_name": name,
            "width": cams.width,
            "height": cams.height,
            "position": c2w[:3, 3].tolist(),
            "rotation": c2w[:3, :3].tolist(),
            "fy": float(K[1, 1]),
            "fx": float(K[0, 0]),
        }
        for i, (name, c2w, K) in enumerate(zip(cams.names, camtoworlds, Ks))
    ]
    write_json(path, entries)
