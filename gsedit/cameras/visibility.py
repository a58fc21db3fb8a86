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
MAX_POINTS = 200_000  # a fixed-stride subset of larger scenes is enough to tell


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
    means, radii = means.double().cpu(), radii.double().cpu()
    viewmats, Ks = cameras.viewmats.double().cpu(), cameras.Ks.double().cpu()
    inside, span, front = [], [], torch.zeros(len(means), dtype=torch.bool)
    for viewmat, K in zip(viewmats, Ks):
        cam = means @ viewmat[:3, :3].T + viewmat[:3, 3]  # [N, 3] camera space
        z = cam[:, 2]
        ahead = z > NEAR
        front |= ahead
        z = z.clamp_min(NEAR)
        u = K[0, 0] * cam[:, 0] / z + K[0, 2]  # [N] pixels
        v = K[1, 1] * cam[:, 1] / z + K[1, 2]
        seen = ahead & (u >= 0) & (u < cameras.width) & (v >= 0) & (v < cameras.height)
        inside.append(int(seen.sum()))
        span.append(_footprint_span(u[seen], v[seen], (K[0, 0] * radii / z)[seen], cameras.width, cameras.height))
    return Visibility(torch.tensor(inside), torch.tensor(span), int(front.sum()))


def _footprint_span(u: Tensor, v: Tensor, r: Tensor, width: int, height: int) -> float:
    """Extent of the discs (u, v, r) [M] within the image, as a fraction of its longer side."""
    if len(u) == 0:
        return 0.0
    wide = ((u + r).max().clamp(max=width) - (u - r).min().clamp(min=0)) / width
    tall = ((v + r).max().clamp(max=height) - (v - r).min().clamp(min=0)) / height
    return float(max(wide, tall))


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
