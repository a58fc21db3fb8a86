"""Pure-PyTorch tile rasterizer: the CPU path and the numerical reference for gsplat 1.5.3.

Semantics (those of gsplat's `rasterize_to_pixels`, classic mode):

- a Gaussian is listed in every tile its (radius_x, radius_y) box touches, with gsplat's rule
  `[floor((m - r) / s), ceil((m + r) / s))` clamped to the tile grid; each tile's list is sorted by
  camera-space depth (ties: lower Gaussian index first, as gsplat's stable radix sort);
- pixel centres are at (x + 0.5, y + 0.5); sigma = 1/2 d^T conic d with d = mean2d - pixel;
  alpha = min(0.999, opacity * exp(-sigma)), skipped (treated as 0) when sigma < 0 or
  alpha < 1/255;
- front to back, with T the transmittance before a Gaussian, its weight is alpha * T; a pixel
  stops at the first Gaussian after which T would be <= 1e-4, that Gaussian excluded;
- features and depth are the weighted sums, the rendered alpha is the sum of the weights
  (= 1 - final T), and the background is added with weight 1 - alpha.

Implementation (vectorised; no Python loop over Gaussians or pixels). Each tile's list is
gathered into a dense [tiles, list, 6 + D] table (mean2d, conic, opacity, features), padded with
an all-transparent row; tiles are sorted by list length and cut into chunks of similar lengths, so
padding wastes little. A chunk is walked in slabs of list entries (at least 32, longer once few
tiles are left) as [tiles, slab, pixels] tensors: alpha from the separable quadratic form, the
transmittance as a running product `cumprod(1 - alpha)` seeded with the carried per-pixel T
(gsplat's sequential T *= 1 - alpha), the stop rule as the mask `T_after > 1e-4` (a prefix
condition, since T only decreases), and the per-tile reduction over the list as a batched matmul.
Tiles whose lists ended or whose pixels have all stopped leave the walk (gsplat's early exit per
tile). Under autograd each chunk runs inside `torch.utils.checkpoint`, so backward memory is that
of one chunk, not of the frame.

Complexity: with I (Gaussian, tile) intersections and s x s tiles, time is
O(sum over tiles of min(list length, depth at which the tile saturates) * s^2 * D) for D
channels, plus O(I log I) for the two sorts and O(C N) for projection. Memory is
O(I + C N (6 + D) + C H W D) plus one chunk: about `max_chunk_elements` (entry, pixel) pairs of
~40 bytes each (float32), which backward recomputes chunk by chunk. Small tiles waste less work on
a Gaussian's footprint and let saturated tiles stop sooner, hence the CPU default of 8 x 8.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from gsedit.render.projection import ALPHA_THRESHOLD, project_gaussians

MAX_ALPHA = 0.999  # gsplat clamps alpha below 1 so that 1 - alpha can be divided by
MIN_TRANSMITTANCE = 1e-4  # a pixel stops when T would fall to this or below
DEFAULT_CHUNK_ELEMENTS = 1 << 22  # (list entry, pixel) pairs per chunk of tiles
DEFAULT_SLAB = 32  # fewest list entries per step between early-exit checks
DEFAULT_SLAB_ELEMENTS = 1 << 20  # (entry, pixel) pairs aimed at per step


@dataclass
class TileIntersections:
    """Every (Gaussian, tile) overlap, sorted by camera, tile and depth (gsplat's `isect_tiles`)."""

    flatten_ids: Tensor  # [M] int64 indices into the flattened [C * N] Gaussians
    tile_counts: Tensor  # [C * T] int64 number of Gaussians listed in each tile
    tile_offsets: Tensor  # [C * T] int64 start of each tile's list in flatten_ids
    tiles_per_gauss: Tensor  # [C, N] int32
    tile_width: int
    tile_height: int


@torch.no_grad()
def intersect_tiles(
    means2d: Tensor, radii: Tensor, depths: Tensor, tile_size: int, width: int, height: int
) -> TileIntersections:
    """Lists, per tile, the Gaussians whose box touches it, front to back.

    Args:
        means2d: [C, N, 2] projected means.
        radii: [C, N, 2] int box half-sizes, 0 for culled Gaussians.
        depths: [C, N] camera-space z.
        tile_size: tile side in pixels.
        width, height: image size.
    """
    n_cams, n_gauss = radii.shape[:2]
    tile_w, tile_h = math.ceil(width / tile_size), math.ceil(height / tile_size)
    device = means2d.device
    grid = torch.tensor([tile_w, tile_h], device=device)
    centre = means2d.reshape(-1, 2) / tile_size  # [C*N, 2] in tile units
    reach = radii.reshape(-1, 2).to(centre.dtype) / tile_size
    lo = torch.minimum(torch.floor(centre - reach).clamp_min(0).long(), grid)  # [C*N, 2]
    hi = torch.minimum(torch.ceil(centre + reach).clamp_min(0).long(), grid)
    span = (hi - lo) * (radii.reshape(-1, 2) > 0).all(-1, keepdim=True)  # [C*N, 2]
    counts = span[:, 0] * span[:, 1]  # [C*N]

    ids = torch.nonzero(counts).squeeze(1)
    ids = ids[torch.argsort(depths.reshape(-1)[ids], stable=True)]  # front to back
    gauss = torch.repeat_interleave(ids, counts[ids])  # [M] one entry per (Gaussian, tile)
    first = torch.cumsum(counts[ids], 0) - counts[ids]
    k = torch.arange(gauss.shape[0], device=device) - torch.repeat_interleave(first, counts[ids])
    row_len = span[gauss, 0]
    tile_x = lo[gauss, 0] + k % row_len
    tile_y = lo[gauss, 1] + torch.div(k, row_len, rounding_mode="floor")
    tile = torch.div(gauss, n_gauss, rounding_mode="floor") * (tile_w * tile_h)
    tile = tile + tile_y * tile_w + tile_x  # [M] global tile index (camera-major)
    order = torch.argsort(tile, stable=True)  # keeps the depth order within each tile

    tile_counts = torch.bincount(tile, minlength=n_cams * tile_w * tile_h)
    return TileIntersections(
        flatten_ids=gauss[order],
        tile_counts=tile_counts,
        tile_offsets=torch.cumsum(tile_counts, 0) - tile_counts,
        tiles_per_gauss=counts.reshape(n_cams, n_gauss).int(),
        tile_width=tile_w,
        tile_height=tile_h,
    )


def _alphas(
    means2d: Tensor, conics: Tensor, opacities: Tensor, pix_x: Tensor, pix_y: Tensor
) -> Tensor:
    """gsplat's per-pixel alpha of every listed Gaussian, 0 where skipped.

    Args:
        means2d: [T, B, 2]; conics: [T, B, 3]; opacities: [T, B];
        pix_x: [T, s] pixel-centre x of each tile's columns; pix_y: [T, s] of its rows.

    Returns:
        [T, B, s * s] (row-major pixels).
    """
    dx = means2d[..., 0, None] - pix_x[:, None, :]  # [T, B, s]
    dy = means2d[..., 1, None] - pix_y[:, None, :]  # [T, B, s]
    a, b, c = conics.unbind(-1)  # [T, B]
    # sigma is separable except for the cross term: build it as row + column + outer product.
    sig_x = 0.5 * a[..., None] * dx * dx  # [T, B, s]
    sig_y = 0.5 * c[..., None] * dy * dy
    cross = (b[..., None] * dy)[..., :, None] * dx[..., None, :]  # [T, B, s, s]
    sigma = (cross + sig_y[..., :, None] + sig_x[..., None, :]).flatten(-2)  # [T, B, P]
    alpha = torch.clamp_max(opacities[..., None] * torch.exp(-sigma), MAX_ALPHA)
    return torch.where((sigma >= 0) & (alpha >= ALPHA_THRESHOLD), alpha, 0.0)


def _composite_tiles(
    entries: Tensor, pix_x: Tensor, pix_y: Tensor, lengths: Tensor, slabs: list[int]
) -> Tensor:
    """Front-to-back compositing of T tiles, each with a depth-sorted list of up to L Gaussians.

    The lists are walked in slabs of `slabs[k]` entries, carrying each pixel's transmittance; a
    tile leaves the walk when its list ends or all its pixels have stopped (gsplat's early exit).

    Args:
        entries: [T, L, 6 + D] per list entry: mean2d (2), conic (3), opacity (1, 0 on padding),
            features (D).
        pix_x, pix_y: [T, s] pixel centres of each tile's columns and rows.
        lengths: [T] list lengths.
        slabs: slab lengths, summing to L.

    Returns:
        [T, s * s, D + 1]: composited features (row-major pixels), then alpha.
    """
    n_tiles, n_pix = pix_x.shape[0], pix_x.shape[1] ** 2
    rows = torch.arange(n_tiles, device=entries.device)  # tiles still being walked
    trans = entries.new_ones(n_tiles, n_pix)  # their pixels' T before the next slab
    walked, results = [], []
    # Slabs by split, not by indexing: backward then assembles the entries' gradient once.
    start = 0
    for slab_entries in entries.split(slabs, dim=1):
        live = (lengths[rows] > start) & (trans > MIN_TRANSMITTANCE).any(-1)
        start += slab_entries.shape[1]
        if not live.all():
            rows, trans = rows[live], trans[live]
            if len(rows) == 0:
                break
        part = slab_entries[rows]  # [A, B, 6 + D]
        alpha = _alphas(part[..., 0:2], part[..., 2:5], part[..., 5], pix_x[rows], pix_y[rows])
        # Transmittance as a running product, like gsplat's sequential T *= 1 - alpha.
        t_after = trans[:, None] * torch.cumprod(1.0 - alpha, dim=1)  # [A, B, P]
        t_before = torch.cat([trans[:, None], t_after[:, :-1]], dim=1)
        weights = torch.where(t_after > MIN_TRANSMITTANCE, alpha * t_before, 0.0)
        colors = weights.transpose(1, 2) @ part[..., 6:]  # [A, P, D]
        results.append(torch.cat([colors, weights.sum(dim=1)[..., None]], dim=-1))
        walked.append(rows)
        trans = t_after[:, -1]
    out = entries.new_zeros(n_tiles, n_pix, entries.shape[-1] - 5)
    return out.index_add(0, torch.cat(walked), torch.cat(results)) if results else out


def _slab_sizes(lengths: list[int], pixels: int, slab: int, slab_elements: int) -> list[int]:
    """Slab lengths over lists of `lengths` (longest first): at least `slab`, longer once fewer
    tiles are left, so that long lists of a few tiles take few steps."""
    sizes, start = [], 0
    while start < lengths[0]:
        n_left = bisect.bisect_left([-n for n in lengths], -start)  # lists longer than start
        size = min(max(slab, slab_elements // (n_left * pixels)), lengths[0] - start)
        sizes.append(size)
        start += size
    return sizes


def _chunks(tile_ids: Tensor, tile_counts: Tensor, pixels: int, max_elements: int) -> list[Tensor]:
    """Splits non-empty tiles, longest list first, into groups of about `max_elements` entries."""
    lengths = tile_counts[tile_ids].tolist()
    groups, start = [], 0
    while start < len(lengths):
        size = max(1, max_elements // (lengths[start] * pixels))
        groups.append(tile_ids[start : start + size])
        start += size
    return groups


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
    max_chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    slab: int = DEFAULT_SLAB,
    slab_elements: int = DEFAULT_SLAB_ELEMENTS,
) -> tuple[Tensor, Tensor]:
    """Composites projected Gaussians into C images (gsplat's `rasterize_to_pixels`).

    Args:
        means2d: [C, N, 2]; conics: [C, N, 3]; opacities: [C, N]; features: [C, N, D].
        isect: the tile lists from `intersect_tiles`.
        width, height: image size; tile_size: as given to `intersect_tiles`.
        backgrounds: [C, D] or None (black).
        max_chunk_elements: (list entry, pixel) pairs per chunk of tiles; bounds memory.
        slab: fewest list entries evaluated per step between early-exit checks.
        slab_elements: (entry, pixel) pairs aimed at per step; steps get longer as tiles end.

    Returns:
        colors [C, H, W, D] and alpha [C, H, W, 1].
    """
    n_cams, _, n_feat = features.shape
    pixels = tile_size * tile_size
    per_gauss = torch.cat([means2d, conics, opacities[..., None], features], dim=-1)  # [C, N, 6+D]
    # One all-zero row at the end stands for padding: opacity 0 makes its alpha 0 everywhere.
    table = torch.cat([per_gauss.reshape(-1, 6 + n_feat), per_gauss.new_zeros(1, 6 + n_feat)])
    null_row = table.shape[0] - 1

    nonempty = torch.nonzero(isect.tile_counts).squeeze(1)
    nonempty = nonempty[torch.argsort(isect.tile_counts[nonempty], descending=True, stable=True)]
    groups = _chunks(nonempty, isect.tile_counts, pixels, max_chunk_elements)
    offsets = torch.arange(tile_size, device=means2d.device, dtype=means2d.dtype) + 0.5
    use_checkpoint = torch.is_grad_enabled() and table.requires_grad
    results = []
    for tiles in groups:
        lengths = isect.tile_counts[tiles]  # [T], longest first
        slot = torch.arange(int(lengths[0]), device=tiles.device)
        entry = (isect.tile_offsets[tiles][:, None] + slot).clamp_max(len(isect.flatten_ids) - 1)
        gid = torch.where(slot < lengths[:, None], isect.flatten_ids[entry], null_row)  # [T, L]
        local = tiles % (isect.tile_width * isect.tile_height)
        pix_x = (local % isect.tile_width)[:, None] * tile_size + offsets  # [T, s]
        pix_y = (
            torch.div(local, isect.tile_width, rounding_mode="floor")[:, None] * tile_size + offsets
        )
        slabs = _slab_sizes(lengths.tolist(), pixels, slab, slab_elements)
        args = (table[gid], pix_x, pix_y, lengths, slabs)
        if use_checkpoint:
            results.append(checkpoint(_composite_tiles, *args, use_reentrant=False))
        else:
            results.append(_composite_tiles(*args))

    if not groups:
        # Nothing visible. gsplat's images still depend on every input (its DefaultStrategy reads
        # means2d.grad even then), so make ours from an empty result that backward reaches.
        groups, results = [nonempty], [(table.sum() * 0.0).expand(0, pixels, n_feat + 1)]
    tiles_all = torch.cat(groups)
    n_tiles = n_cams * isect.tile_height * isect.tile_width
    out = features.new_zeros(n_tiles, pixels, n_feat + 1).index_copy(
        0, tiles_all, torch.cat(results)
    )
    out = out.reshape(n_cams, isect.tile_height, isect.tile_width, tile_size, tile_size, n_feat + 1)
    out = out.permute(0, 1, 3, 2, 4, 5).reshape(
        n_cams, isect.tile_height * tile_size, isect.tile_width * tile_size, n_feat + 1
    )[:, :height, :width]
    colors, alpha = out[..., :n_feat], out[..., n_feat:]
    if backgrounds is not None:
        colors = colors + (1.0 - alpha) * backgrounds[:, None, None, :]
    return colors, alpha


def rasterize_torch(
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
    """Projection + tiling + compositing on any device; the depth is the last output channel.

    Args:
        means: [N, 3]; quats: [N, 4]; scales: [N, 3]; opacities: [N] (activated).
        features: [C, N, D] per-camera features (colours already evaluated from SH).
        viewmats: [C, 4, 4]; Ks: [C, 3, 3]; backgrounds: [C, D] or None.

    Returns:
        render [C, H, W, D + 1] (features, accumulated depth), alpha [C, H, W, 1] and gsplat's
        unpacked `meta` dict.
    """
    proj = project_gaussians(
        means, quats, scales, opacities, viewmats, Ks, width, height, near_plane, far_plane, eps2d
    )
    isect = intersect_tiles(
        proj.means2d.detach(), proj.radii, proj.depths.detach(), tile_size, width, height
    )
    n_cams = viewmats.shape[0]
    opac = opacities[None].expand(n_cams, -1)  # [C, N]
    with_depth = torch.cat([features, proj.depths[..., None]], dim=-1)  # [C, N, D + 1]
    if backgrounds is not None:  # the depth channel composites over 0, as in gsplat's RGB+D
        backgrounds = torch.cat([backgrounds, backgrounds.new_zeros(n_cams, 1)], dim=-1)
    render, alpha = rasterize_to_pixels(
        proj.means2d, proj.conics, opac, with_depth, isect, width, height, tile_size, backgrounds
    )
    info = {
        "batch_ids": None,
        "camera_ids": None,
        "gaussian_ids": None,
        "radii": proj.radii,
        "means2d": proj.means2d,
        "depths": proj.depths,
        "conics": proj.conics,
        "opacities": opac,
        "tile_width": isect.tile_width,
        "tile_height": isect.tile_height,
        "tiles_per_gauss": isect.tiles_per_gauss,
        "flatten_ids": isect.flatten_ids.int(),
        "isect_offsets": isect.tile_offsets.int().reshape(
            n_cams, isect.tile_height, isect.tile_width
        ),
        "width": width,
        "height": height,
        "tile_size": tile_size,
        "n_batches": 1,
        "n_cameras": n_cams,
    }
    return render, alpha, info
