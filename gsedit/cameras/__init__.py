"""Cameras: the camera model and readers for cameras.json, transforms.json, COLMAP and orbits."""

from gsedit.cameras.camera import Cameras

__all__ = ["Cameras"]
