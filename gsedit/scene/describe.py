"""What `gsedit info` says about a scene file of either backend: size, bounds, channels, labels."""

from __future__ import annotations

from pathlib import Path

from gsedit.scene.base import Scene
from gsedit.scene.files import load_scene_file, scene_backend


def describe_scene(path: str | Path) -> list[tuple[str, str]]:
    """(name, value) lines describing the scene file at `path` (a 3DGS .ply or a nerfacto .ckpt).

    Raises:
        InputFileError: the file is missing, of another kind, or broken.
    """
    path = Path(path)
    backend = scene_backend(path)
    scene = load_scene_file(path, "cpu")
    channels = ", ".join(sorted(scene.channel_names())) or "none"
    if backend == "nerfacto":
        size, channel_lines = _nerfacto_size(scene), [("channels", channels)]
    else:
        size, channel_lines = _gaussian_size(scene), [("extras", channels)]
    lo, hi = scene.bounds()
    lines = [("file", str(path)), ("backend", backend), *size]
    lines += [("bounds min", _vector(lo)), ("bounds max", _vector(hi)), *channel_lines]
    labels = scene.label_names()
    if labels:
        lines.append(("labels", ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))))
    return lines


def _gaussian_size(scene: Scene) -> list[tuple[str, str]]:
    return [("gaussians", f"{len(scene):,}"), ("sh degree", str(scene.gaussians.sh_degree))]


def _nerfacto_size(scene: Scene) -> list[tuple[str, str]]:
    c = scene.config
    parameters = sum(p.numel() for p in scene.network.parameters())
    grid = (
        f"{c.num_levels} levels of 2^{c.log2_hashmap_size} entries x {c.features_per_level} "
        f"features, resolution {c.base_res}-{c.max_res} ({c.implementation})"
    )
    return [
        ("steps trained", f"{scene.steps_trained:,}"),
        ("parameters", f"{parameters:,}"),
        ("hash grid", grid),
    ]


def _vector(values) -> str:
    """'[0.1, -2.0, 3.1416]' of a [3] tensor."""
    return str([round(float(v), 4) for v in values])
