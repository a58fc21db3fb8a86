// gsedit's native CPU kernels: tile intersection, compositing forward and its closed-form
// backward, and the multi-channel back-projection, with exactly the semantics of the PyTorch
// reference in gsedit/render/torch_rasterizer.py (gsplat 1.5.3's classic rasterizer):
//
// - a Gaussian is listed in every tile its (radius_x, radius_y) box touches, each list front to
//   back (depth, then Gaussian index);
// - pixel centres at (x + 0.5, y + 0.5); sigma = 1/2 d^T conic d with d = mean2d - pixel;
//   alpha = min(0.999, opacity exp(-sigma)), skipped when sigma < 0 or alpha < 1/255;
// - front to back, a pixel stops at the first Gaussian after which T would be <= 1e-4 (that
//   Gaussian excluded); features are the weighted sums, alpha the sum of the weights.
//
// One pixel is walked at a time (as gsplat's CUDA threads do), tiles in parallel on ATen's thread
// pool, taken dynamically since their costs differ by orders of magnitude. Gradients are summed
// per list entry (each entry belongs to one tile, so to one thread) and then per Gaussian in list
// order: results do not depend on the number of threads.
//
// Only ATen's core headers: one translation unit that compiles in seconds (torch/extension.h
// would take ~25 s on two cores), registered as torch.ops.gsedit_native.*.

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <numeric>
#include <tuple>
#include <vector>

