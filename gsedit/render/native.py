"""The native CPU path: `cuda_ext`'s compiled kernels behind torch_rasterizer's interface.

Projection, tile intersection, compositing (each with its closed-form backward) and the
multi-channel back-projection run in C++ with exactly the semantics of the PyTorch reference,
which stays the twin they are tested against (tests/render/test_native.py); SH evaluation stays
in PyTorch (a few percent of a frame). The kernels are compiled on first use (about 10 s, cached in torch's
extensions folder), never at import, and never required: with GSEDIT_NATIVE=0, without a
compiler, or when the build fails, `available()` is False, the PyTorch rasterizer runs instead and
the reason is reported once as a warning.
"""

from __future__ import annotations

import os
import warnings

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from gsedit.errors import GseditError
from gsedit.render.projection import Projection, TileIntersections
from gsedit.render.projection import project_gaussians as project_torch

ENV_SWITCH = "GSEDIT_NATIVE"  # "0" turns the native path off

_state: dict[str, str | None] = {}  # "error": None once loaded, else why not (set on first use)


def unavailable_reason() -> str | None:
    """None when the native kernels are loaded (building them on the first call), else why not."""
    if "error" not in _state:
        _state["error"] = _load()
        if _state["error"] is not None:
            warnings.warn(
                f"gsedit: the native CPU kernels are not used ({_state['error']}); the PyTorch "
                "rasterizer runs instead (same results, several times slower).",
                RuntimeWarning,
                stacklevel=3,
            )
    return _state["error"]


def available() -> bool:
    """Whether the native kernels can be used (built on the first call)."""
    return unavailable_reason() is None


def require() -> None:
    """Raises GseditError saying why, when the native kernels cannot be used."""
    reason = unavailable_reason()
    if reason is not None:
        raise GseditError(
            f"The native CPU rasterizer is not available: {reason}. Use backend 'auto' or "
            "'torch' (the PyTorch rasterizer, same results), or install a C++ compiler (g++) "
            "and ninja and unset GSEDIT_NATIVE."
        )


def _load() -> str | None:
    if os.environ.get(ENV_SWITCH, "").strip() == "0":
        return f"{ENV_SWITCH}=0"
    try:
        import cuda_ext

        cuda_ext.build_cpu()
    except Exception as error:  # noqa: BLE001 - any failure to build means: fall back
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return f"the build failed: {first_line}"
    return None


def _ops():
    return torch.ops.gsedit_native


@torch.no_grad()
def intersect_tiles(
    means2d: Tensor, radii: Tensor, depths: Tensor, tile_size: int, width: int, height: int
) -> TileIntersections:
    """torch_rasterizer.intersect_tiles in C++: [C, N, 2] means2d, [C, N, 2] radii, [C, N] depths."""
    tile_w, tile_h = -(-width // tile_size), -(-height // tile_size)
    ids, counts, offsets, per_gauss = _ops().intersect_tiles(
        means2d.contiguous(),
        radii.int().contiguous(),
        depths.contiguous(),
        tile_size,
        tile_w,
        tile_h,
    )
    return TileIntersections(ids, counts, offsets, per_gauss, tile_w, tile_h)


class _Project(torch.autograd.Function):
    """The C++ projection and its backward w.r.t. means, quats and scales."""

    @staticmethod
    def forward(ctx, means, quats, scales, opacities, viewmats, Ks, options):
        inputs = [t.contiguous() for t in (means, quats, scales, opacities, viewmats, Ks)]
        means2d, conics, depths, radii = _ops().project_forward(*inputs, *options)
        ctx.mark_non_differentiable(radii)
        ctx.save_for_backward(*inputs[:3], *inputs[4:])
        ctx.options = options
        return means2d, conics, depths, radii

    @staticmethod
    @once_differentiable
    def backward(ctx, g_means2d, g_conics, g_depths, _):
        grads = _ops().project_backward(
            *ctx.saved_tensors,
            *ctx.options,
            g_means2d.contiguous(),
            g_conics.contiguous(),
            g_depths.contiguous(),
        )
        return (*grads, None, None, None, None)


def project_gaussians(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
) -> Projection:
    """projection.project_gaussians in C++ (same arguments; computed in float64 inside).
    Cameras that need gradients go through the PyTorch projection, the C++ one treats them as
    constants."""
    if viewmats.requires_grad or Ks.requires_grad:
        return project_torch(
            means, quats, scales, opacities, viewmats, Ks, width, height, near_plane, far_plane,
            eps2d,
        )  # fmt: skip
    viewmats, Ks = viewmats.to(means.dtype), Ks.to(means.dtype)
    options = (width, height, near_plane, far_plane, eps2d)
    means2d, conics, depths, radii = _Project.apply(
        means, quats, scales, opacities, viewmats, Ks, options
    )
    return Projection(means2d=means2d, conics=conics, depths=depths, radii=radii)


def _lists(isect: TileIntersections) -> tuple[Tensor, Tensor, Tensor]:
    return isect.flatten_ids, isect.tile_offsets, isect.tile_counts


class _Composite(torch.autograd.Function):
    """The C++ compositing forward and closed-form backward (torch_rasterizer's _CompositeTiles).
    Forward keeps each pixel's final transmittance and last entry [C, H, W], from which backward
    walks the lists back to front, as gsplat's CUDA backward does."""

    @staticmethod
    def forward(ctx, means2d, conics, opacities, features, isect, width, height, tile_size):
        inputs = [t.contiguous() for t in (means2d, conics, opacities, features)]
        geometry = (width, height, tile_size, isect.tile_width)
        colors, alpha, final_trans, last = _ops().composite_forward(
            *inputs, *_lists(isect), *geometry
        )
        ctx.save_for_backward(*inputs, *_lists(isect), final_trans, last)
        ctx.geometry = geometry
        return colors, alpha

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_colors, grad_alpha):
        grads = _ops().composite_backward(
            *ctx.saved_tensors, *ctx.geometry, grad_colors.contiguous(), grad_alpha.contiguous()
        )
        return (*grads, None, None, None, None)


def rasterize_to_pixels(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    features: Tensor,
    isect: TileIntersections,
    width: int,
    height: int,
    tile_size: int,
    backgrounds: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """torch_rasterizer.rasterize_to_pixels in C++ (same arguments, same results).

    Returns:
        colors [C, H, W, D] and alpha [C, H, W, 1].
    """
    colors, alpha = _Composite.apply(
        means2d, conics, opacities, features, isect, width, height, tile_size
    )
    if backgrounds is not None:
        colors = colors + (1.0 - alpha) * backgrounds[:, None, None, :]
    return colors, alpha


@torch.no_grad()
def blend_sums(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    isect: TileIntersections,
    maps: Tensor,
    width: int,
    height: int,
    tile_size: int,
) -> Tensor:
    """[C * N, L + 1]: per Gaussian, sum_j w_ij maps_j for each of the L maps [C, H, W, L], then
    sum_j w_ij (w: its blending weight at pixel j), from one forward walk over every pixel."""
    inputs = [t.contiguous() for t in (means2d, conics, opacities)]
    return _ops().blend_sums(
        *inputs, *_lists(isect), width, height, tile_size, isect.tile_width, maps.contiguous()
    )
