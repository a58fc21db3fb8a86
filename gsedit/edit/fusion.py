"""Edit3D image fusion (Sec. 3.2, Eq. 3): fused = edited * M + prerender * (1 - M), M feathered."""

from __future__ import annotations

from torch import Tensor

from gsedit.render.filters import gaussian_blur


def feather(masks: Tensor, sigma: float) -> Tensor:
    """[B, H, W] masks with Gaussian-smoothed edges, in [0, 1].

    The smoothing spreads the edit a little past the mask border so seams blend; inside a region
    wider than ~3 sigma the mask stays 1, outside by as much it stays 0.
    """
    return gaussian_blur(masks.float(), sigma).clamp(0, 1)


def fuse(edited: Tensor, prerender: Tensor, masks: Tensor) -> Tensor:
    """[B, H, W, 3] = edited * M + prerender * (1 - M) with M = masks [B, H, W] (already feathered)."""
    m = masks[..., None].to(edited.dtype)
    return edited * m + prerender * (1 - m)
