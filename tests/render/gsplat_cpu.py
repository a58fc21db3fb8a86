"""gsplat's pure-PyTorch rasterization path on CPU tensors, for tests.

`gsplat.rendering._rasterization` is gsplat's autograd twin of `gsplat.rasterization`, but it still
calls a few CUDA-only pieces: tile intersection and offsets (`isect_tiles`, `isect_offset_encode`),
SH evaluation, `rasterize_to_indices_in_range`, and nerfacc's packed compositing inside
`accumulate`. `gsplat_on_cpu` swaps those for the torch twins below (gsplat's own where it has a
usable one) and routes `gsplat.rasterization` / `gsplat.spherical_harmonics` through them, so
gsedit's own `backend="gsplat"` code runs unchanged on CPU.

Differences from gsplat's CUDA kernels that the tests allow for:
- projection: the torch twin boxes every Gaussian at 3.33 standard deviations; the CUDA kernel
  (and gsedit's renderers) use the opacity-aware extent min(3.33, sqrt(2 ln(255 opacity))) and cull
  opacity < 1/255. The twin's radii are therefore larger or non-zero for more Gaussians; renders are
  the same (the extra pixels have alpha < 1/255 and are skipped) but `radii` and which Gaussians
  count as visible to densification are not;
- gsplat's `_rasterization` has no packed mode: `packed=True` is answered here by packing its
  unpacked meta the way the CUDA path lays it out ([nnz, ...] with camera_ids / gaussian_ids), so a
  caller that asked for the wrong layout sees the wrong layout.
"""

from __future__ import annotations

import math
import sys
import types

import torch
from torch import Tensor

ALPHA_THRESHOLD = 1.0 / 255.0
MIN_TRANSMITTANCE = 1e-4
PAIRS_PER_CHUNK = 1 << 22  # (list entry, pixel) pairs evaluated at once


