"""Selecting Gaussians from clicks on a view: what a click hits, a 2D mask lifted, a region grown in 3D.

A click is a pixel of one camera. The Gaussians that blend into that pixel (their blending weights,
from one pass of the renderer, as back-projection computes them) are the seeds. With a segmentation
of the clicked view (SAM point prompts), the mask is lifted to the Gaussians by the same
back-projection; without one, the seeds grow through their 3D neighbours of similar colour (and
relevance, when the scene has that channel), so selection works offline.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from gsedit.atomic import atomic_path
from gsedit.cameras import Cameras
from gsedit.errors import GseditError, InputFileError
from gsedit.scene.backproject import FrozenGeometry, backproject, blending_weight_sums
from gsedit.scene.gaussian_scene import GaussianScene
from gsedit.scene.gaussians import Gaussians, sh0_to_rgb

RELEVANCE = "relevance"


@dataclass
class GrowConfig:
    """How a selection grows from the clicked Gaussians."""

    radius: float = 4.0
    """Neighbourhood radius, in multiples of the scene's median nearest-neighbour spacing."""
    colour_tolerance: float = 0.2
    """Largest RGB distance (colours in [0, 1]) from the seeds' mean colour that still joins."""
    relevance_tolerance: float = 0.3
    """Largest relevance difference from the seeds' mean (when the scene has a relevance channel)."""
    seed_share: float = 0.5
    """Seeds: Gaussians that give at least this share of the clicked pixel's largest blending weight."""
    max_rounds: int = 10_000
    """Upper bound on growth rounds (each adds the next ring of neighbours)."""


def click_map(camera: Cameras, u: float, v: float, radius_px: int = 1) -> Tensor:
    """[1, H, W] 1 on a small square of pixels around (u, v) in [0, 1] screen coordinates, else 0."""
    w, h = camera.width, camera.height
    x = min(max(int(u * w), 0), w - 1)
    y = min(max(int(v * h), 0), h - 1)
    out = torch.zeros(1, h, w)
    out[0, max(0, y - radius_px) : y + radius_px + 1, max(0, x - radius_px) : x + radius_px + 1] = 1
    return out


def clicked_gaussians(scene: GaussianScene, camera: Cameras, u: float, v: float, seed_share: float = 0.5) -> Tensor:
    """[K] indices of the Gaussians that make the pixel at (u, v) of `camera` (one view).

    Each Gaussian's blending weight summed over the clicked pixels; those within `seed_share` of
    the largest are the seeds (the front surface, not what shows through its edges).
    """
    geometry = scene.geometry()
    weights, _ = blending_weight_sums(geometry, camera, click_map(camera, u, v)[None])  # [N, 1]
    weights = weights[:, 0]
    if float(weights.max()) <= 0:
        return torch.zeros(0, dtype=torch.long)
    return torch.nonzero(weights >= seed_share * weights.max()).flatten().cpu()


def mask_selection(geometry: FrozenGeometry, cameras: Cameras, masks: Tensor, threshold: float = 0.5) -> Tensor:
    """[N] bool: Gaussians whose back-projected value of `masks` [C, H, W] is above `threshold`."""
    return (backproject(geometry, cameras, masks) > threshold).cpu()


def grow_selection(gaussians: Gaussians, seeds: Tensor, config: GrowConfig | None = None) -> Tensor:
    """[N] bool: `seeds` [K] and every Gaussian reachable from them through neighbours within the
    radius whose colour (and relevance) stays close to the seeds' mean."""
    config = config or GrowConfig()
    n = len(gaussians)
    selected = torch.zeros(n, dtype=torch.bool)
    if len(seeds) == 0:
        return selected
    points = gaussians.means.detach().cpu().float()  # [N, 3]
    radius = config.radius * median_spacing(points)
    candidates = torch.nonzero(_similar(gaussians, seeds, config)).flatten()  # only these may join
    selected[seeds] = True
    frontier = points[seeds]
    for _ in range(config.max_rounds):
        free = candidates[~selected[candidates]]
        if len(free) == 0 or len(frontier) == 0:
            break
        near = _near_any(points[free], frontier, radius)  # [len(free)]
        new = free[near]
        selected[new] = True
        frontier = points[new]
    return selected


def median_spacing(points: Tensor, sample: int = 2048) -> float:
    """Median distance from a Gaussian to its nearest neighbour (over a sample of `sample` of them)."""
    picked = points[torch.randperm(len(points), generator=torch.Generator().manual_seed(0))[:sample]]
    nearest = torch.full((len(picked),), float("inf"))
    for chunk in points.split(65536):
        d = torch.cdist(picked, chunk)  # [S, chunk]
        d[d == 0] = float("inf")  # the point itself
        nearest = torch.minimum(nearest, d.min(dim=1).values)
    return float(nearest[nearest.isfinite()].median()) if nearest.isfinite().any() else 1.0


