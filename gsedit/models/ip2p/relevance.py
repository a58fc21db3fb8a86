"""Relevance maps of Watch Your Steps (Mirzaei et al. 2024, section 4.1): pure functions.

The relevance of a latent pixel to an instruction is how much InstructPix2Pix's noise
prediction changes when the instruction is removed. Raw maps have a few very large values,
so they are clipped at the upper interquartile fence before being normalised to [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def relevance_from_eps(eps_text: Tensor, eps_uncond: Tensor) -> Tensor:
    """Raw relevance: the L2 norm over latent channels of the text / no-text disagreement.

    Args:
        eps_text: [B, C, h, w] noise predicted with the image and the instruction.
        eps_uncond: [B, C, h, w] noise predicted with the image and the empty instruction.

    Returns:
        [B, h, w] non-negative raw relevance (float32).
    """
    return torch.linalg.vector_norm((eps_text - eps_uncond).float(), dim=1)


def iqr_clip(maps: Tensor, factor: float) -> Tensor:
    """Clips each map at its upper Tukey fence Q3 + factor * (Q3 - Q1).

    Quartiles use linear interpolation between samples (numpy's default percentile
    method). Only the upper fence is applied: relevance is a magnitude whose outliers are
    the few very large values, which would otherwise squash everything else towards 0
    after normalisation. The paper uses factor 1.5; the authors' code uses 2.0.

    Args:
        maps: [B, ...] one map per leading index.
        factor: the fence distance in interquartile ranges, >= 0.

    Returns:
        [B, ...] clipped maps (float32).
    """
    flat = maps.float().flatten(1)  # [B, N]
    q1, q3 = torch.quantile(flat, torch.tensor([0.25, 0.75], device=flat.device), dim=1)  # [B]
    upper = q3 + factor * (q3 - q1)  # [B]
    return torch.minimum(flat, upper[:, None]).view(maps.shape)


def normalize01(maps: Tensor) -> Tensor:
    """Rescales each map linearly so its minimum is 0 and its maximum 1; constant maps become 0.

    Args:
        maps: [B, ...] one map per leading index.

    Returns:
        [B, ...] maps in [0, 1] (float32).
    """
    flat = maps.float().flatten(1)  # [B, N]
    low = flat.min(dim=1, keepdim=True).values
    span = flat.max(dim=1, keepdim=True).values - low
    # a constant map carries no localisation: 0 everywhere rather than 0/0
    safe = torch.where(span > 0, span, torch.ones_like(span))
    return ((flat - low) / safe).view(maps.shape)


def binarize(maps: Tensor, threshold: float) -> Tensor:
    """Edit mask M = 1(R >= threshold) (paper section 4.2), as a float tensor of 0 and 1."""
    return (maps >= threshold).float()


def relevance_map(raw: Tensor, iqr_factor: float, size: tuple[int, int]) -> Tensor:
    """Finishes raw latent-resolution relevance: IQR clip, normalise, bilinear upsampling.

    Args:
        raw: [B, h, w] raw relevance (`relevance_from_eps`, possibly averaged over noise).
        iqr_factor: upper-fence factor for `iqr_clip`.
        size: (H, W) output size, usually the (padded) image size.

    Returns:
        [B, H, W] relevance in [0, 1].
    """
    maps = normalize01(iqr_clip(raw, iqr_factor))  # [B, h, w]
    up = F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)
    # bilinear weights are convex, but rounding may step a hair outside [0, 1]
    return up[:, 0].clamp(0.0, 1.0)
