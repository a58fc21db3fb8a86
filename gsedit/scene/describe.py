"""What `gsedit info` says about a scene of either backend: size, bounds, channels, labels, and for a
trainer's output folder the trainer, the step loaded and its cameras."""

from __future__ import annotations

from pathlib import Path

from gsedit.scene.base import Scene
from gsedit.scene.files import load_scene_file, orient_spz, scene_backend


def describe_scene(path: str | Path, iteration: int | None = None, spz_axes: str = "auto") -> list[tuple[str, str]]:
    """(name, value) lines describing the scene at `path` (a splat file, a trainer's output folder
    at `iteration` (default: its last), or a nerfacto .ckpt); an .spz in `spz_axes` (auto: RUB,
    there are no cameras to choose by).

    Raises:
        InputFileError: the file is missing, of another kind, or broken.
    """
    path = Path(path)
    backend = scene_backend(path)
    scene, axes_note = orient_spz(load_scene_file(path, "cpu", iteration), None, path, spz_axes)
    channels = ", ".join(sorted(scene.channel_names())) or "none"
    if backend == "nerfacto":
        size, channel_lines = _nerfacto_size(scene), [("channels", channels)]
    else:
        size, channel_lines = _gaussian_size(scene), [("extras", channels)]
    lo, hi = scene.bounds()
    lines = [("file", str(path)), ("backend", backend), *_trainer_lines(path, iteration), *size]
    if axes_note:
        lines.append(("spz axes", axes_note.split(": ", 1)[1]))
    lines += [("bounds min", _vector(lo)), ("bounds max", _vector(hi)), *channel_lines]
    labels = scene.label_names()
    if labels:
        lines.append(("labels", ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))))
    return lines


def _trainer_lines(path: Path, iteration: int | None) -> list[tuple[str, str]]:
    """What a trainer folder holds: which trainer, the step loaded, its cameras (or why not)."""
    from gsedit.cameras.trainer_folders import trainer_cameras
    from gsedit.errors import InputFileError
    from gsedit.scene.files import trainer_source
    from gsedit.scene.trainer_folders import find_trainer_scene

    source = trainer_source(path, iteration)
    if source is None:
        return []
    lines = [("trainer", find_trainer_scene(*source).describe())]
    try:
        cams = trainer_cameras(source[0])
        lines.append(("cameras", f"{len(cams)} views, {cams.width}x{cams.height}, in the scene's frame"))
    except InputFileError as e:
        lines.append(("cameras", f"unavailable: {e}"))
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