namespace {

using at::Tensor;

constexpr double kMaxAlpha = 0.999;         // alpha is clamped below 1 so 1 - alpha divides
constexpr double kMinTransmittance = 1e-4;  // a pixel stops when T would fall to this or below
constexpr double kAlphaThreshold = 1.0 / 255.0;  // fainter contributions are skipped
constexpr int kGeo = 11;  // per list entry: mean x, y, conic a, b, c, opacity, skip bound, box

// Runs body(tile) for every tile in [0, n_tiles), on every thread of ATen's pool.
template <typename F>
void for_each_tile(int64_t n_tiles, const F& body) {
  std::atomic<int64_t> next{0};
  at::parallel_for(0, at::get_num_threads(), 1, [&](int64_t, int64_t) {
    for (int64_t t = next.fetch_add(1); t < n_tiles; t = next.fetch_add(1)) body(t);
  });
}

// The geometry of one tile's list gathered contiguously: kGeo values per entry. The skip bound
// is log(threshold / opacity) less a margin: -sigma below it means alpha < 1/255 for certain, so
// exp is only evaluated where the exact test may pass. The box [x0, x1] x [y0, y1] bounds the
// pixel centres where -sigma reaches the skip bound (the ellipse sigma <= s has half-widths
// sqrt(2 s Sigma_xx), sqrt(2 s Sigma_yy), Sigma = conic^-1), so only those pixels are visited.
template <typename scalar_t>
void gather_geometry(const scalar_t* means2d, const scalar_t* conics, const scalar_t* opacities,
                     const int64_t* ids, int64_t count, std::vector<scalar_t>& geo) {
  geo.resize(count * kGeo);
  for (int64_t k = 0; k < count; ++k) {
    const int64_t g = ids[k];
    scalar_t* row = geo.data() + k * kGeo;
    row[0] = means2d[2 * g];
    row[1] = means2d[2 * g + 1];
    row[2] = conics[3 * g];
    row[3] = conics[3 * g + 1];
    row[4] = conics[3 * g + 2];
    row[5] = opacities[g];
    const double bound = std::log(kAlphaThreshold / static_cast<double>(opacities[g]));
    const double skip = bound - 1e-2 * (1.0 + std::fabs(bound));
    row[6] = static_cast<scalar_t>(skip);
    const double a = row[2], b = row[3], c = row[4], det = a * c - b * b;
    const double inf = std::numeric_limits<double>::infinity();
    double half_x = inf, half_y = inf;  // a conic that is not positive definite: no box
    if (!(skip < 0.0)) {
      half_x = half_y = -1.0;  // alpha < 1/255 everywhere: an empty box
    } else if (a > 0.0 && det > 0.0) {
      const double reach = -2.0 * skip * (1.0 + 1e-6);
      half_x = std::sqrt(reach * c / det) + 1e-6;
      half_y = std::sqrt(reach * a / det) + 1e-6;
    }
    row[7] = static_cast<scalar_t>(row[0] - half_x);
    row[8] = static_cast<scalar_t>(row[0] + half_x);
    row[9] = static_cast<scalar_t>(row[1] - half_y);
    row[10] = static_cast<scalar_t>(row[1] + half_y);
  }
}

// -sigma of an entry at offset (dx, dy), in the reference's order of operations (to the bit).
template <typename scalar_t>
inline scalar_t neg_sigma(const scalar_t* row, scalar_t dx, scalar_t dy) {
  const scalar_t half = scalar_t(-0.5);
  return ((-row[3] * dy) * dx + (half * row[4] * dy) * dy) + (half * row[2] * dx) * dx;
}

// One entry's alpha at a pixel, or 0 when it is skipped there; vis = exp(-sigma) when not.
template <typename scalar_t>
inline scalar_t entry_alpha(const scalar_t* row, scalar_t dx, scalar_t dy, scalar_t& vis) {
  const scalar_t ns = neg_sigma(row, dx, dy);
  if (ns > scalar_t(0) || ns < row[6]) return scalar_t(0);
  vis = std::exp(ns);
  const scalar_t alpha = std::min(static_cast<scalar_t>(kMaxAlpha), row[5] * vis);
  return alpha < static_cast<scalar_t>(kAlphaThreshold) ? scalar_t(0) : alpha;
}

// What a pixel's front-to-back walk keeps of every entry that counts there.
template <typename scalar_t>
struct Hit {
  int64_t k;        // list entry
  scalar_t alpha;   // its alpha
  scalar_t vis;     // exp(-sigma)
  scalar_t trans;   // transmittance before it
};

// Tile geometry shared by the kernels.
struct Tiling {
  int64_t width, height, tile_size, tile_w, tiles_per_cam;
  int64_t x0(int64_t tile) const { return (tile % tiles_per_cam % tile_w) * tile_size; }
  int64_t y0(int64_t tile) const { return (tile % tiles_per_cam / tile_w) * tile_size; }
  // Calls pixel(p, index) for the tile's pixels inside the image: p = y * tile_size + x within the
  // tile, index into the [C, H, W] images.
  template <typename F>
  void pixels(int64_t tile, const F& pixel) const {
    const int64_t image = tile / tiles_per_cam * height * width, x0 = this->x0(tile);
    const int64_t y0 = this->y0(tile);
    for (int64_t j = 0; j < std::min(tile_size, height - y0); ++j)
      for (int64_t i = 0; i < std::min(tile_size, width - x0); ++i)
        pixel(j * tile_size + i, image + (y0 + j) * width + x0 + i);
  }
  template <typename scalar_t>
  scalar_t centre_x(int64_t tile, int64_t p) const {
    return static_cast<scalar_t>(x0(tile) + p % tile_size) + scalar_t(0.5);
  }
  template <typename scalar_t>
  scalar_t centre_y(int64_t tile, int64_t p) const {
    return static_cast<scalar_t>(y0(tile) + p / tile_size) + scalar_t(0.5);
  }
};

// Walks a tile's depth-sorted list front to back for all its pixels at once, each entry over the
// pixels of its box only, carrying every pixel's transmittance; calls hit(pixel, Hit) for every
// (entry, pixel) that counts, in list order for each pixel, pixel = y * tile_size + x within the
// tile. Each pixel sees exactly the sequence of a one-pixel walk (gsplat's), so the stopping rule
// and the results are those of the reference; the tile ends when all its pixels have stopped.
template <typename scalar_t, typename F>
void walk_tile(const scalar_t* geo, int64_t count, const Tiling& tiling, int64_t tile,
               std::vector<scalar_t>& trans, const F& hit) {
  const int64_t s = tiling.tile_size, x0 = tiling.x0(tile), y0 = tiling.y0(tile);
  const int64_t nx = std::min(s, tiling.width - x0), ny = std::min(s, tiling.height - y0);
  trans.assign(s * s, scalar_t(1));  // 0 marks a pixel that has stopped
  int64_t live = nx * ny;
  for (int64_t k = 0; k < count && live > 0; ++k) {
    const scalar_t* row = geo + k * kGeo;
    // Pixel centres x0 + i + 0.5 inside [row[7], row[8]] (and likewise for rows).
    const auto first = [](scalar_t lo, int64_t origin) {
      return static_cast<int64_t>(std::max<double>(std::ceil(lo - scalar_t(0.5) - origin), 0.0));
    };
    const auto last = [](scalar_t hi, int64_t origin, int64_t n) {
      return static_cast<int64_t>(
          std::min<double>(std::floor(hi - scalar_t(0.5) - origin), static_cast<double>(n - 1)));
    };
    const int64_t i0 = first(row[7], x0), i1 = last(row[8], x0, nx);
    const int64_t j0 = first(row[9], y0), j1 = last(row[10], y0, ny);
    for (int64_t j = j0; j <= j1; ++j) {
      const scalar_t py = static_cast<scalar_t>(y0 + j) + scalar_t(0.5);
      const scalar_t dy = row[1] - py;
      for (int64_t i = i0; i <= i1; ++i) {
        const int64_t p = j * s + i;
        const scalar_t t = trans[p];
        if (t == scalar_t(0)) continue;
        scalar_t vis;
        const scalar_t px = static_cast<scalar_t>(x0 + i) + scalar_t(0.5);
        const scalar_t alpha = entry_alpha(row, row[0] - px, dy, vis);
        if (alpha == scalar_t(0)) continue;
        const scalar_t next = t * (scalar_t(1) - alpha);
        if (next <= static_cast<scalar_t>(kMinTransmittance)) {
          trans[p] = 0;
          --live;
          continue;
        }
        hit(p, Hit<scalar_t>{k, alpha, vis, t});
        trans[p] = next;
      }
    }
  }
}

void check_cpu(const Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous(), name, " must be a contiguous CPU tensor");
}

