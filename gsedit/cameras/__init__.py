"""Cameras: the camera model and readers for cameras.json, transforms.json, COLMAP and orbits."""

from gsedit.cameras.camera import Cameras
from gsedit.cameras.formats import (
    OrbitConfig,
    load_cameras,
    orbit_cameras,
    read_colmap_model,
    read_inria_cameras,
    read_transforms_json,
    write_colmap_model,
    write_inria_cameras,
    write_transforms_json,
)

__all__ = [
    "Cameras",
    "OrbitConfig",
    "load_cameras",
    "orbit_cameras",
    "read_colmap_model",
    "read_inria_cameras",
    "read_transforms_json",
    "write_colmap_model",
    "write_inria_cameras",
    "write_transforms_json",
]
