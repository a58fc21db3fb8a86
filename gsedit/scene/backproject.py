"""Lifting per-view maps to one value per Gaussian by exact back-projection (no training).

Each Gaussian's value is the blending-weight-weighted mean of the pixel values it contributes to:
v_i = sum_j w_ij r_j / sum_j w_ij over all pixels j of all views. Both sums come out of ONE backward
pass of the renderer: render two probe channels that are zero per Gaussian, take
L = sum_j (R_j * c0_j + c1_j); then dL/dprobe_i0 = sum_j w_ij r_j and dL/dprobe_i1 = sum_j w_ij.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from gsedit.cameras import Cameras

if TYPE_CHECKING:
    from gsedit.scene.gaussian_scene import GaussianScene


def render_features(scene: "GaussianScene", cameras: Cameras, features: Tensor) -> Tensor:
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


def blending_weight_sums(scene: "GaussianScene", cameras: Cameras, maps: Tensor) -> tuple[Tensor, Tensor]:
    """([N], [N]) sum_j w_ij r_j and sum_j w_ij for maps [C, H, W] seen by `cameras`."""
    n = len(scene)
    weighted = torch.zeros(n, device=scene.device)
    total = torch.zeros(n, device=scene.device)
    cameras = cameras.to(scene.device)
    maps = maps.to(scene.device, torch.float32)
    step = max(1, scene.config.render_batch)
    for start in range(0, len(cameras), step):
        cams = cameras[start : start + step]
        probe = torch.zeros(n, 2, device=scene.device, requires_grad=True)
        channels = render_features(scene, cams, probe)  # [c, H, W, 2]
        loss = (channels[..., 0] * maps[start : start + step]).sum() + channels[..., 1].sum()
        (grad,) = torch.autograd.grad(loss, probe)
        weighted += grad[:, 0]
        total += grad[:, 1]
    return weighted, total


def backproject(scene: "GaussianScene", cameras: Cameras, maps: Tensor, min_weight: float = 1e-6) -> Tensor:
    """[N] per-Gaussian weighted mean of `maps` [C, H, W]; 0 for Gaussians no pixel sees."""
    weighted, total = blending_weight_sums(scene, cameras, maps)
    return torch.where(total > min_weight, weighted / total.clamp_min(min_weight), torch.zeros_like(total))
