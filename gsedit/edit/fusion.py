"""Edit3D image fusion (Sec. 3.2, Eq. 3): fused = edited * M + prerender * (1 - M), M feathered."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def gaussian_kernel1d(sigma: float, device=None) -> Tensor:
    """[2r+1] normalised Gaussian taps, r = ceil(3 sigma)."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(maps: Tensor, sigma: float) -> Tensor:
    """[B, H, W] separable Gaussian blur (std `sigma` pixels), edges replicated so borders stay put."""
    if sigma <= 0:
        return maps
    k = gaussian_kernel1d(sigma, maps.device).to(maps.dtype)
    r = (k.numel() - 1) // 2
    x = maps[:, None]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return x[:, 0]


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
