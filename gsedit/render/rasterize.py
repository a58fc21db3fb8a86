"""The one rasterization entry point of gsedit: RGB (from SH) + extra channels + depth in one pass.

Three backends give the same numbers on the same inputs: gsplat's CUDA kernels, the pure-PyTorch
rasterizer in `torch_rasterizer` (the reference), and on CPU its twin in C++ (`native`: tiling and
compositing compiled from `cuda_ext/`, the CPU default when it builds). Arguments follow
`gsplat.rasterization`; `info` is gsplat's unpacked `meta` dict, so `gsplat.strategy` densification
works on either backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from gsedit.render import gsplat_backend, native
from gsedit.render.sh import MAX_SH_DEGREE, eval_sh
from gsedit.render.torch_rasterizer import rasterize_torch

Backend = Literal["auto", "torch", "native", "gsplat"]
GSPLAT_TILE_SIZE = 16
TORCH_TILE_SIZE = 8
NATIVE_TILE_SIZE = 16  # the native kernels walk whole tile rows as vectors: longer rows pay


@dataclass
class RasterOutput:
    """What `rasterize` renders for C cameras."""

    colors: Tensor  # [C, H, W, D]: RGB from SH (when sh_degree is set) then the extras channels
    alpha: Tensor  # [C, H, W, 1] accumulated opacity
    depth: Tensor  # [C, H, W, 1] alpha-blended camera-space z (not normalised by alpha)
    info: dict  # gsplat's unpacked meta: means2d [C, N, 2] (retain_grad-able), radii [C, N, 2], ...


def rasterize(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    sh_degree: int | None = None,
    extras: Tensor | None = None,
    backgrounds: Tensor | None = None,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    backend: Backend = "auto",
    tile_size: int | None = None,
) -> RasterOutput:
    """Renders N Gaussians into C pinhole cameras, differentiably.

    Args:
        means: [N, 3] world positions.
        quats: [N, 4] wxyz rotations (normalised inside).
        scales: [N, 3] activated (exponentiated) scales.
        opacities: [N] activated (sigmoid) opacities.
        colors: [N, K, 3] SH coefficients when `sh_degree` is set (rgb = max(SH(mean - camera
            centre) + 0.5, 0), gsplat's convention), else [N, D] view-independent features.
        viewmats: [C, 4, 4] world-to-camera (OpenCV). Ks: [C, 3, 3] intrinsics.
        width, height: image size in pixels.
        sh_degree: SH bands to use (0-3), or None for plain features.
        extras: [N, E] view-independent channels (relevance, labels) composited in the same pass
            and appended after the colour channels.
        backgrounds: [C, D + E] colour composited behind each image, or None (zeros).
        near_plane, far_plane: camera-space z range kept.
        eps2d: low-pass filter added to the 2D covariances (gsplat's default 0.3).
        backend: "gsplat" (CUDA), "torch" (the PyTorch reference), "native" (its C++ twin, CPU),
            or "auto" = gsplat for CUDA tensors, else native when it builds (not with
            GSEDIT_NATIVE=0), else torch.
        tile_size: tile side in pixels; it does not change the result, only speed. None: 16 for
            gsplat (its tested value), 8 for torch (less wasted work per tile on CPU), 16 for
            native (its pixel loops are vectors along tile rows).
    """
    n_feat = _check_inputs(
        means,
        quats,
        scales,
        opacities,
        colors,
        viewmats,
        Ks,
        width,
        height,
        sh_degree,
        extras,
        backgrounds,
        backend,
        tile_size,
    )
    use_gsplat = backend == "gsplat" or (backend == "auto" and means.is_cuda)
    options = {}
    if use_gsplat:
        from gsedit.render.gsplat_backend import gsplat_sh as sh_fn
        from gsedit.render.gsplat_backend import rasterize_gsplat as impl

        default_tile = GSPLAT_TILE_SIZE
    else:
        sh_fn, impl = eval_sh, rasterize_torch
        options["kernels"] = cpu_kernels(backend, means.device)
        default_tile = NATIVE_TILE_SIZE if options["kernels"] == "native" else TORCH_TILE_SIZE
    tile_size = tile_size or default_tile
    features = _features(means, colors, viewmats, sh_degree, extras, sh_fn)  # [C, N, D + E]
    render, alpha, info = impl(
        means,
        quats,
        scales,
        opacities,
        features,
        viewmats,
        Ks,
        width,
        height,
        backgrounds,
        near_plane,
        far_plane,
        eps2d,
        tile_size,
        **options,
    )
    return RasterOutput(render[..., :n_feat], alpha, render[..., n_feat:], info)


def blend_weight_sums(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    maps: Tensor,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    backend: Backend = "auto",
) -> Tensor:
    """Per Gaussian i, sum_j w_ij m_j for each of L maps and then sum_j w_ij, over every pixel j of
    C cameras (w_ij: i's blending weight at j), in one pass whatever L: what back-projection needs.

    Native: one forward walk accumulating every channel. Otherwise (the reference twin, and on
    CUDA): one backward through `rasterize` of L + 1 probe channels, zero per Gaussian, under
    L = sum_j (sum_l m_lj c_lj + c_Lj), whose gradient w.r.t. the probes is exactly these sums.

    Args:
        means, quats, scales, opacities, viewmats, Ks, width, height: as `rasterize`.
        maps: [L, C, H, W] values per camera and pixel.

    Returns:
        [N, L + 1].
    """
    n, n_maps = means.shape[0], maps.shape[0]
    maps = maps.to(means.device, means.dtype)
    if not means.is_cuda and cpu_kernels(backend, means.device) == "native":
        with torch.no_grad():
            proj = native.project_gaussians(
                means, quats, scales, opacities, viewmats, Ks, width, height, near_plane,
                far_plane, eps2d,
            )  # fmt: skip
            isect = native.intersect_tiles(
                proj.means2d, proj.radii, proj.depths, NATIVE_TILE_SIZE, width, height
            )
            opac = opacities[None].expand(viewmats.shape[0], -1)
            sums = native.blend_sums(
                proj.means2d, proj.conics, opac, isect, maps.permute(1, 2, 3, 0), width, height,
                NATIVE_TILE_SIZE,
            )  # fmt: skip
        return sums.reshape(-1, n, n_maps + 1).sum(0)
    probe = torch.zeros(n, n_maps + 1, device=means.device, dtype=means.dtype, requires_grad=True)
    with torch.enable_grad():
        channels = rasterize(
            means.detach(), quats.detach(), scales.detach(), opacities.detach(), probe,
            viewmats, Ks, width, height, near_plane=near_plane, far_plane=far_plane,
            eps2d=eps2d, backend=backend,
        ).colors  # fmt: skip
        loss = (channels[..., :n_maps] * maps.permute(1, 2, 3, 0)).sum() + channels[..., -1].sum()
        (grad,) = torch.autograd.grad(loss, probe)
    return grad


def cpu_kernels(backend: Backend, device: torch.device) -> Literal["torch", "native"]:
    """Which kernels the PyTorch-side rasterizer uses for `backend` ("torch" or "native")."""
    if backend == "native":
        native.require()
        return "native"
    if backend == "auto" and device.type == "cpu" and native.available():
        return "native"
    return "torch"


def _features(
    means: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    sh_degree: int | None,
    extras: Tensor | None,
    sh_fn,
) -> Tensor:
    """[C, N, D + E] per-camera features: colours (from SH when sh_degree is set), then extras."""
    n_cams = viewmats.shape[0]
    if sh_degree is None:
        rgb = colors[None].expand(n_cams, -1, -1)
    else:
        campos = torch.linalg.inv(viewmats)[:, :3, 3]  # [C, 3]
        dirs = means[None] - campos[:, None]  # [C, N, 3]
        coeffs = colors[None].expand(n_cams, -1, -1, -1)  # [C, N, K, 3]
        rgb = torch.clamp_min(sh_fn(sh_degree, dirs, coeffs) + 0.5, 0.0)
    if extras is None:
        return rgb
    return torch.cat([rgb, extras[None].expand(n_cams, -1, -1)], dim=-1)


def _check_inputs(
    means,
    quats,
    scales,
    opacities,
    colors,
    viewmats,
    Ks,
    width,
    height,
    sh_degree,
    extras,
    backgrounds,
    backend,
    tile_size,
) -> int:
    """Validates shapes and options; returns the number of colour + extra channels."""
    if means.ndim != 2 or means.shape[1] != 3:
        raise ValueError(f"means must be [N, 3], got {list(means.shape)}")
    n = means.shape[0]
    for name, tensor, tail in (
        ("quats", quats, (4,)),
        ("scales", scales, (3,)),
        ("opacities", opacities, ()),
    ):
        if tuple(tensor.shape) != (n, *tail):
            raise ValueError(
                f"{name} must be {[n, *tail]} to match means, got {list(tensor.shape)}"
            )
    if viewmats.ndim != 3 or viewmats.shape[1:] != (4, 4):
        raise ValueError(f"viewmats must be [C, 4, 4], got {list(viewmats.shape)}")
    n_cams = viewmats.shape[0]
    if tuple(Ks.shape) != (n_cams, 3, 3):
        raise ValueError(f"Ks must be [{n_cams}, 3, 3] to match viewmats, got {list(Ks.shape)}")
    if sh_degree is None:
        if colors.ndim != 2 or colors.shape[0] != n:
            raise ValueError(
                f"colors must be [{n}, D] features when sh_degree is None, got {list(colors.shape)}"
            )
        n_feat = colors.shape[1]
    else:
        if not 0 <= sh_degree <= MAX_SH_DEGREE:
            raise ValueError(f"sh_degree must be 0..{MAX_SH_DEGREE} or None, got {sh_degree}")
        needed = (sh_degree + 1) ** 2
        if (
            colors.ndim != 3
            or colors.shape[0] != n
            or colors.shape[2] != 3
            or colors.shape[1] < needed
        ):
            raise ValueError(
                f"colors must be [{n}, K>={needed}, 3] SH coefficients for sh_degree {sh_degree}, "
                f"got {list(colors.shape)}"
            )
        n_feat = 3
    if extras is not None:
        if extras.ndim != 2 or extras.shape[0] != n:
            raise ValueError(f"extras must be [{n}, E], got {list(extras.shape)}")
        n_feat += extras.shape[1]
    if backgrounds is not None and tuple(backgrounds.shape) != (n_cams, n_feat):
        raise ValueError(
            f"backgrounds must be [{n_cams}, {n_feat}] (cameras, colour + extra channels), "
            f"got {list(backgrounds.shape)}"
        )
    if width <= 0 or height <= 0 or (tile_size is not None and tile_size <= 0):
        raise ValueError(
            f"width, height and tile_size must be positive, got {width}, {height}, {tile_size}"
        )
    if backend not in ("auto", "torch", "native", "gsplat"):
        raise ValueError(f"backend must be 'auto', 'torch', 'native' or 'gsplat', got {backend!r}")
    if backend == "gsplat" and not gsplat_backend.runs_on(means.device):
        raise ValueError(
            "backend 'gsplat' needs CUDA tensors; use backend='torch' or 'auto' on CPU"
        )
    if backend == "native" and means.device.type != "cpu":
        raise ValueError("backend 'native' runs on CPU tensors; use 'auto' or 'gsplat' on CUDA")
    tensors = [means, quats, scales, opacities, colors, viewmats, Ks, extras, backgrounds]
    devices = {t.device for t in tensors if t is not None}
    if len(devices) > 1:
        raise ValueError(f"all tensors must be on one device, got {sorted(map(str, devices))}")
    return n_feat