// The floating-point inputs of a kernel, which all share one dtype.
void check_floats(std::initializer_list<const Tensor*> tensors) {
  for (const Tensor* t : tensors) {
    check_cpu(*t, "every input");
    TORCH_CHECK(t->scalar_type() == (*tensors.begin())->scalar_type(),
                "every floating-point input must have the same dtype");
  }
}

// ---------------------------------------------------------------------------- tile intersection

// Every (Gaussian, tile) overlap: means2d [C, N, 2], radii [C, N, 2] int32, depths [C, N].
// Returns flatten_ids [M] (into C * N), tile_counts [C * T], tile_offsets [C * T] (int64) and
// tiles_per_gauss [C, N] int32, as torch_rasterizer.intersect_tiles.
std::tuple<Tensor, Tensor, Tensor, Tensor> intersect_tiles(
    const Tensor& means2d, const Tensor& radii, const Tensor& depths, int64_t tile_size,
    int64_t tile_w, int64_t tile_h) {
  check_floats({&means2d, &depths});
  check_cpu(radii, "radii");
  TORCH_CHECK(radii.scalar_type() == at::kInt, "radii must be int32");
  const int64_t n_cams = means2d.size(0), n_gauss = means2d.size(1);
  const int64_t tiles = tile_w * tile_h;
  auto ilong = means2d.options().dtype(at::kLong);
  Tensor per_gauss = at::empty({n_cams, n_gauss}, means2d.options().dtype(at::kInt));
  Tensor tile_counts = at::zeros({n_cams * tiles}, ilong);
  Tensor tile_offsets = at::empty({n_cams * tiles}, ilong);
  std::vector<int64_t> box(n_cams * n_gauss * 4);  // lo x, lo y, hi x, hi y in tiles
  std::vector<std::vector<int64_t>> orders(n_cams);
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "intersect_tiles", [&] {
    const scalar_t* mean = means2d.data_ptr<scalar_t>();
    const scalar_t* depth = depths.data_ptr<scalar_t>();
    const int32_t* radius = radii.data_ptr<int32_t>();
    int32_t* counts = per_gauss.data_ptr<int32_t>();
    at::parallel_for(0, n_cams * n_gauss, 4096, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        int64_t* b = box.data() + 4 * i;
        const bool seen = radius[2 * i] > 0 && radius[2 * i + 1] > 0;
        for (int axis = 0; axis < 2; ++axis) {
          const scalar_t centre = mean[2 * i + axis] / static_cast<scalar_t>(tile_size);
          const scalar_t reach =
              static_cast<scalar_t>(radius[2 * i + axis]) / static_cast<scalar_t>(tile_size);
          const double grid = static_cast<double>(axis == 0 ? tile_w : tile_h);
          const double lo = std::min(std::max<double>(std::floor(centre - reach), 0.0), grid);
          const double hi = std::min(std::max<double>(std::ceil(centre + reach), 0.0), grid);
          b[axis] = static_cast<int64_t>(lo);
          b[2 + axis] = seen ? static_cast<int64_t>(hi) : b[axis];
        }
        counts[i] = static_cast<int32_t>((b[2] - b[0]) * (b[3] - b[1]));
      }
    });
    // Front to back per camera; ties keep the lower index first (a stable sort).
    at::parallel_for(0, n_cams, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        std::vector<int64_t>& order = orders[c];
        for (int64_t n = 0; n < n_gauss; ++n)
          if (counts[c * n_gauss + n] > 0) order.push_back(n);
        const scalar_t* d = depth + c * n_gauss;
        std::stable_sort(order.begin(), order.end(),
                         [d](int64_t a, int64_t b) { return d[a] < d[b]; });
      }
    });
  });
  // Counting sort by tile: each tile's list then keeps the depth order.
  int64_t* tcount = tile_counts.data_ptr<int64_t>();
  for (int64_t c = 0; c < n_cams; ++c)
    for (int64_t n : orders[c]) {
      const int64_t* b = box.data() + 4 * (c * n_gauss + n);
      for (int64_t ty = b[1]; ty < b[3]; ++ty)
        for (int64_t tx = b[0]; tx < b[2]; ++tx) ++tcount[c * tiles + ty * tile_w + tx];
    }
  int64_t* toffset = tile_offsets.data_ptr<int64_t>();
  int64_t total = 0;
  for (int64_t t = 0; t < n_cams * tiles; ++t) {
    toffset[t] = total;
    total += tcount[t];
  }
  Tensor flatten_ids = at::empty({total}, ilong);
  int64_t* ids = flatten_ids.data_ptr<int64_t>();
  at::parallel_for(0, n_cams, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      std::vector<int64_t> cursor(toffset + c * tiles, toffset + (c + 1) * tiles);
      for (int64_t n : orders[c]) {
        const int64_t* b = box.data() + 4 * (c * n_gauss + n);
        for (int64_t ty = b[1]; ty < b[3]; ++ty)
          for (int64_t tx = b[0]; tx < b[2]; ++tx) ids[cursor[ty * tile_w + tx]++] = c * n_gauss + n;
      }
    }
  });
  return {flatten_ids, tile_counts, tile_offsets, per_gauss};
}

