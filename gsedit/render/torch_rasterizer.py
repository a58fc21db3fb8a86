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
tile). Masks multiply as 0/1 floats rather than going through torch.where, which is several times
slower on CPU.

Backward (`_CompositeTiles`) is in closed form, as gsplat's CUDA backward: forward keeps only the
chunk's table and each slab's starting transmittance [tiles, pixels]; backward retraces the slabs
back to front, a few tiles at a time, recomputing alpha and carrying each pixel's sum of the later
entries' contributions. It costs about one and a half forward passes; autograd through the walk
under `torch.utils.checkpoint` (recompute + autograd backward, about four), kept as the reference
twin of the closed form, is chosen with `backward="autograd"`.

Complexity: with I (Gaussian, tile) intersections and s x s tiles, time is
O(sum over tiles of min(list length, depth at which the tile saturates) * s^2 * D) for D
channels, plus O(I log I) for the two sorts and O(C N) for projection. Memory is
O(I + C N (6 + D) + C H W D) plus one slab: about `slab_elements` (entry, pixel) pairs of ~40
bytes each (float32). For backward, the chunks' tables stay (O(I (6 + D)) with padding) with each
slab's starting transmittance (a float per 32 walked (entry, pixel) pairs at most); the autograd
twin holds one chunk's graph instead, about `max_chunk_elements` pairs. Small tiles waste less
work on a Gaussian's footprint and let saturated tiles stop sooner, hence the CPU default of 8 x 8.

Why one module over 400 lines: a third of it is this description, and the forward walk, its
closed-form backward and the autograd twin share one slab layout and must change together.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch.utils.checkpoint import checkpoint

from gsedit.render.projection import ALPHA_THRESHOLD, TileIntersections, project_gaussians

MAX_ALPHA = 0.999  # gsplat clamps alpha below 1 so that 1 - alpha can be divided by
MIN_TRANSMITTANCE = 1e-4  # a pixel stops when T would fall to this or below
DEFAULT_CHUNK_ELEMENTS = 1 << 22  # (list entry, pixel) pairs per chunk of tiles
DEFAULT_SLAB = 32  # fewest list entries per step between early-exit checks
DEFAULT_SLAB_ELEMENTS = 1 << 20  # (entry, pixel) pairs aimed at per step
BACKWARD_BLOCK_ELEMENTS = 1 << 19  # (entry, pixel) pairs per step of backward's retrace


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


def _offsets(means2d: Tensor, pix_x: Tensor, pix_y: Tensor) -> tuple[Tensor, Tensor]:
    """dx, dy [T, B, s]: mean2d [T, B, 2] minus each tile's pixel-centre columns / rows [T, s]."""
    return means2d[..., 0, None] - pix_x[:, None, :], means2d[..., 1, None] - pix_y[:, None, :]


def _alphas(dx: Tensor, dy: Tensor, conics: Tensor, opacities: Tensor) -> Tensor:
    """gsplat's per-pixel alpha of every listed Gaussian, 0 where skipped.

    Args:
        dx, dy: [T, B, s] from `_offsets`; conics: [T, B, 3]; opacities: [T, B].

    Returns:
        [T, B, s * s] (row-major pixels).
    """
    a, b, c = conics.unbind(-1)  # [T, B]
    # sigma is separable except for the cross term: build it as row + column + outer product,
    # negated from the small factors on (exact, so that this is -sigma to the bit).
    sig_x = -0.5 * a[..., None] * dx * dx  # [T, B, s]
    sig_y = -0.5 * c[..., None] * dy * dy
    neg_sigma = (-b[..., None] * dy)[..., :, None] * dx[..., None, :]  # [T, B, s, s] cross term
    neg_sigma += sig_y[..., :, None]
    neg_sigma += sig_x[..., None, :]
    neg_sigma = neg_sigma.flatten(-2)  # [T, B, P]
    alpha = torch.clamp_max(opacities[..., None] * torch.exp(neg_sigma), MAX_ALPHA)
    keep = _indicator(torch.le, neg_sigma, 0.0)  # sigma >= 0
    return alpha * keep.mul_(_indicator(torch.ge, alpha, ALPHA_THRESHOLD))


def _indicator(compare, tensor: Tensor, value: float) -> Tensor:
    """1.0 where `compare(tensor, value)` holds, else 0.0, in tensor's dtype and shape.

    Multiplying by this (exact on finite values) is several times faster on CPU than torch.where
    on a bool mask, and so is comparing into a float tensor rather than a bool one.
    """
    return compare(tensor, value, out=torch.empty_like(tensor))


