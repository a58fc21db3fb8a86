"""Do a scene and a set of cameras see each other? A cheap check before any work is done.

Scene and cameras from two different frames (a trainer's normalised frame against the dataset's
original one, OpenGL poses read as OpenCV) give views that miss the scene: renders of background,
or of the scene as a small object off to the side, and wasted edits. Projecting the Gaussians'
centres tells that in milliseconds. A view sees the scene when the footprints of the opaque
Gaussians whose centres lie inside it (in front of gsplat's near plane, within the image) span at
least `MIN_SPAN` of the image; a trainer's views all look at its scene, so the check fails when
fewer than `MIN_VIEWS` of the views do (none at all: no Gaussian inside any view; some: a speck,
e.g. a scale mismatch such as a missing dataparser scale, or a few views that happen to catch it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gsedit.cameras.camera import Cameras
from gsedit.errors import GseditError

NEAR = 0.01  # gsplat's default near plane
MIN_OPACITY = 1 / 255  # fainter Gaussians leave no trace in an 8-bit render
MIN_SPAN = 0.2  # what a view sees must span at least this much of its longer side
MIN_VIEWS = 0.5  # the fraction of the views that must see the scene
MAX_POINTS = 50_000  # a fixed-stride subset of larger scenes is enough to tell
VIEW_CHUNK = 32  # views projected together: bounded memory (~30 MB) for any number of views


@dataclass
class Visibility:
    """How the views see a scene: per view, the Gaussians inside it and the span they cover."""

    inside: Tensor  # [C] number of (subsampled) Gaussian centres inside each view
    span: Tensor  # [C] extent of those Gaussians' footprints, as a fraction of the view's longer side
    in_front: int  # Gaussians in front of at least one camera

    @property
    def seeing(self) -> int:
        """Views that see the scene."""
        return int((self.span >= MIN_SPAN).sum())

    @property
    def sees(self) -> bool:
        return self.seeing >= MIN_VIEWS * len(self.span)


def visibility(means: Tensor, radii: Tensor, cameras: Cameras) -> Visibility:
    """Projects `means` [N, 3] with world-space footprint radii `radii` [N] into every camera."""
    if len(means) > MAX_POINTS:
        step = -(-len(means) // MAX_POINTS)
        means, radii = means[::step], radii[::step]
    means, radii = means.float().cpu().contiguous(), radii.float().cpu().contiguous()
    parts = [_project(means, radii, cameras[i : i + VIEW_CHUNK]) for i in range(0, len(cameras), VIEW_CHUNK)]
    return Visibility(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]),
                      int(torch.stack([p[2] for p in parts]).any(dim=0).sum()))


def _project(means: Tensor, radii: Tensor, cameras: Cameras) -> tuple[Tensor, Tensor, Tensor]:
    """([C] centres inside each view, [C] their footprints' span, [N] in front of some camera)."""
    viewmats, Ks = cameras.viewmats.float().cpu(), cameras.Ks.float().cpu()
    cam = means @ viewmats[:, :3, :3].transpose(1, 2) + viewmats[:, None, :3, 3]  # [C, N, 3] camera space
    ahead = cam[..., 2] > NEAR  # [C, N]
    z = cam[..., 2].clamp_min(NEAR)
    u = Ks[:, None, 0, 0] * cam[..., 0] / z + Ks[:, None, 0, 2]  # [C, N] pixels
    v = Ks[:, None, 1, 1] * cam[..., 1] / z + Ks[:, None, 1, 2]
    r = Ks[:, None, 0, 0] * radii / z  # [C, N] footprint radii in pixels
    seen = ahead & (u >= 0) & (u < cameras.width) & (v >= 0) & (v < cameras.height)
    wide = _extent(u, r, seen, cameras.width)
    tall = _extent(v, r, seen, cameras.height)
    return seen.sum(dim=1), torch.maximum(wide, tall), ahead.any(dim=0)


def _extent(x: Tensor, r: Tensor, seen: Tensor, size: int) -> Tensor:
    """[C] extent of the seen discs (x ± r) [C, N] along one image axis, clipped to it, over its size."""
    hi = torch.where(seen, x + r, -torch.inf).amax(dim=1).clamp(max=size)
    lo = torch.where(seen, x - r, torch.inf).amin(dim=1).clamp(min=0)
    return ((hi - lo) / size).clamp(min=0)


def check_frames(means: Tensor, radii: Tensor, cameras: Cameras, scene_name: str, cameras_name: str) -> None:
    """Raises GseditError (one paragraph naming both inputs, the likely causes and their fixes)
    when the Gaussians `means` [N, 3] (footprints `radii` [N]) and `cameras` do not see each other."""
    seen = visibility(means, radii, cameras)
    if seen.sees:
        return
    if int(seen.inside.max()) == 0:
        what = (f"no Gaussian of the scene lies inside any of the {len(cameras)} views "
                f"({seen.in_front:,} of {len(means):,} are in front of some camera, all outside its image)")
    else:
        what = (f"{'none' if not seen.seeing else f'only {seen.seeing}'} of the {len(cameras)} views see it spanning "
                "a fifth of the image or more; "
                f"in the others it is outside the image or a speck (it spans {100 * float(seen.span.median()):.0f}% "
                "of the median view)")
    raise GseditError(
        f"The scene {scene_name} and the cameras {cameras_name} do not see each other: {what}. They are "
        "probably in different coordinate frames. A nerfstudio splatfacto export (ns-export gaussian-splat) is in "
        "the run's dataparser frame: add --dataparser-transforms RUN/dataparser_transforms.json to map the "
        "dataset's cameras there, or give the run folder itself as the scene or as --cameras. A gsplat result "
        "is in gsplat's normalised frame (normalize_world_space): give the gsplat results folder (with cfg.yml) "
        "as --cameras, or as the scene. Poses written in OpenGL axes (y up, z backward) but read as OpenCV ones "
        "(an INRIA cameras.json, COLMAP) look away from the scene: store OpenGL camera-to-world poses in a "
        "transforms.json, which gsedit reads as OpenGL. (If they do match, --no-frame-check goes ahead anyway.)"
    )