// ---------------------------------------------------------------------------- compositing

struct Lists {
  const int64_t* ids;
  const int64_t* offsets;
  const int64_t* counts;
  int64_t n_tiles;
};

Lists lists_of(const Tensor& flatten_ids, const Tensor& tile_offsets, const Tensor& tile_counts) {
  check_cpu(flatten_ids, "flatten_ids");
  check_cpu(tile_offsets, "tile_offsets");
  check_cpu(tile_counts, "tile_counts");
  return {flatten_ids.data_ptr<int64_t>(), tile_offsets.data_ptr<int64_t>(),
          tile_counts.data_ptr<int64_t>(), tile_counts.numel()};
}

// means2d [C, N, 2], conics [C, N, 3], opacities [C, N], features [C, N, D] -> colors
// [C, H, W, D] and alpha [C, H, W, 1], over black.
std::tuple<Tensor, Tensor> composite_forward(
    const Tensor& means2d, const Tensor& conics, const Tensor& opacities, const Tensor& features,
    const Tensor& flatten_ids, const Tensor& tile_offsets, const Tensor& tile_counts,
    int64_t width, int64_t height, int64_t tile_size, int64_t tile_w) {
  check_floats({&means2d, &conics, &opacities, &features});
  const Lists lists = lists_of(flatten_ids, tile_offsets, tile_counts);
  const int64_t n_cams = means2d.size(0), n_feat = features.size(2);
  const Tiling tiling{width, height, tile_size, tile_w, lists.n_tiles / n_cams};
  Tensor colors = at::zeros({n_cams, height, width, n_feat}, features.options());
  Tensor alphas = at::zeros({n_cams, height, width, 1}, features.options());
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "composite_forward", [&] {
    const scalar_t* feats = features.data_ptr<scalar_t>();
    scalar_t* out = colors.data_ptr<scalar_t>();
    scalar_t* out_alpha = alphas.data_ptr<scalar_t>();
    for_each_tile(lists.n_tiles, [&](int64_t tile) {
      const int64_t count = lists.counts[tile];
      if (count == 0) return;
      const int64_t* ids = lists.ids + lists.offsets[tile];
      thread_local std::vector<scalar_t> geo;
      gather_geometry(means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(),
                      opacities.data_ptr<scalar_t>(), ids, count, geo);
      thread_local std::vector<scalar_t> trans, sums;  // per pixel: features then alpha
      sums.assign(tile_size * tile_size * (n_feat + 1), scalar_t(0));
      walk_tile(geo.data(), count, tiling, tile, trans, [&](int64_t p, const Hit<scalar_t>& h) {
        const scalar_t w = h.alpha * h.trans;
        const scalar_t* f = feats + ids[h.k] * n_feat;
        scalar_t* sum = sums.data() + p * (n_feat + 1);
        for (int64_t d = 0; d < n_feat; ++d) sum[d] += w * f[d];
        sum[n_feat] += w;
      });
      tiling.pixels(tile, [&](int64_t p, int64_t index) {
        const scalar_t* sum = sums.data() + p * (n_feat + 1);
        std::copy(sum, sum + n_feat, out + index * n_feat);
        out_alpha[index] = sum[n_feat];
      });
    });
  });
  return {colors, alphas};
}