@torch.no_grad()
def isect_tiles(
    means2d: Tensor,
    radii: Tensor,
    depths: Tensor,
    tile_size: int,
    tile_width: int,
    tile_height: int,
    sort: bool = True,
    segmented: bool = False,
    packed: bool = False,
    n_images: int | None = None,
    image_ids: Tensor | None = None,
    gaussian_ids: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """gsplat's `_isect_tiles` rule, vectorised (gsplat's twin loops in Python per Gaussian and tile,
    minutes for a few hundred training steps); `test_isect_tiles_twin` checks them equal.

    Args: means2d [I, N, 2], radii [I, N, 2], depths [I, N] (unpacked only).
    Returns: tiles_per_gauss [I, N] int32, isect_ids [M] int64 (image | tile | depth bits, sorted),
    flatten_ids [M] int32 (image * N + gaussian).
    """
    assert not packed, "the CPU twin of isect_tiles is unpacked only"
    image_dims, n = means2d.shape[:-2], means2d.shape[-2]
    n_img = math.prod(image_dims)
    means2d, radii, depths = means2d.reshape(n_img, n, 2), radii.reshape(n_img, n, 2), depths.reshape(n_img, n)
    lo = torch.floor(means2d / tile_size - radii / tile_size).int()
    hi = torch.ceil(means2d / tile_size + radii / tile_size).int()
    limits = torch.tensor([tile_width, tile_height], dtype=torch.int32)
    lo, hi = torch.minimum(lo.clamp_min(0), limits), torch.minimum(hi.clamp_min(0), limits)
    span = hi - lo  # [I, N, 2]
    counts = span.prod(-1) * (radii > 0).all(-1)  # [I, N]
    flat = torch.repeat_interleave(torch.arange(n_img * n), counts.reshape(-1).long())  # [M]
    first = torch.cumsum(counts.reshape(-1), 0) - counts.reshape(-1)
    k = torch.arange(len(flat)) - first[flat]  # the k-th tile of its Gaussian, row-major
    w = span.reshape(-1, 2)[flat, 0]
    x = lo.reshape(-1, 2)[flat, 0] + k % w
    y = lo.reshape(-1, 2)[flat, 1] + k // w
    image = flat // n
    tile_bits = (tile_width * tile_height).bit_length()
    depth_bits = depths.reshape(-1)[flat].float().view(torch.int32).long() & 0xFFFFFFFF
    isect_ids = (((image << tile_bits) | (y * tile_width + x)) << 32) | depth_bits
    flatten_ids = flat.int()
    if sort:
        isect_ids, order = torch.sort(isect_ids, stable=True)
        flatten_ids = flatten_ids[order]
    return counts.reshape(*image_dims, n).int(), isect_ids, flatten_ids


@torch.no_grad()
def rasterize_to_indices_in_range(
    range_start: int,
    range_end: int,
    transmittances: Tensor,
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    image_width: int,
    image_height: int,
    tile_size: int,
    isect_offsets: Tensor,
    flatten_ids: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """Torch twin of gsplat's CUDA `rasterize_to_indices_in_range` (RasterizeToIndices3DGS.cu): per
    pixel, the tile-list entries of batches [range_start, range_end) (tile_size^2 entries each) that
    pass alpha >= 1/255, sigma >= 0, until T would fall to 1e-4 (that entry excluded), starting
    from `transmittances` [I, H, W].

    Returns (gaussian ids, pixel ids within the image, image ids), each [M] int64, ordered by
    image, pixel, then front to back, as the CUDA kernel writes them.
    """
    n = means2d.shape[-2]
    offsets = isect_offsets.reshape(-1).long()  # [I * TH * TW]
    n_tiles_img = isect_offsets.shape[-2] * isect_offsets.shape[-1]
    tile_w = isect_offsets.shape[-1]
    ends = torch.cat([offsets[1:], torch.tensor([len(flatten_ids)])])
    block = tile_size * tile_size
    starts = offsets + range_start * block
    lengths = (torch.minimum(ends, offsets + range_end * block) - starts).clamp_min(0)
    means2d, conics = means2d.reshape(-1, 2), conics.reshape(-1, 3)
    opacities, trans = opacities.reshape(-1), transmittances.reshape(-1, image_height * image_width)
    local = torch.arange(block)
    out = []
    tiles = torch.nonzero(lengths).flatten()
    longest = int(lengths.max()) if len(tiles) else 0
    per_chunk = max(1, PAIRS_PER_CHUNK // max(1, longest * block))
    for chunk in tiles.split(per_chunk):
        length = int(lengths[chunk].max())
        entry = torch.arange(length)
        listed = entry < lengths[chunk, None]  # [T, L]
        g = flatten_ids[(starts[chunk, None] + entry).clamp_max(len(flatten_ids) - 1)].long()  # [T, L]
        image, tile = chunk // n_tiles_img, chunk % n_tiles_img
        py = (tile // tile_w)[:, None] * tile_size + local // tile_size  # [T, P]
        px = (tile % tile_w)[:, None] * tile_size + local % tile_size
        inside = (px < image_width) & (py < image_height)
        pix = (py * image_width + px).clamp_max(image_height * image_width - 1)
        d = means2d[g][:, :, None, :] - torch.stack([px, py], -1)[:, None].float() - 0.5  # [T, L, P, 2]
        c = conics[g][:, :, None, :]
        sigma = 0.5 * (c[..., 0] * d[..., 0] ** 2 + c[..., 2] * d[..., 1] ** 2) + c[..., 1] * d[..., 0] * d[..., 1]
        alpha = torch.clamp_max(opacities[g][:, :, None] * torch.exp(-sigma), 0.999)
        valid = listed[:, :, None] & inside[:, None] & (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
        t_after = trans[image[:, None], pix][:, None] * torch.cumprod(1 - alpha * valid, dim=1)
        keep = valid & (t_after > MIN_TRANSMITTANCE)  # a prefix of each pixel's valid entries
        t_idx, p_idx, l_idx = torch.nonzero(keep.permute(0, 2, 1), as_tuple=True)
        out.append((g[t_idx, l_idx] % n, pix[t_idx, p_idx], image[t_idx]))
    if not out:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty, empty
    gauss, pixel, image = (torch.cat(x) for x in zip(*out))
    order = torch.sort(image * image_height * image_width + pixel, stable=True).indices
    return gauss[order], pixel[order], image[order]


def render_weight_from_alpha(alphas: Tensor, ray_indices: Tensor, n_rays: int) -> tuple[Tensor, Tensor]:
    """nerfacc's packed compositing: weight = alpha * T with T the product of (1 - alpha) of the
    earlier samples of the same ray (samples grouped by ray, front to back). Returns ([M], [M])."""
    log_keep = torch.log1p(-alphas).double()
    inclusive = torch.cumsum(log_keep, 0)
    new_ray = torch.ones_like(ray_indices, dtype=torch.bool)
    new_ray[1:] = ray_indices[1:] != ray_indices[:-1]
    ray_start = torch.cummax(torch.where(new_ray, torch.arange(len(alphas)), 0), 0).values
    before_ray = inclusive[ray_start] - log_keep[ray_start]
    trans = torch.exp(inclusive - log_keep - before_ray).to(alphas.dtype)
    return alphas * trans, trans


def accumulate_along_rays(weights: Tensor, values: Tensor | None, ray_indices: Tensor, n_rays: int) -> Tensor:
    """nerfacc's per-ray sum of weight * value ([n_rays, D]; the weights alone when values is None)."""
    src = weights[:, None] if values is None else weights[:, None] * values
    return torch.zeros(n_rays, src.shape[1], dtype=src.dtype).index_add(0, ray_indices, src)


def spherical_harmonics(degrees_to_use: int, dirs: Tensor, coeffs: Tensor, masks: Tensor | None = None) -> Tensor:
    """gsplat's torch SH twin with the CUDA wrapper's `masks` (masked entries come out zero)."""
    from gsplat.cuda._torch_impl import _spherical_harmonics

    colors = _spherical_harmonics(degrees_to_use, dirs, coeffs)
    return colors if masks is None else colors * masks[..., None]


def pack_meta(meta: dict) -> dict:
    """The unpacked meta [C, N, ...] as gsplat's packed mode lays it out ([nnz, ...] of the visible
    (camera, Gaussian) pairs, with camera_ids and gaussian_ids)."""
    visible = (meta["radii"] > 0).all(-1)  # [C, N]
    camera_ids, gaussian_ids = torch.nonzero(visible, as_tuple=True)
    packed = dict(meta, camera_ids=camera_ids, gaussian_ids=gaussian_ids)
    for key in ("radii", "means2d", "depths", "conics", "opacities"):
        packed[key] = meta[key][visible]
    return packed


def rasterization(*args, packed: bool = True, sparse_grad: bool = False, absgrad: bool = False,
                  distributed: bool = False, camera_model: str = "pinhole", **kwargs):
    """`gsplat.rasterization` on gsplat's torch path (its defaults: packed=True)."""
    from gsplat.rendering import _rasterization

    assert not (sparse_grad or absgrad or distributed) and camera_model == "pinhole", "not twinned"
    render, alpha, meta = _rasterization(*args, **kwargs)
    return render, alpha, pack_meta(meta) if packed else meta


def install(monkeypatch) -> None:
    """Routes gsplat's public rasterization and SH entry points through the torch twins."""
    import gsplat
    import gsplat.cuda._wrapper
    import gsplat.rendering
    from gsplat.cuda._torch_impl import _isect_offset_encode

    from gsedit.render import gsplat_backend

    def isect_offset_encode(isect_ids, n_images, tile_width, tile_height):
        return _isect_offset_encode(isect_ids, n_images, tile_width, tile_height)

    nerfacc = types.ModuleType("nerfacc")
    nerfacc.render_weight_from_alpha = render_weight_from_alpha
    nerfacc.accumulate_along_rays = accumulate_along_rays
    monkeypatch.setitem(sys.modules, "nerfacc", nerfacc)
    monkeypatch.setattr(gsplat.rendering, "isect_tiles", isect_tiles)
    monkeypatch.setattr(gsplat.rendering, "isect_offset_encode", isect_offset_encode)
    monkeypatch.setattr(gsplat.rendering, "spherical_harmonics", spherical_harmonics)
    monkeypatch.setattr(gsplat.cuda._wrapper, "rasterize_to_indices_in_range", rasterize_to_indices_in_range)
    monkeypatch.setattr(gsplat, "rasterization", rasterization)
    monkeypatch.setattr(gsplat, "spherical_harmonics", spherical_harmonics)
    monkeypatch.setattr(gsplat_backend, "runs_on", lambda device: True)
