"""Gaussians as viser's in-browser splat node takes them (centres, covariances, colours, opacities).

The browser sorts and blends them itself (full resolution, no server round trip); only view-
independent colour is sent (SH degree 0), and a selection is shown by tinting its Gaussians, so it
follows the scene from every angle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gsedit.render.projection import quat_scale_to_covar
from gsedit.scene.gaussians import Gaussians, sh0_to_rgb
from gsedit.viewer.frame import MASK_TINT, blend

SELECTION_WEIGHT = 0.7  # how far a selected Gaussian's colour moves towards the tint


@dataclass
class SplatArrays:
    """What `scene.add_gaussian_splats` takes, as float32 numpy arrays."""

    centers: np.ndarray  # [N, 3]
    covariances: np.ndarray  # [N, 3, 3]
    rgbs: np.ndarray  # [N, 3] in [0, 1]
    opacities: np.ndarray  # [N, 1] in [0, 1]


def splat_arrays(gaussians: Gaussians, selected: Tensor | None = None) -> SplatArrays:
    """The splat node of `gaussians`, the `selected` [N] bool ones tinted (viewer.frame.MASK_TINT)."""
    g = gaussians.to("cpu")
    rgbs = sh0_to_rgb(g.sh0[:, 0]).clamp(0, 1)  # [N, 3]
    if selected is not None and bool(selected.any()):
        weight = SELECTION_WEIGHT * selected.to(torch.float32)
        rgbs = blend(rgbs, torch.tensor(MASK_TINT), weight)
    covariances = quat_scale_to_covar(g.quats, torch.exp(g.scales))  # [N, 3, 3]
    return SplatArrays(
        centers=g.means.numpy().astype(np.float32),
        covariances=covariances.numpy().astype(np.float32),
        rgbs=rgbs.numpy().astype(np.float32),
        opacities=torch.sigmoid(g.opacities)[:, None].numpy().astype(np.float32),
    )
