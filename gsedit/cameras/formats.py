"""`load_cameras`: one entry point for every camera source, the format detected from the path.

Sources: `orbit:N[@WxH]`, an INRIA `cameras.json` (a JSON list), a nerfstudio / instant-ngp
`transforms.json` (a JSON object with `frames`), a COLMAP sparse model folder (or a dataset root
holding `sparse/0`), a trainer's output folder (its training cameras in its scene's frame, see
cameras/trainer_folders.py), or a folder holding a `transforms.json` or `cameras.json`.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from gsedit.cameras import checks
from gsedit.cameras.camera import Cameras
from gsedit.cameras.colmap import find_colmap_model, read_colmap_model, write_colmap_model
from gsedit.cameras.inria import read_inria_cameras, write_inria_cameras
from gsedit.cameras.nerfstudio import read_transforms_json, write_transforms_json
from gsedit.cameras.orbit import OrbitConfig, orbit_cameras, parse_orbit_spec
from gsedit.cameras.trainer_folders import trainer_cameras, trainer_kind
from gsedit.errors import InputFileError

__all__ = [
    "OrbitConfig",
    "load_cameras",
    "orbit_cameras",
    "read_colmap_model",
    "read_inria_cameras",
    "read_transforms_json",
    "training_cameras",
    "write_colmap_model",
    "write_inria_cameras",
    "write_transforms_json",
]


def load_cameras(spec: str | Path, bounds: tuple[Tensor, Tensor] | None = None) -> Cameras:
    """Cameras from `spec`; `bounds` = (min [3], max [3]) of the scene, needed by `orbit:` only."""
    orbit = parse_orbit_spec(str(spec))
    if orbit is not None:
        if bounds is None:
            raise InputFileError(
                spec, "orbit cameras need the scene bounds; pass a scene with them"
            )
        n, width, height = orbit
        return orbit_cameras(n, bounds, width, height)
    path = Path(spec)
    if path.is_dir():
        return _load_folder(path)
    if not path.exists():
        raise InputFileError(
            path,
            "camera file or folder not found (expected cameras.json, transforms.json, "
            "a COLMAP model folder or orbit:N[@WxH])",
        )
    return _load_json(path)


def training_cameras(spec: str, scene, max_side: int | None) -> Cameras:
    """The cameras of `spec` (any --cameras source) at most `max_side` px, on the device of `scene`
    (anything with `bounds()` and `device`: a Scene), an orbit circling its bounds."""
    return load_cameras(spec, bounds=scene.bounds()).limited(max_side).to(scene.device)


def _load_json(path: Path) -> Cameras:
    """An INRIA list or a nerfstudio object, told apart by the JSON content, not the file name."""
    data = checks.read_json(path)
    if isinstance(data, list):
        return read_inria_cameras(path, data)
    if isinstance(data, dict) and "frames" in data:
        return read_transforms_json(path, data)
    raise InputFileError(
        path,
        "JSON of an unknown layout: expected an INRIA cameras.json (a list of cameras) or a "
        "nerfstudio/instant-ngp transforms.json (an object with a 'frames' list)",
    )


def _load_folder(folder: Path) -> Cameras:
    if trainer_kind(folder) is not None:
        return trainer_cameras(folder)
    if find_colmap_model(folder) is not None:
        return read_colmap_model(folder)
    for name in ("transforms.json", "cameras.json"):
        if (folder / name).is_file():
            return _load_json(folder / name)
    raise InputFileError(
        folder,
        "no cameras found in this folder: expected a COLMAP model (cameras and images "
        ".txt/.bin, here or in sparse/0), a transforms.json or a cameras.json",
    )
