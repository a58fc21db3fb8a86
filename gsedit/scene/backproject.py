"""Lifting per-view maps to one value per Gaussian by exact back-projection (no training).

Each Gaussian's value is the blending-weight-weighted mean of the pixel values it contributes to:
v_i = sum_j w_ij r_j / sum_j w_ij over all pixels j of all views. The sums for any number of maps
(the relevance and every label) come out of ONE pass of the renderer
(`gsedit.render.rasterize.blend_weight_sums`): a forward walk of the native kernels, or one
backward of probe channels through the PyTorch or gsplat rasterizer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gsedit.cameras import Cameras


@dataclass(frozen=True)
class FrozenGeometry:
    """A Gaussian scene's geometry, detached and activated: what back-projection renders with."""

    means: Tensor  # [N, 3]
    quats: Tensor  # [N, 4]
    scales: Tensor  # [N, 3] (exp of the log scales)
    opacities: Tensor  # [N] (sigmoid of the logits)
    backend: str  # the rasterizer backend, as GaussianSceneConfig.backend
    render_batch: int  # views rendered at once

    @classmethod
    def from_params(cls, params, backend: str, render_batch: int) -> FrozenGeometry:
        """From gsplat-named parameters (log scales, logit opacities)."""
        return cls(
            means=params["means"].detach(),
            quats=params["quats"].detach(),
            scales=torch.exp(params["scales"].detach()),
            opacities=torch.sigmoid(params["opacities"].detach()),
            backend=backend,
            render_batch=render_batch,
        )

    def __len__(self) -> int:
        return self.means.shape[0]


def render_features(geometry: FrozenGeometry, cameras: Cameras, features: Tensor) -> Tensor:
    """[C, H, W, D] per-Gaussian `features` [N, D] composited over the frozen geometry."""
    from gsedit.render.rasterize import rasterize

    g = geometry
    return rasterize(
        means=g.means, quats=g.quats, scales=g.scales, opacities=g.opacities, colors=features,
        viewmats=cameras.viewmats, Ks=cameras.Ks, width=cameras.width, height=cameras.height,
        sh_degree=None, backend=g.backend,
    ).colors


def blending_weight_sums(geometry: FrozenGeometry, cameras: Cameras, maps: Tensor) -> tuple[Tensor, Tensor]:
    """([N, L], [N]) sum_j w_ij r_lj and sum_j w_ij for maps [L, C, H, W] seen by `cameras`."""
    from gsedit.render.rasterize import blend_weight_sums

    g = geometry
    device = g.means.device
    n_maps = maps.shape[0]
    sums = torch.zeros(len(g), n_maps + 1, device=device)
    cameras = cameras.to(device)
    maps = maps.to(device, torch.float32)
    step = max(1, g.render_batch)
    for start in range(0, len(cameras), step):
        cams = cameras[start : start + step]
        sums += blend_weight_sums(
            means=g.means, quats=g.quats, scales=g.scales, opacities=g.opacities,
            viewmats=cams.viewmats, Ks=cams.Ks, width=cams.width, height=cams.height,
            maps=maps[:, start : start + step], backend=g.backend,
        )
    return sums[:, :n_maps], sums[:, n_maps]


def backproject(geometry: FrozenGeometry, cameras: Cameras, maps: Tensor, min_weight: float = 1e-6) -> Tensor:
    """Per-Gaussian weighted mean of `maps`, [N] for maps [C, H, W] or [N, L] for [L, C, H, W]
    (all L in one pass); 0 for Gaussians no pixel sees."""
    weighted, total = blending_weight_sums(geometry, cameras, maps if maps.ndim == 4 else maps[None])
    total = total[:, None]
    values = torch.where(
        total > min_weight, weighted / total.clamp_min(min_weight), torch.zeros_like(weighted)
    )
    return values if maps.ndim == 4 else values[:, 0]
