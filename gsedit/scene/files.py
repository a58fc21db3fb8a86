"""Scene files by kind: a 3DGS `.ply` (GaussianScene) or a gsedit nerfacto `.ckpt` (NerfactoScene)."""

from __future__ import annotations

from pathlib import Path

import torch

from gsedit.errors import InputFileError
from gsedit.scene.base import Scene

SCENE_SUFFIXES = {".ply": "3dgs", ".ckpt": "nerfacto"}


def scene_backend(path: str | Path) -> str:
    """'3dgs' or 'nerfacto', from the file's suffix."""
    path = Path(path)
    backend = SCENE_SUFFIXES.get(path.suffix.lower())
    if backend is None:
        raise InputFileError(path, "expected a 3D Gaussian splatting .ply or a gsedit nerfacto .ckpt scene.")
    return backend


def scene_label_names(path: str | Path) -> dict[int, str]:
    """Label id -> name of a scene file: a .ply's sidecar, or the labels inside a nerfacto .ckpt."""
    path = Path(path)
    if scene_backend(path) == "nerfacto":
        return load_scene_file(path, "cpu").label_names()
    from gsedit.scene.labels import read_labels

    return read_labels(path)


def load_scene_file(path: str | Path, device: str | torch.device) -> Scene:
    """Loads a scene file on `device`; the nerfacto backend is imported only for a .ckpt."""
    path = Path(path)
    if scene_backend(path) == "nerfacto":
        from gsedit.scene.nerfacto import NerfactoScene

        return NerfactoScene.load(path, device)
    from gsedit.scene.gaussian_scene import GaussianScene

    return GaussianScene.load(path, device)
