"""The CUDA path: a thin wrapper around `gsplat.rasterization` (gsplat is imported on first use)."""

from __future__ import annotations

import torch
from torch import Tensor


def runs_on(device: torch.device) -> bool:
    """Whether gsplat's kernels run on `device` (CUDA only; the CPU tests swap in gsplat's torch
    twins through this seam, see tests/render/gsplat_cpu.py)."""
    return device.type == "cuda"


def gsplat_sh(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """gsplat's CUDA SH evaluation; same contract as `gsedit.render.sh.eval_sh`."""
    from gsplat import spherical_harmonics

    return spherical_harmonics(degree, dirs, coeffs)


def rasterize_gsplat(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    features: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    backgrounds: Tensor | None,
    near_plane: float,
    far_plane: float,
    eps2d: float,
    tile_size: int,
) -> tuple[Tensor, Tensor, dict]:
    """Same contract as `gsedit.render.torch_rasterizer.rasterize_torch`, on CUDA tensors.

    Features (colours from SH and extra channels together) are rendered in one pass, with the
    accumulated depth appended by gsplat's "RGB+D" mode. Unpacked mode keeps `meta` in the
    [C, N, ...] layout that `rasterize_torch` returns.
    """
    from gsplat import rasterization

    render, alpha, meta = rasterization(
        means,
        quats,
        scales,
        opacities,
        features,
        viewmats,
        Ks,
        width,
        height,
        near_plane=near_plane,
        far_plane=far_plane,
        eps2d=eps2d,
        sh_degree=None,
        packed=False,
        tile_size=tile_size,
        backgrounds=backgrounds,
        render_mode="RGB+D",
    )
    return render, alpha, meta
