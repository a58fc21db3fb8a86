"""Deterministic synthetic labelled scenes: a few coloured objects on a floor.

They stand in for real captures in the demo, the tests and the benchmarks: every Gaussian carries
the label of the object it belongs to, so true object masks can be rendered for any camera.

The world is the `.ply`'s (COLMAP's, OpenCV's): x right, y down, z forward, so up is -y and splat
viewers (SuperSplat, the INRIA viewer, gsplat's) open the scenes upright. The floor is the plane
y = 0 and the objects stand on it, at negative y.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from gsedit.scene.gaussians import Gaussians, num_sh_bases, rgb_to_sh0


@dataclass
class SyntheticObject:
    name: str
    shape: str  # "cube" | "sphere" | "cylinder" | "floor"
    center: tuple[float, float, float]  # x right, y down (up is -y), z forward
    size: float  # half-extent (cube, floor) or radius (sphere, cylinder)
    color: tuple[float, float, float]


def default_objects() -> list[SyntheticObject]:
    # -y is up; the objects stand on the floor at y = 0
    return [
        SyntheticObject("floor", "floor", (0.0, 0.0, 0.0), 1.1, (0.55, 0.55, 0.52)),
        SyntheticObject("cube", "cube", (-0.55, -0.3, -0.25), 0.3, (0.15, 0.35, 0.85)),
        SyntheticObject("sphere", "sphere", (0.5, -0.32, -0.3), 0.32, (0.2, 0.75, 0.25)),
        SyntheticObject("cylinder", "cylinder", (0.0, -0.35, 0.6), 0.22, (0.9, 0.85, 0.8)),
    ]


@dataclass
class SyntheticSceneConfig:
    """Settings of a generated labelled scene."""

    points_per_object: int = 1200
    """Gaussians sampled on each object's surface."""
    sh_degree: int = 0
    """SH degree of the generated colours (higher bands are zero)."""
    seed: int = 0
    """Seed of the sampling; the same seed gives the same scene, bit for bit."""
    objects: list[SyntheticObject] = field(default_factory=default_objects)
    """The objects; label 0 is the first object, 1 the second, and so on."""


def _unit(v: Tensor) -> Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _world(local: Tensor) -> Tensor:
    """[n, 3] world points (x right, y down, z forward) of [n, 3] (across, depth, height) offsets."""
    return torch.stack([local[:, 0], -local[:, 2], local[:, 1]], dim=1)


def _height(obj: SyntheticObject) -> float:
    """How high the centre of `obj` stands above the floor (y = 0, up is -y)."""
    return -obj.center[1]


def _sample_surface(obj: SyntheticObject, n: int, gen: torch.Generator) -> Tensor:
    """[n, 3] points on the surface of `obj`, drawn as (across, depth, height) offsets from its centre."""
    c = torch.tensor(obj.center)
    s = obj.size
    if obj.shape == "sphere":
        return c + s * _world(_unit(torch.randn(n, 3, generator=gen)))
    if obj.shape == "floor":
        xz = (torch.rand(n, 2, generator=gen) * 2 - 1) * s
        return c + _world(torch.cat([xz, torch.zeros(n, 1)], dim=1))
    if obj.shape == "cube":
        p = torch.rand(n, 3, generator=gen) * 2 - 1
        axis = torch.randint(0, 3, (n,), generator=gen)
        sign = torch.randint(0, 2, (n,), generator=gen).float() * 2 - 1
        p[torch.arange(n), axis] = sign
        return c + s * _world(p)
    if obj.shape == "cylinder":
        centre_height = _height(obj)
        height = centre_height * 2  # from the floor to twice the centre height
        theta = torch.rand(n, generator=gen) * 2 * math.pi
        h = torch.rand(n, generator=gen) * height
        local = torch.stack([s * theta.cos(), s * theta.sin(), h - centre_height], dim=1)
        top = torch.rand(n, generator=gen) < 0.25  # a lid so the top is closed
        r = s * torch.rand(n, generator=gen).sqrt()
        lid = torch.stack([r * theta.cos(), r * theta.sin(), torch.full((n,), centre_height)], 1)
        local[top] = lid[top]
        return c + _world(local)
    raise ValueError(f"unknown synthetic shape '{obj.shape}'")


def _surface_area(obj: SyntheticObject) -> float:
    s = obj.size
    return {
        "sphere": 4 * math.pi * s**2,
        "floor": 4 * s**2,
        "cube": 24 * s**2,
        "cylinder": 2 * math.pi * s * _height(obj) * 2 + math.pi * s**2,
    }[obj.shape]


def make_synthetic_scene(config: SyntheticSceneConfig | None = None) -> tuple[Gaussians, dict[int, str]]:
    """A labelled scene: (Gaussians with a `label` extra channel, {label id: object name})."""
    config = config or SyntheticSceneConfig()
    gen = torch.Generator().manual_seed(config.seed)
    means, colors, labels, scales = [], [], [], []
    for label, obj in enumerate(config.objects):
        n = config.points_per_object * (2 if obj.shape == "floor" else 1)
        pts = _sample_surface(obj, n, gen)
        # isotropic splats about as wide as the sample spacing, so surfaces render closed
        spacing = math.sqrt(_surface_area(obj) / n)
        jitter = 1 + 0.1 * torch.randn(n, 3, generator=gen)
        rgb = torch.tensor(obj.color).expand(n, 3) * (1 + 0.04 * torch.randn(n, 1, generator=gen))
        means.append(pts)
        colors.append(rgb.clamp(0, 1))
        labels.append(torch.full((n,), float(label)))
        scales.append(torch.log(spacing * 0.7 * jitter.abs()))
    n_total = sum(m.shape[0] for m in means)
    rest = num_sh_bases(config.sh_degree) - 1
    gaussians = Gaussians(
        means=torch.cat(means).float(),
        scales=torch.cat(scales).float(),
        quats=_unit(torch.randn(n_total, 4, generator=gen)).float(),
        opacities=torch.full((n_total,), 3.0),  # sigmoid(3) = 0.95: nearly opaque splats
        sh0=rgb_to_sh0(torch.cat(colors)).float().unsqueeze(1),
        shN=torch.zeros(n_total, rest, 3),
        extras={"label": torch.cat(labels)},
    )
    names = {label: obj.name for label, obj in enumerate(config.objects)}
    return gaussians, names


def scene_or_synthetic(path: str | Path | None, points_per_object: int, device):
    """The 3DGS scene at `path` (with its labels sidecar), or when None the synthetic labelled scene
    with `points_per_object` Gaussians per object: the scene of the benchmarks in tools/."""
    from gsedit.scene.gaussian_scene import GaussianScene

    if path is not None:
        return GaussianScene.load(path, device)
    gaussians, names = make_synthetic_scene(SyntheticSceneConfig(points_per_object=points_per_object))
    return GaussianScene(gaussians.to(device), names)


def write_synthetic_scene(
    path, config: SyntheticSceneConfig | None = None, n_cameras: int = 12, size: int = 128
):
    """Writes `path` (.ply), its labels sidecar and `cameras.json` beside it; returns the cameras path."""
    from gsedit.cameras.formats import orbit_cameras, write_inria_cameras
    from gsedit.scene.labels import write_labels
    from gsedit.scene.ply import write_ply

    path = Path(path)
    gaussians, names = make_synthetic_scene(config)
    write_ply(gaussians, path)
    write_labels(path, names)
    cams = orbit_cameras(n_cameras, gaussians.bounds(), size, size)
    cams_path = path.with_name("cameras.json")
    write_inria_cameras(cams, cams_path)
    return cams_path
