"""Lifting per-view maps to one value per Gaussian by exact back-projection (no training).

Each Gaussian's value is the blending-weight-weighted mean of the pixel values it contributes to:
v_i = sum_j w_ij r_j / sum_j w_ij over all pixels j of all views. The sums for any number of maps
(the relevance and every label) come out of ONE pass of the renderer
(`gsedit.render.rasterize.blend_weight_sums`): a forward walk of the native kernels, or one
backward of probe channels through the PyTorch or gsplat rasterizer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from gsedit.cameras import Cameras

if TYPE_CHECKING:
    from gsedit.scene.gaussian_scene import GaussianScene


def render_features(scene: GaussianScene, cameras: Cameras, features: Tensor) -> Tensor:
    """[C, H, W, D] per-Gaussian `features` [N, D] composited over the scene's frozen geometry."""
    from gsedit.render.rasterize import rasterize

    p = scene.params
    return rasterize(
        means=p["means"].detach(),
        quats=p["quats"].detach(),
        scales=torch.exp(p["scales"].detach()),
        opacities=torch.sigmoid(p["opacities"].detach()),
        colors=features,
        viewmats=cameras.viewmats,
        Ks=cameras.Ks,
        width=cameras.width,
        height=cameras.height,
        sh_degree=None,
        backend=scene.config.backend,
    ).colors


def blending_weight_sums(
    scene: GaussianScene, cameras: Cameras, maps: Tensor
) -> tuple[Tensor, Tensor]:
    """([N, L], [N]) sum_j w_ij r_lj and sum_j w_ij for maps [L, C, H, W] seen by `cameras`."""
    from gsedit.render.rasterize import blend_weight_sums

    p = scene.params
    n_maps = maps.shape[0]
    sums = torch.zeros(len(scene), n_maps + 1, device=scene.device)
    cameras = cameras.to(scene.device)
    maps = maps.to(scene.device, torch.float32)
    step = max(1, scene.config.render_batch)
    for start in range(0, len(cameras), step):
        cams = cameras[start : start + step]
        sums += blend_weight_sums(
            means=p["means"].detach(),
            quats=p["quats"].detach(),
            scales=torch.exp(p["scales"].detach()),
            opacities=torch.sigmoid(p["opacities"].detach()),
            viewmats=cams.viewmats,
            Ks=cams.Ks,
            width=cams.width,
            height=cams.height,
            maps=maps[:, start : start + step],
            backend=scene.config.backend,
        )
    return sums[:, :n_maps], sums[:, n_maps]


def backproject(
    scene: GaussianScene, cameras: Cameras, maps: Tensor, min_weight: float = 1e-6
) -> Tensor:
    """Per-Gaussian weighted mean of `maps`, [N] for maps [C, H, W] or [N, L] for [L, C, H, W]
    (all L in one pass); 0 for Gaussians no pixel sees."""
    weighted, total = blending_weight_sums(scene, cameras, maps if maps.ndim == 4 else maps[None])
    total = total[:, None]
    values = torch.where(
        total > min_weight, weighted / total.clamp_min(min_weight), torch.zeros_like(weighted)
    )
    return values if maps.ndim == 4 else values[:, 0]