// Sums per-entry rows [M, R] into per-Gaussian rows [G, R] in list order (deterministic).
template <typename scalar_t>
void sum_entries(const scalar_t* per_entry, const int64_t* ids, int64_t n_entries, int64_t width,
                 scalar_t* out) {
  // Columns are independent: split them over threads, each walking the entries in order.
  at::parallel_for(0, width, 1, [&](int64_t begin, int64_t end) {
    for (int64_t m = 0; m < n_entries; ++m)
      for (int64_t r = begin; r < end; ++r) out[ids[m] * width + r] += per_entry[m * width + r];
  });
}

// Gradients of composite_forward w.r.t. means2d, conics, opacities and features, from those of
// its colors [C, H, W, D] and alpha [C, H, W, 1].
//
// With c_i = g . f_i + g_alpha, w_i = alpha_i T_i and S_i the sum of w_k c_k over the later
// entries k that count: dL/df_i = w_i g and dL/dalpha_i = T_i c_i - S_i / (1 - alpha_i); then
// dL/dsigma = -alpha dL/dalpha, dL/do = exp(-sigma) dL/dalpha, both 0 where alpha is clamped.
std::tuple<Tensor, Tensor, Tensor, Tensor> composite_backward(
    const Tensor& means2d, const Tensor& conics, const Tensor& opacities, const Tensor& features,
    const Tensor& flatten_ids, const Tensor& tile_offsets, const Tensor& tile_counts,
    int64_t width, int64_t height, int64_t tile_size, int64_t tile_w, const Tensor& grad_colors,
    const Tensor& grad_alpha) {
  check_floats({&means2d, &conics, &opacities, &features, &grad_colors, &grad_alpha});
  const Lists lists = lists_of(flatten_ids, tile_offsets, tile_counts);
  const int64_t n_cams = means2d.size(0), n_gauss = means2d.size(1), n_feat = features.size(2);
  const int64_t row_width = 6 + n_feat;  // mean x, y, conic a, b, c, opacity, features
  const Tiling tiling{width, height, tile_size, tile_w, lists.n_tiles / n_cams};
  Tensor per_entry = at::zeros({flatten_ids.numel(), row_width}, features.options());
  Tensor per_gauss = at::zeros({n_cams * n_gauss, row_width}, features.options());
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "composite_backward", [&] {
    const scalar_t* feats = features.data_ptr<scalar_t>();
    const scalar_t* g_color = grad_colors.data_ptr<scalar_t>();
    const scalar_t* g_alpha = grad_alpha.data_ptr<scalar_t>();
    scalar_t* grads = per_entry.data_ptr<scalar_t>();
    for_each_tile(lists.n_tiles, [&](int64_t tile) {
      const int64_t count = lists.counts[tile];
      if (count == 0) return;
      const int64_t* ids = lists.ids + lists.offsets[tile];
      scalar_t* tile_grads = grads + lists.offsets[tile] * row_width;
      thread_local std::vector<scalar_t> geo;
      thread_local std::vector<std::vector<Hit<scalar_t>>> hits;  // per pixel
      gather_geometry(means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(),
                      opacities.data_ptr<scalar_t>(), ids, count, geo);
      thread_local std::vector<scalar_t> trans;
      hits.resize(tile_size * tile_size);
      for (auto& pixel_hits : hits) pixel_hits.clear();
      walk_tile(geo.data(), count, tiling, tile, trans,
                [&](int64_t p, const Hit<scalar_t>& h) { hits[p].push_back(h); });
      tiling.pixels(tile, [&](int64_t p, int64_t index) {
        const scalar_t px = tiling.centre_x<scalar_t>(tile, p);
        const scalar_t py = tiling.centre_y<scalar_t>(tile, p);
        const scalar_t* g = g_color + index * n_feat;
        const scalar_t ga = g_alpha[index];
        scalar_t later = 0;  // S: sum of w c over the entries after the current one
        for (auto h = hits[p].rbegin(); h != hits[p].rend(); ++h) {
          const scalar_t* f = feats + ids[h->k] * n_feat;
          scalar_t* out = tile_grads + h->k * row_width;
          const scalar_t w = h->alpha * h->trans;
          scalar_t c = ga;
          for (int64_t d = 0; d < n_feat; ++d) {
            c += g[d] * f[d];
            out[6 + d] += w * g[d];
          }
          const scalar_t d_alpha = h->trans * c - later / (scalar_t(1) - h->alpha);
          later += w * c;
          if (!(h->alpha < static_cast<scalar_t>(kMaxAlpha))) continue;  // clamped: no gradient
          const scalar_t* row = geo.data() + h->k * kGeo;
          const scalar_t dx = row[0] - px, dy = row[1] - py;
          const scalar_t d_sigma = -h->alpha * d_alpha;
          out[0] += d_sigma * (row[2] * dx + row[3] * dy);
          out[1] += d_sigma * (row[3] * dx + row[4] * dy);
          out[2] += scalar_t(0.5) * d_sigma * dx * dx;
          out[3] += d_sigma * dx * dy;
          out[4] += scalar_t(0.5) * d_sigma * dy * dy;
          out[5] += h->vis * d_alpha;
        }
      });
    });
    sum_entries(grads, lists.ids, flatten_ids.numel(), row_width,
                per_gauss.data_ptr<scalar_t>());
  });
  auto split = per_gauss.view({n_cams, n_gauss, row_width}).split_with_sizes({2, 3, 1, n_feat}, 2);
  return {split[0].contiguous(), split[1].contiguous(), split[2].squeeze(2).contiguous(),
          split[3].contiguous()};
}