def _near_any(points: Tensor, centres: Tensor, radius: float, chunk: int = 4096) -> Tensor:
    """[P] bool: each of `points` [P, 3] within `radius` of any of `centres` [M, 3]."""
    out = torch.zeros(len(points), dtype=torch.bool)
    for start in range(0, len(centres), chunk):
        out |= (torch.cdist(points, centres[start : start + chunk]) <= radius).any(dim=1)
    return out


def _similar(gaussians: Gaussians, seeds: Tensor, config: GrowConfig) -> Tensor:
    """[N] bool: colour (and relevance) within tolerance of the seeds' mean."""
    colours = sh0_to_rgb(gaussians.sh0[:, 0]).detach().cpu().float()  # [N, 3]
    ok = (colours - colours[seeds].mean(0)).norm(dim=-1) <= config.colour_tolerance
    relevance = gaussians.extras.get(RELEVANCE)
    if relevance is not None:
        values = relevance.detach().cpu().float()
        ok &= (values - values[seeds].mean()).abs() <= config.relevance_tolerance
    return ok


def remove_gaussians(scene: GaussianScene, selected: Tensor) -> GaussianScene:
    """A new scene without the `selected` [N] bool Gaussians (labels and extra channels kept)."""
    keep = ~selected.to(torch.bool).cpu()
    gaussians = scene.gaussians.to("cpu").select(keep)
    return GaussianScene(gaussians.to(scene.device), scene.labels, scene.config)


SELECTIONS_DIR = "turn_selections"


def write_selection(folder: Path, selected: Tensor) -> str:
    """Stores the `selected` [N] bool Gaussians in the session `folder`; returns the file's path
    relative to it, which a turn records (Turn.target_selection / keep_selection).

    The name is the content's hash: a file once written never changes, so a turn that refers to it
    is redone exactly by `--resume`, and the same selection given again is the same turn.
    """
    selected = torch.as_tensor(selected).to("cpu", torch.bool).flatten()
    if not bool(selected.any()):
        raise GseditError("The selection is empty: select some Gaussians (click the scene) first.")
    data = {"gaussians": len(selected), "selected": torch.nonzero(selected).flatten().tolist()}
    text = json.dumps(data, separators=(",", ":"))
    relative = f"{SELECTIONS_DIR}/{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    path = Path(folder) / relative
    if not path.is_file():
        with atomic_path(path) as tmp:
            tmp.write_text(text + "\n")
    return relative


def read_selection(folder: Path, relative: str, count: int) -> Tensor:
    """[count] bool: the selection a turn recorded (`write_selection`), over a scene of `count` Gaussians.

    Raises:
        InputFileError: the file is missing, unreadable, or made for a scene of another size.
    """
    path = Path(folder) / relative
    try:
        data = json.loads(path.read_text())
        total, indices = int(data["gaussians"]), torch.tensor(data["selected"], dtype=torch.long)
    except FileNotFoundError:
        raise InputFileError(path, "the selection this turn refers to is missing from the session folder.") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InputFileError(path, f"not a selection file written by gsedit ({exc}).") from None
    if total != count or (len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= count)):
        raise InputFileError(path, f"the selection is over {total:,} Gaussians, but the scene the turn "
                                   f"starts from has {count:,}: it was made on another turn's scene.")
    selected = torch.zeros(count, dtype=torch.bool)
    selected[indices] = True
    return selected


def as_selection(folder: Path, selection, count: int) -> Tensor | None:
    """[count] bool from a selection given as a tensor/array, a recorded file's name, or None (None)."""
    if selection is None:
        return None
    if isinstance(selection, str):
        return read_selection(folder, selection, count)
    selected = torch.as_tensor(selection).to("cpu", torch.bool).flatten()
    if len(selected) != count:
        raise GseditError(f"The selection has {len(selected):,} entries; the scene has {count:,} Gaussians.")
    return selected


def sam_selection(scene: GaussianScene, camera: Cameras, points: Tensor, positive: Tensor, segmenter
                  ) -> tuple[Tensor, Tensor]:
    """The Gaussians of SAM's mask for clicks on one view: ([N] bool selection, [H, W] bool mask).

    Args:
        camera: the clicked view (one camera); its render is what SAM segments.
        points: [K, 2] (x, y) pixel coordinates of the clicks in `camera`.
        positive: [K] bool, False for negative clicks.
        segmenter: a gsedit.models.sam_points.SamPointSegmenter.
    """
    with torch.no_grad():
        image = scene.render(camera).rgb[0]  # [H, W, 3]
    mask = segmenter.segment(image, points, positive)  # [H, W]
    return mask_selection(scene.geometry(), camera, mask[None].float().to(scene.device)), mask
