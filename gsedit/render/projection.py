"""EWA projection of 3D Gaussians to the image plane, mirroring gsplat 1.5.3's fused CUDA kernel.

For every camera c and Gaussian n (all C x N pairs, vectorised):

- camera-space mean t = R mu + T; culled when t_z < near_plane or t_z > far_plane;
- world covariance Sigma = R(q) S S R(q)^T (q normalised), camera covariance W Sigma W^T;
- the perspective Jacobian J is evaluated at the mean with x/z and y/z clamped to the field of
  view plus 30% on each side (gsplat's guard against huge Jacobians for off-screen Gaussians);
- 2D covariance J W Sigma W^T J^T + eps2d I (a low-pass filter of ~1 pixel); culled when its
  determinant is <= 0; conic = its inverse;
- opacity-aware extent (Radl et al. 2024, sec. B.2): Gaussians with opacity < 1/255 are culled,
  the box extends min(3.33, sqrt(2 ln(255 opacity))) standard deviations per axis, so that every
  pixel outside it has alpha < 1/255; radii = ceil(extent * sqrt(diag)) as int32 [C, N, 2];
- culled when the box does not overlap the image.

Culled Gaussians get radii (0, 0); their other outputs are finite but unused. Everything that is
differentiable goes through autograd (means2d, conics, depths); radii are not.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

ALPHA_THRESHOLD = 1.0 / 255.0  # gsplat's ALPHA_THRESHOLD: fainter contributions are skipped
MAX_EXTENT = 3.33  # gsplat's largest box half-size in standard deviations


@dataclass
class Projection:
    """The per-camera 2D footprint of every Gaussian (gsplat's unpacked layout)."""

    means2d: Tensor  # [C, N, 2] pixel coordinates of the projected means
    conics: Tensor  # [C, N, 3] inverse 2D covariance (xx, xy, yy)
    depths: Tensor  # [C, N] camera-space z
    radii: Tensor  # [C, N, 2] int32 box half-sizes in pixels, 0 for culled Gaussians


def quat_scale_to_covar(quats: Tensor, scales: Tensor) -> Tensor:
    """[N, 4] wxyz quaternions (any norm) and [N, 3] scales -> [N, 3, 3] covariances R S S R^T."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    rot = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(-1, 3, 3)  # fmt: skip
    m = rot * scales[:, None, :]  # [N, 3, 3] = R S
    return m @ m.transpose(-1, -2)


def _perspective_jacobian(means_c: Tensor, Ks: Tensor, width: int, height: int) -> Tensor:
    """[C, N, 3] camera-space means (z > 0) -> [C, N, 2, 3] Jacobian of the pinhole projection."""
    x, y, z = means_c.unbind(-1)  # [C, N]
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    lim_x_pos = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    lim_x_neg = cx / fx + 0.3 * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_y_neg = cy / fy + 0.3 * (0.5 * height / fy)
    tx = z * torch.minimum(lim_x_pos, torch.maximum(-lim_x_neg, x / z))
    ty = z * torch.minimum(lim_y_pos, torch.maximum(-lim_y_neg, y / z))
    zero = torch.zeros_like(z)
    return torch.stack(
        [fx / z, zero, -fx * tx / (z * z), zero, fy / z, -fy * ty / (z * z)], dim=-1
    ).reshape(*z.shape, 2, 3)


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
    """Projects N Gaussians into C pinhole cameras (gsplat's `fully_fused_projection`, unpacked).

    Args:
        means: [N, 3] world positions.
        quats: [N, 4] wxyz rotations, normalised here.
        scales: [N, 3] activated scales.
        opacities: [N] activated opacities (only used for culling and the box size).
        viewmats: [C, 4, 4] world-to-camera (OpenCV).
        Ks: [C, 3, 3] intrinsics.
        width, height: image size in pixels.
        near_plane, far_plane: camera-space z range kept.
        eps2d: added to the diagonal of every 2D covariance.
    """
    rot, trans = viewmats[:, :3, :3], viewmats[:, :3, 3]  # [C, 3, 3], [C, 3]
    means_c = torch.einsum("cij,nj->cni", rot, means) + trans[:, None, :]  # [C, N, 3]
    depths = means_c[..., 2]  # [C, N]
    in_depth = (depths >= near_plane) & (depths <= far_plane)
    # Culled Gaussians still flow through the maths; a harmless z keeps their values (and the
    # zero gradients that reach them) finite instead of inf/NaN.
    safe_z = torch.where(in_depth, depths, torch.ones_like(depths))
    means_c = torch.cat([means_c[..., :2], safe_z[..., None]], dim=-1)

    covars = quat_scale_to_covar(quats, scales)  # [N, 3, 3]
    covars_c = rot[:, None] @ covars[None] @ rot.transpose(-1, -2)[:, None]  # [C, N, 3, 3]
    jac = _perspective_jacobian(means_c, Ks, width, height)  # [C, N, 2, 3]
    cov2d = jac @ covars_c @ jac.transpose(-1, -2)  # [C, N, 2, 2]
    a = cov2d[..., 0, 0] + eps2d
    b = 0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0])
    c = cov2d[..., 1, 1] + eps2d
    det = a * c - b * b  # [C, N]
    safe_det = torch.where(det > 0, det, torch.ones_like(det))
    conics = torch.stack([c / safe_det, -b / safe_det, a / safe_det], dim=-1)  # [C, N, 3]

    proj = means_c[..., :2] / means_c[..., 2:3]  # [C, N, 2] normalised image coordinates
    means2d = proj * torch.stack([Ks[:, 0, 0], Ks[:, 1, 1]], -1)[:, None] + Ks[:, None, :2, 2]

    radii = _radii(means2d.detach(), a.detach(), c.detach(), opacities.detach(), width, height)
    radii = radii * (in_depth & (det > 0))[..., None]
    return Projection(means2d=means2d, conics=conics, depths=depths, radii=radii.int())


def _radii(
    means2d: Tensor, var_x: Tensor, var_y: Tensor, opacities: Tensor, width: int, height: int
) -> Tensor:
    """gsplat's opacity-aware box: [C, N, 2] half-sizes, 0 where culled (faint or off-screen)."""
    visible = opacities >= ALPHA_THRESHOLD  # [N]
    ratio = torch.clamp_min(opacities / ALPHA_THRESHOLD, 1.0)
    extent = torch.clamp_max(torch.sqrt(2.0 * torch.log(ratio)), MAX_EXTENT)  # [N]
    radius = torch.ceil(
        extent[:, None] * torch.stack([var_x, var_y], -1).clamp_min(0).sqrt()
    )  # [C, N, 2]
    lo, hi = means2d - radius, means2d + radius
    size = torch.tensor([width, height], dtype=means2d.dtype, device=means2d.device)
    on_image = ((hi > 0) & (lo < size)).all(-1)  # [C, N]
    keep = visible & (radius > 0).any(-1) & on_image
    return radius * keep[..., None]


@dataclass
class TileIntersections:
    """Every (Gaussian, tile) overlap, sorted by camera, tile and depth (gsplat's `isect_tiles`)."""

    flatten_ids: Tensor  # [M] int64 indices into the flattened [C * N] Gaussians
    tile_counts: Tensor  # [C * T] int64 number of Gaussians listed in each tile
    tile_offsets: Tensor  # [C * T] int64 start of each tile's list in flatten_ids
    tiles_per_gauss: Tensor  # [C, N] int32
    tile_width: int
    tile_height: int