// ---------------------------------------------------------------------------- back-projection

// For maps [C, H, W, L]: [C * N, L + 1] per Gaussian, the sum over pixels of its blending weight
// times each map, then the sum of its weights (one forward walk for every channel at once).
Tensor blend_sums(const Tensor& means2d, const Tensor& conics, const Tensor& opacities,
                  const Tensor& flatten_ids, const Tensor& tile_offsets, const Tensor& tile_counts,
                  int64_t width, int64_t height, int64_t tile_size, int64_t tile_w,
                  const Tensor& maps) {
  check_floats({&means2d, &conics, &opacities, &maps});
  const Lists lists = lists_of(flatten_ids, tile_offsets, tile_counts);
  const int64_t n_cams = means2d.size(0), n_gauss = means2d.size(1), n_maps = maps.size(3);
  const int64_t row_width = n_maps + 1;
  const Tiling tiling{width, height, tile_size, tile_w, lists.n_tiles / n_cams};
  Tensor per_entry = at::zeros({flatten_ids.numel(), row_width}, maps.options());
  Tensor per_gauss = at::zeros({n_cams * n_gauss, row_width}, maps.options());
  AT_DISPATCH_FLOATING_TYPES(maps.scalar_type(), "blend_sums", [&] {
    const scalar_t* values = maps.data_ptr<scalar_t>();
    scalar_t* sums = per_entry.data_ptr<scalar_t>();
    for_each_tile(lists.n_tiles, [&](int64_t tile) {
      const int64_t count = lists.counts[tile];
      if (count == 0) return;
      const int64_t* ids = lists.ids + lists.offsets[tile];
      scalar_t* tile_sums = sums + lists.offsets[tile] * row_width;
      thread_local std::vector<scalar_t> geo;
      gather_geometry(means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(),
                      opacities.data_ptr<scalar_t>(), ids, count, geo);
      thread_local std::vector<scalar_t> trans;
      const int64_t image = tile / tiling.tiles_per_cam * height * width;
      const int64_t x0 = tiling.x0(tile), y0 = tiling.y0(tile);
      walk_tile(geo.data(), count, tiling, tile, trans, [&](int64_t p, const Hit<scalar_t>& h) {
        const int64_t index = image + (y0 + p / tile_size) * width + x0 + p % tile_size;
        const scalar_t* value = values + index * n_maps;
        const scalar_t w = h.alpha * h.trans;
        scalar_t* out = tile_sums + h.k * row_width;
        for (int64_t l = 0; l < n_maps; ++l) out[l] += w * value[l];
        out[n_maps] += w;
      });
    });
    sum_entries(sums, lists.ids, flatten_ids.numel(), row_width, per_gauss.data_ptr<scalar_t>());
  });
  return per_gauss;
}

}  // namespace

TORCH_LIBRARY(gsedit_native, m) {
  m.def("intersect_tiles", &intersect_tiles);
  m.def("composite_forward", &composite_forward);
  m.def("composite_backward", &composite_backward);
  m.def("blend_sums", &blend_sums);
}