def _slab_weights(alpha: Tensor, trans: Tensor) -> tuple[Tensor, Tensor]:
    """Blending weights [A, B, P] of a slab's alphas [A, B, P] behind transmittance [A, P], and
    the transmittance after the slab [A, P]."""
    # Transmittance as a running product, like gsplat's sequential T *= 1 - alpha.
    t_after = trans[:, None] * torch.cumprod(1.0 - alpha, dim=1)  # [A, B, P]
    t_before = torch.cat([trans[:, None], t_after[:, :-1]], dim=1)
    weights = alpha * t_before * _indicator(torch.gt, t_after, MIN_TRANSMITTANCE)
    return weights, t_after[:, -1].clone()  # a copy, so that a saved step keeps [A, P] only


@dataclass
class _SlabStep:
    """One step of a chunk's walk: which tiles took it, from where, and their pixels' T then."""

    start: int  # first list entry of the slab
    size: int  # list entries in the slab
    rows: Tensor  # [A] tiles walked (indices into the chunk)
    trans: Tensor  # [A, P] transmittance of their pixels before the slab


def _walk(
    entries: Tensor, pix_x: Tensor, pix_y: Tensor, lengths: Tensor, slabs: list[int]
) -> tuple[Tensor, list[_SlabStep]]:
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
        [T, s * s, D + 1]: composited features (row-major pixels), then alpha; and the steps
        taken, which `_walk_backward` retraces.
    """
    n_tiles, n_pix = pix_x.shape[0], pix_x.shape[1] ** 2
    rows = torch.arange(n_tiles, device=entries.device)  # tiles still being walked
    trans = entries.new_ones(n_tiles, n_pix)  # their pixels' T before the next slab
    steps, results = [], []
    # Slabs by split, not by indexing: autograd then assembles the entries' gradient once.
    start = 0
    for slab_entries in entries.split(slabs, dim=1):
        live = (lengths[rows] > start) & (trans > MIN_TRANSMITTANCE).any(-1)
        if not live.all():
            rows, trans = rows[live], trans[live]
            if len(rows) == 0:
                break
        steps.append(_SlabStep(start, slab_entries.shape[1], rows, trans))
        start += slab_entries.shape[1]
        part = slab_entries[rows]  # [A, B, 6 + D]
        dx, dy = _offsets(part[..., 0:2], pix_x[rows], pix_y[rows])
        weights, trans = _slab_weights(_alphas(dx, dy, part[..., 2:5], part[..., 5]), trans)
        colors = weights.transpose(1, 2) @ part[..., 6:]  # [A, P, D]
        results.append(torch.cat([colors, weights.sum(dim=1)[..., None]], dim=-1))
    out = entries.new_zeros(n_tiles, n_pix, entries.shape[-1] - 5)
    if results:
        out = out.index_add(0, torch.cat([step.rows for step in steps]), torch.cat(results))
    return out, steps


def _walk_backward(
    entries: Tensor, pix_x: Tensor, pix_y: Tensor, steps: list[_SlabStep], grad_out: Tensor
) -> Tensor:
    """Gradient [T, L, 6 + D] of `_walk` w.r.t. its entries, given that of its output
    [T, P, D + 1], in closed form: the steps are retraced back to front, each slab's alphas
    recomputed (gsplat's CUDA backward does the same per Gaussian).

    With c_i = g . f_i + g_alpha (g: the pixel's output gradient), w_i = alpha_i T_i and
    S_i = sum over later entries k of w_k c_k (carried from slab to slab):
    dL/df_i = sum_p w_i g and dL/dalpha_i = T_i c_i - S_i / (1 - alpha_i), for the entries that
    count (neither skipped nor past the pixel's stop); alpha = o exp(-sigma) then gives
    dL/dsigma = -alpha dL/dalpha and dL/do = -(sum_p dL/dsigma) / o, except where alpha is
    clamped, whose gradient is 0 (as torch.clamp_max's, including at the tie).
    """
    grad = torch.zeros_like(entries)
    later = grad_out.new_zeros(grad_out.shape[:2])  # [T, P] S after the slab being retraced
    for step in reversed(steps):
        end = step.start + step.size
        # Tiles are independent: blocks of them bound the size (and cache misses) of each step.
        per_block = max(1, BACKWARD_BLOCK_ELEMENTS // (step.size * grad_out.shape[1]))
        for rows, trans in zip(step.rows.split(per_block), step.trans.split(per_block)):
            part = entries[rows, step.start : end]  # [A, B, 6 + D]
            g = grad_out[rows]  # [A, P, D + 1]
            dx, dy = _offsets(part[..., 0:2], pix_x[rows], pix_y[rows])  # [A, B, s]
            alpha_grad, weights, later[rows] = _slab_backward(dx, dy, part, trans, g, later[rows])
            grad[rows, step.start : end] = _entry_gradient(alpha_grad, dx, dy, part, weights, g)
    return grad


def _slab_backward(
    dx: Tensor, dy: Tensor, part: Tensor, trans: Tensor, g: Tensor, later: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """alpha dL/dalpha [A, B, P] (= -dL/dsigma) of a slab's entries [A, B, 6 + D] (offsets
    dx, dy [A, B, s]) behind transmittance trans [A, P], from the output gradient g [A, P, D + 1]
    and S after the slab (later [A, P]); also the weights [A, B, P] and S before the slab."""
    alpha = _alphas(dx, dy, part[..., 2:5], part[..., 5])  # [A, B, P]
    weights, _ = _slab_weights(alpha, trans)
    contrib = torch.baddbmm(g[:, None, :, -1], part[..., 6:], g[..., :-1].transpose(1, 2))
    contrib.mul_(weights)  # [A, B, P] w c
    # Suffix sums within the slab from the running sum; the last running value, not a
    # separate sum, so that entries after a pixel's stop (weight 0) get exactly S = 0.
    running = torch.cumsum(contrib, dim=1)  # [A, B, P]
    before = running[:, -1] + later  # [A, P]
    suffix = torch.sub(before[:, None], running, out=running)  # [A, B, P] S_i
    # alpha dL/dalpha = w c - alpha S / (1 - alpha); 0 for skipped entries (alpha = 0, w = 0)
    # and for entries past the stop (S = 0, w = 0) by construction.
    alpha_grad = torch.addcdiv(contrib, suffix.mul_(alpha), 1.0 - alpha, value=-1.0)
    return alpha_grad.mul_(_indicator(torch.lt, alpha, MAX_ALPHA)), weights, before


def _entry_gradient(
    alpha_grad: Tensor, dx: Tensor, dy: Tensor, part: Tensor, weights: Tensor, g: Tensor
) -> Tensor:
    """[A, B, 6 + D] gradient of a slab's entries [A, B, 6 + D] from alpha dL/dalpha [A, B, P],
    the offsets dx, dy [A, B, s], the weights [A, B, P] and the output gradient g [A, P, D + 1].

    dL/dsigma = -alpha dL/dalpha, and sigma = a dx^2 / 2 + b dx dy + c dy^2 / 2 is separable:
    the sums over the s x s pixels reduce to sums over columns and rows.
    """
    a, b, c, opac = part[..., 2:6].unbind(-1)  # [A, B]
    per_pix = alpha_grad.unflatten(-1, (dx.shape[-1], dx.shape[-1]))  # [A, B, s(y), s(x)]
    by_col = per_pix.sum(dim=-2)  # [A, B, s] summed over rows, one value per x
    by_row = per_pix.sum(dim=-1)  # [A, B, s] one value per y
    sum_dx, sum_dy = (by_col * dx).sum(-1), (by_row * dy).sum(-1)  # [A, B]
    # alpha = o exp(-sigma): dL/do = sum_p dL/dalpha exp(-sigma) = sum_p alpha dL/dalpha / o.
    # Entries with o < 1/255 are always skipped (sum 0): the clamp only avoids 0 / 0 on padding.
    d_opac = by_row.sum(-1) / opac.clamp_min(torch.finfo(opac.dtype).tiny)
    geometry = torch.stack(
        [
            -(a * sum_dx + b * sum_dy),  # mean x: d sigma / d dx = a dx + b dy
            -(b * sum_dx + c * sum_dy),  # mean y
            -0.5 * (by_col * dx * dx).sum(-1),  # conic a
            -((per_pix @ dx[..., None]).squeeze(-1) * dy).sum(-1),  # conic b
            -0.5 * (by_row * dy * dy).sum(-1),  # conic c
            d_opac,
        ],
        dim=-1,
    )  # [A, B, 6]
    d_feats = (g[..., :-1].transpose(1, 2) @ weights.transpose(1, 2)).transpose(1, 2)  # [A, B, D]
    return torch.cat([geometry, d_feats], dim=-1)


class _CompositeTiles(torch.autograd.Function):
    """`_walk` with the closed-form backward of `_walk_backward`: forward saves the entries and the
    per-slab transmittance [A, P], so memory stays that of the chunk's table plus one slab."""

    @staticmethod
    def forward(ctx, entries, pix_x, pix_y, lengths, slabs):
        out, steps = _walk(entries, pix_x, pix_y, lengths, slabs)
        ctx.save_for_backward(entries, pix_x, pix_y)
        ctx.steps = steps
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        entries, pix_x, pix_y = ctx.saved_tensors
        grad = _walk_backward(entries, pix_x, pix_y, ctx.steps, grad_out)
        return grad, None, None, None, None


def _composite_autograd(
    entries: Tensor, pix_x: Tensor, pix_y: Tensor, lengths: Tensor, slabs: list[int]
) -> Tensor:
    """`_walk` differentiated by autograd, each chunk recomputed under `torch.utils.checkpoint`:
    the reference twin of `_CompositeTiles` (tests, tools/bench_render.py)."""
    return checkpoint(
        lambda *args: _walk(*args)[0], entries, pix_x, pix_y, lengths, slabs, use_reentrant=False
    )


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
    backward: Literal["closed-form", "autograd"] = "closed-form",
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
        backward: "closed-form" (`_CompositeTiles`), or "autograd" through the compositing under
            checkpoint, the slower reference it is tested and benchmarked against.

    Returns:
        colors [C, H, W, D] and alpha [C, H, W, 1].
    """
    if backward not in ("closed-form", "autograd"):
        raise ValueError(f"backward must be 'closed-form' or 'autograd', got {backward!r}")
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
    composite = _composite_autograd if backward == "autograd" else _CompositeTiles.apply
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
        entries = table.index_select(0, gid.flatten()).unflatten(0, gid.shape)  # [T, L, 6 + D]
        results.append(composite(entries, pix_x, pix_y, lengths, slabs))

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
    backward: Literal["closed-form", "autograd"] = "closed-form",
    kernels: Literal["torch", "native"] = "torch",
) -> tuple[Tensor, Tensor, dict]:
    """Projection + tiling + compositing on any device; the depth is the last output channel.

    Args:
        means: [N, 3]; quats: [N, 4]; scales: [N, 3]; opacities: [N] (activated).
        features: [C, N, D] per-camera features (colours already evaluated from SH).
        viewmats: [C, 4, 4]; Ks: [C, 3, 3]; backgrounds: [C, D] or None.
        backward: how compositing is differentiated, as in `rasterize_to_pixels`.
        kernels: "torch" (this module), or "native": projection, tiling and compositing by the
            C++ kernels of `gsedit.render.native` (CPU; same results, closed-form backwards).

    Returns:
        render [C, H, W, D + 1] (features, accumulated depth), alpha [C, H, W, 1] and gsplat's
        unpacked `meta` dict.
    """
    if kernels == "native":
        from gsedit.render import native

        project, intersect = native.project_gaussians, native.intersect_tiles
        composite, options = native.rasterize_to_pixels, {}
    else:
        project, intersect = project_gaussians, intersect_tiles
        composite, options = rasterize_to_pixels, {"backward": backward}
    proj = project(
        means, quats, scales, opacities, viewmats, Ks, width, height, near_plane, far_plane, eps2d
    )
    isect = intersect(
        proj.means2d.detach(), proj.radii, proj.depths.detach(), tile_size, width, height
    )
    n_cams = viewmats.shape[0]
    opac = opacities[None].expand(n_cams, -1)  # [C, N]
    with_depth = torch.cat([features, proj.depths[..., None]], dim=-1)  # [C, N, D + 1]
    if backgrounds is not None:  # the depth channel composites over 0, as in gsplat's RGB+D
        backgrounds = torch.cat([backgrounds, backgrounds.new_zeros(n_cams, 1)], dim=-1)
    render, alpha = composite(
        proj.means2d,
        proj.conics,
        opac,
        with_depth,
        isect,
        width,
        height,
        tile_size,
        backgrounds,
        **options,
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
