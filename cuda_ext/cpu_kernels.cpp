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
// Tiles run in parallel on ATen's thread pool, taken dynamically since their costs differ by
// orders of magnitude. Within a tile, each list entry is applied to the rows of pixels its
// footprint reaches, a row (the 8-pixel blocks of it in the footprint) at a time with per-pixel
// state (transmittance, still walking): each pixel sees exactly the sequence of gsplat's one-pixel
// walk (the pixels skipped are those it skips, alpha < 1/255), and the row loops have no
// branches or library calls, so the compiler vectorises them. The backward walks back to front
// from each pixel's last entry, recovering T by division, as gsplat's CUDA backward does.
// Gradients are summed per list entry (an entry belongs to one tile, so to one thread) and then
// per Gaussian in list order: results do not depend on the number of threads.
//
// Only ATen's core headers: one translation unit that compiles in about 10 s (torch/extension.h
// alone takes 25 s on two cores), registered as torch.ops.gsedit_native.*.

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <tuple>
#include <utility>
#include <vector>

namespace {

using at::Tensor;

constexpr double kMaxAlpha = 0.999;         // alpha is clamped below 1 so 1 - alpha divides
constexpr double kMinTransmittance = 1e-4;  // a pixel stops when T would fall to this or below
constexpr double kAlphaThreshold = 1.0 / 255.0;  // fainter contributions are skipped
constexpr int kGeo = 10;  // per list entry: mean x, y, conic a, b, c, opacity, box x0 x1 y0 y1

// Runs body(tile) for every tile in [0, n_tiles), on every thread of ATen's pool.
template <typename F>
void for_each_tile(int64_t n_tiles, const F& body) {
  std::atomic<int64_t> next{0};
  at::parallel_for(0, at::get_num_threads(), 1, [&](int64_t, int64_t) {
    for (int64_t t = next.fetch_add(1); t < n_tiles; t = next.fetch_add(1)) body(t);
  });
}

// exp(x) for x <= 0 without a library call, so that the pixel loops vectorise: Cody-Waite
// reduction x = n ln2 + r, |r| <= ln2 / 2, a Taylor polynomial in r, and 2^n from the exponent
// bits (n recovered from the rounding constant's low bits). Within 2 ulp of exp on [-80, 0];
// below -80 it returns exp(-80), which no alpha test can tell from 0.
inline float vexp(float x) {
  x = std::min(std::max(x, -80.0f), 0.0f);
  const float shifted = x * 1.44269504088896341f + 12582912.0f;  // 1.5 * 2^23: round to integer
  const float n = shifted - 12582912.0f;
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (std::bit_cast<int32_t>(shifted) - 0x4B400000 + 127) << 23;
  return p * std::bit_cast<float>(bits);
}

inline double vexp(double x) {
  x = std::min(std::max(x, -80.0), 0.0);
  const double shifted = x * 1.4426950408889634074 + 6755399441055744.0;  // 1.5 * 2^52
  const double n = shifted - 6755399441055744.0;
  const double r = (x - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
  const double c[14] = {1.0,
                        1.0,
                        1.0 / 2.0,
                        1.0 / 6.0,
                        1.0 / 24.0,
                        1.0 / 120.0,
                        1.0 / 720.0,
                        1.0 / 5040.0,
                        1.0 / 40320.0,
                        1.0 / 362880.0,
                        1.0 / 3628800.0,
                        1.0 / 39916800.0,
                        1.0 / 479001600.0,
                        1.0 / 6227020800.0};
  double q = c[13];  // 1 / 13!, the last Taylor coefficient
  for (int k = 12; k >= 0; --k) q = q * r + c[k];
  const int64_t bits = (std::bit_cast<int64_t>(shifted) - 0x4338000000000000LL + 1023) << 52;
  return q * std::bit_cast<double>(bits);
}

// The geometry of one tile's list gathered contiguously: kGeo values per entry, with the box
// [x0, x1] x [y0, y1] of pixel centres where alpha may reach 1/255 (with a margin): the ellipse
// sigma <= s has half-widths sqrt(2 s Sigma_xx), sqrt(2 s Sigma_yy), Sigma = conic^-1, and
// s = ln(255 opacity). Rows of the tile outside the box are not visited. Gaussian g's kGeo values
// go to row.
template <typename scalar_t>
void entry_geometry(const scalar_t* means2d, const scalar_t* conics, const scalar_t* opacities,
                    int64_t g, scalar_t* row) {
  {
    row[0] = means2d[2 * g];
    row[1] = means2d[2 * g + 1];
    row[2] = conics[3 * g];
    row[3] = conics[3 * g + 1];
    row[4] = conics[3 * g + 2];
    row[5] = opacities[g];
    const double reach = std::log(static_cast<double>(opacities[g]) / kAlphaThreshold);
    const double a = row[2], b = row[3], c = row[4], det = a * c - b * b;
    const double inf = std::numeric_limits<double>::infinity();
    double half_x = inf, half_y = inf;  // a conic that is not positive definite: no box
    if (!(reach > -1e-3)) {
      half_x = half_y = -1.0;  // alpha < 1/255 everywhere: an empty box
    } else if (a > 0.0 && det > 0.0) {
      const double level = 2.0 * (std::max(reach, 0.0) * 1.01 + 1e-2);
      half_x = std::sqrt(level * c / det) * 1.001 + 1e-3;
      half_y = std::sqrt(level * a / det) * 1.001 + 1e-3;
    }
    row[6] = static_cast<scalar_t>(row[0] - half_x);
    row[7] = static_cast<scalar_t>(row[0] + half_x);
    row[8] = static_cast<scalar_t>(row[1] - half_y);
    row[9] = static_cast<scalar_t>(row[1] + half_y);
  }
}

// Every Gaussian's geometry, [C * N, kGeo], computed once in parallel before the tiles: a Gaussian
// is listed in every tile it touches (8 to 23 tiles per Gaussian in the dense benchmark scenes at
// 512 px), so per list entry its log and square roots were repeated, and each entry gathered its
// values from three arrays by id; now a tile reads one table row per entry.
template <typename scalar_t>
Tensor geometry_table(const Tensor& means2d, const Tensor& conics, const Tensor& opacities) {
  const int64_t n = opacities.numel();
  Tensor table = at::empty({n, kGeo}, opacities.options());
  const scalar_t* m = means2d.data_ptr<scalar_t>();
  const scalar_t* q = conics.data_ptr<scalar_t>();
  const scalar_t* o = opacities.data_ptr<scalar_t>();
  scalar_t* out = table.data_ptr<scalar_t>();
  at::parallel_for(0, n, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t g = begin; g < end; ++g) entry_geometry(m, q, o, g, out + g * kGeo);
  });
  return table;
}

// A tile's list geometry: row(k) is list entry k's kGeo values.
template <typename scalar_t>
struct ListGeometry {
  const scalar_t* table;
  const int64_t* ids;
  const scalar_t* row(int64_t k) const { return table + ids[k] * kGeo; }
};

// The pixels [i0, i1] of a run of n (centres origin + i + 0.5) that the box [lo, hi] reaches;
// i0 > i1 when none does (also for a NaN box, which no integer conversion may see).
template <typename scalar_t>
inline std::pair<int64_t, int64_t> box_span(scalar_t lo, scalar_t hi, int64_t origin, int64_t n) {
  const double first = std::max(std::ceil(static_cast<double>(lo) - 0.5 - origin), 0.0);
  const double last = std::min(std::floor(static_cast<double>(hi) - 0.5 - origin),
                               static_cast<double>(n - 1));
  if (!(first <= last)) return {1, 0};
  return {static_cast<int64_t>(first), static_cast<int64_t>(last)};
}

// The rows [j0, j1] of a tile (origin y0, ny rows in the image) that an entry's box reaches.
template <typename scalar_t>
inline std::pair<int64_t, int64_t> box_rows(const scalar_t* row, int64_t y0, int64_t ny) {
  return box_span(row[8], row[9], y0, ny);
}

// Tile geometry shared by the kernels.
struct Tiling {
  int64_t width, height, tile_size, tile_w, tiles_per_cam;
  int64_t x0(int64_t tile) const { return (tile % tiles_per_cam % tile_w) * tile_size; }
  int64_t y0(int64_t tile) const { return (tile % tiles_per_cam / tile_w) * tile_size; }
  int64_t nx(int64_t tile) const { return std::min(tile_size, width - x0(tile)); }
  int64_t ny(int64_t tile) const { return std::min(tile_size, height - y0(tile)); }
  // Calls pixel(p, index) for the tile's pixels inside the image: p = y * tile_size + x within
  // the tile, index into the [C, H, W] images.
  template <typename F>
  void pixels(int64_t tile, const F& pixel) const {
    const int64_t image = tile / tiles_per_cam * height * width;
    const int64_t x0 = this->x0(tile), y0 = this->y0(tile);
    for (int64_t j = 0; j < ny(tile); ++j)
      for (int64_t i = 0; i < nx(tile); ++i)
        pixel(j * tile_size + i, image + (y0 + j) * width + x0 + i);
  }
};

// One list entry applied to one row of n pixels (centres px0 + i, py) front to back: each
// walking pixel (live 1) gets the entry's weight w = alpha T, or 0 where it is skipped or where
// the pixel stops (live becomes 0; T stays the one after its last entry). last records k + 1 for
// the entries that count. Returns how many pixels stopped. Masks are 0/1 floats and there is one
// conditional store, so that the loop vectorises (with -fno-trapping-math). The stops are counted
// in integers: a float sum may not be reordered, so it became a serial chain of scalar adds, one
// per pixel, that cost about a tenth of the forward; integer lanes are summed as a tree.
template <typename scalar_t>
inline int32_t row_forward(const scalar_t* __restrict row, scalar_t px0, scalar_t py, int64_t n,
                            scalar_t kk, scalar_t* __restrict trans, scalar_t* __restrict live,
                            scalar_t* __restrict last, scalar_t* __restrict w) {
  const scalar_t half = scalar_t(-0.5), dy = row[1] - py, one = 1, zero = 0;
  const scalar_t cross = -row[3] * dy, sig_y = (half * row[4] * dy) * dy, ha = half * row[2];
  const scalar_t mx = row[0], opacity = row[5];
  int32_t stops = 0;
  for (int32_t i = 0; i < static_cast<int32_t>(n); ++i) {
    const scalar_t dx = mx - (px0 + static_cast<scalar_t>(i));
    const scalar_t ns = (cross * dx + sig_y) + (ha * dx) * dx;  // the reference's -sigma
    const scalar_t alpha = std::min(static_cast<scalar_t>(kMaxAlpha), opacity * vexp(ns));
    const scalar_t t = trans[i];
    const scalar_t counts = live[i] * (ns <= zero ? one : zero) *
                            (alpha >= static_cast<scalar_t>(kAlphaThreshold) ? one : zero);
    const scalar_t next = t * (one - alpha);
    const scalar_t stop = counts * (next <= static_cast<scalar_t>(kMinTransmittance) ? one : zero);
    const scalar_t add = counts - stop;
    w[i] = add * (alpha * t);
    trans[i] = add > zero ? next : t;
    live[i] -= stop;
    last[i] += add * (kk + one - last[i]);  // exact: small integers
    stops += static_cast<int32_t>(stop);
  }
  return stops;
}

// The backward of row_forward for one entry and one row of n pixels, back to front: from T after
// the entry (trans) and S (later), both updated to before it, and c = g . f + g_alpha per pixel,
// the weights w and the entry's gradient summed per column into six lanes [n] (mean x, y, conic
// a, b, c, opacity; separate pointers, so that the compiler needs no aliasing checks). Only the entries before each pixel's last count (k < last).
template <typename scalar_t>
inline void row_backward(const scalar_t* __restrict row, scalar_t px0, scalar_t dy, int64_t n,
                         scalar_t kk, const scalar_t* __restrict last,
                         const scalar_t* __restrict c, scalar_t* __restrict trans,
                         scalar_t* __restrict later, scalar_t* __restrict w,
                         scalar_t* __restrict l_mx, scalar_t* __restrict l_my,
                         scalar_t* __restrict l_a, scalar_t* __restrict l_b,
                         scalar_t* __restrict l_c, scalar_t* __restrict l_o) {
  const scalar_t half = scalar_t(-0.5), one = 1, zero = 0;
  const scalar_t mx = row[0], a = row[2], b = row[3], cc = row[4], opacity = row[5];
  const scalar_t cross = -b * dy, sig_y = (half * cc * dy) * dy, ha = half * a;
  for (int32_t i = 0; i < static_cast<int32_t>(n); ++i) {
    const scalar_t dx = mx - (px0 + static_cast<scalar_t>(i));
    const scalar_t ns = (cross * dx + sig_y) + (ha * dx) * dx;
    const scalar_t vis = vexp(ns);
    const scalar_t alpha = std::min(static_cast<scalar_t>(kMaxAlpha), opacity * vis);
    const scalar_t before_last = last[i] > kk ? one : zero;
    const scalar_t counts = before_last * (ns <= zero ? one : zero) *
                            (alpha >= static_cast<scalar_t>(kAlphaThreshold) ? one : zero);
    const scalar_t keep = one - alpha;
    const scalar_t t = trans[i] / (counts > zero ? keep : one);  // exact T where it does not count
    const scalar_t wi = counts * (alpha * t);
    const scalar_t d_alpha = counts * (t * c[i] - later[i] / keep);
    later[i] += wi * c[i];
    trans[i] = t;
    w[i] = wi;
    const scalar_t free = counts * (alpha < static_cast<scalar_t>(kMaxAlpha) ? one : zero);
    const scalar_t d_sigma = free * (-alpha * d_alpha);
    l_mx[i] += d_sigma * (a * dx + b * dy);
    l_my[i] += d_sigma * (b * dx + cc * dy);
    l_a[i] += scalar_t(0.5) * d_sigma * dx * dx;
    l_b[i] += d_sigma * dx * dy;
    l_c[i] += scalar_t(0.5) * d_sigma * dy * dy;
    l_o[i] += free * (vis * d_alpha);
  }
}

// Per-tile pixel state of a front-to-back walk, [tile_size^2] each.
template <typename scalar_t>
struct WalkState {
  std::vector<scalar_t> trans, live, last, w;
  std::vector<int64_t> row_live;  // pixels still walking, per row
  // Resets for a tile: T = 1 and walking for the pixels in the image, stopped for the others.
  int64_t reset(const Tiling& tiling, int64_t tile) {
    const int64_t s = tiling.tile_size, nx = tiling.nx(tile), ny = tiling.ny(tile);
    trans.assign(s * s, scalar_t(1));
    live.assign(s * s, scalar_t(0));
    last.assign(s * s, scalar_t(0));
    w.assign(s, scalar_t(0));
    for (int64_t j = 0; j < ny; ++j) std::fill_n(live.begin() + j * s, nx, scalar_t(1));
    row_live.assign(s, 0);
    std::fill_n(row_live.begin(), ny, nx);
    return nx * ny;
  }
};

// Walks a tile's list front to back; calls entry_row(k, j, w, begin, end) after entry k was
// applied to the pixels [begin, end) of row j of the tile (w: the row's weights, [tile_size], set
// in [begin, end) only). Stops when every pixel has stopped. Like rows, columns outside the entry's
// box are not visited: the row loop covers the 8-pixel blocks (one 256-bit vector of floats) that
// the box reaches, so a Gaussian that covers part of a tile's width costs half a row.
template <typename scalar_t, typename F>
void walk_tile(const ListGeometry<scalar_t>& geo, int64_t count, const Tiling& tiling, int64_t tile,
               WalkState<scalar_t>& state, const F& entry_row) {
  const int64_t s = tiling.tile_size, x0 = tiling.x0(tile), y0 = tiling.y0(tile);
  const int64_t ny = tiling.ny(tile);
  const scalar_t px0 = static_cast<scalar_t>(x0) + scalar_t(0.5);
  int64_t live = state.reset(tiling, tile);
  for (int64_t k = 0; k < count && live > 0; ++k) {
    const scalar_t* row = geo.row(k);
    const auto [j0, j1] = box_rows(row, y0, ny);
    const auto [i0, i1] = box_span(row[6], row[7], x0, s);
    if (i0 > i1) continue;  // a list's radius box is wider than the alpha >= 1/255 box
    const int64_t b0 = i0 / 8 * 8, b1 = std::min(s, (i1 / 8 + 1) * 8);
    for (int64_t j = j0; j <= j1; ++j) {
      if (state.row_live[j] == 0) continue;  // every pixel of the row has stopped
      const scalar_t py = static_cast<scalar_t>(y0 + j) + scalar_t(0.5);
      const int64_t stops = row_forward(
          row, px0 + static_cast<scalar_t>(b0), py, b1 - b0, static_cast<scalar_t>(k),
          state.trans.data() + j * s + b0, state.live.data() + j * s + b0,
          state.last.data() + j * s + b0, state.w.data() + b0);
      state.row_live[j] -= stops;
      live -= stops;
      entry_row(k, j, state.w.data(), b0, b1);
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
  int64_t* tcount = tile_counts.data_ptr<int64_t>();
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
    // Per camera: front to back, ties by lower index first (sorting (depth, index) pairs, held
    // together in memory, gives the order of a stable sort by depth), then each tile's count.
    at::parallel_for(0, n_cams, 1, [&](int64_t begin, int64_t end) {
      std::vector<std::pair<scalar_t, int64_t>> keyed;
      for (int64_t c = begin; c < end; ++c) {
        const scalar_t* d = depth + c * n_gauss;
        keyed.clear();
        for (int64_t n = 0; n < n_gauss; ++n)
          if (counts[c * n_gauss + n] > 0) keyed.emplace_back(d[n], n);
        std::sort(keyed.begin(), keyed.end());
        std::vector<int64_t>& order = orders[c];
        order.reserve(keyed.size());
        for (const auto& entry : keyed) order.push_back(entry.second);
        int64_t* camera_counts = tcount + c * tiles;
        for (int64_t n : order) {
          const int64_t* b = box.data() + 4 * (c * n_gauss + n);
          for (int64_t ty = b[1]; ty < b[3]; ++ty)
            for (int64_t tx = b[0]; tx < b[2]; ++tx) ++camera_counts[ty * tile_w + tx];
        }
      }
    });
  });
  // Counting sort by tile: each tile's list then keeps the depth order.
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

// ---------------------------------------------------------------------------- projection

// EWA projection as gsedit/render/projection.py (gsplat's fully fused projection, unpacked): per
// camera c and Gaussian n, camera-space mean p = R mu + t (culled outside [near, far], where a
// harmless z = 1 keeps the maths finite), Sigma = R(q) S S R(q)^T, the Jacobian at the mean with
// x/z, y/z clamped to the field of view + 30%, cov2d = J W Sigma W^T J^T + eps2d I, conic its
// inverse (det <= 0: culled, det taken as 1), the opacity-aware radii.
struct Camera {
  double rot[9], trans[3], fx, fy, cx, cy, lim_x_pos, lim_x_neg, lim_y_pos, lim_y_neg;
};

template <typename scalar_t>
std::vector<Camera> cameras_of(const scalar_t* viewmats, const scalar_t* Ks, int64_t n_cams,
                               int64_t width, int64_t height) {
  std::vector<Camera> cams(n_cams);
  for (int64_t c = 0; c < n_cams; ++c) {
    Camera& cam = cams[c];
    const scalar_t* v = viewmats + 16 * c;
    const scalar_t* k = Ks + 9 * c;
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j) cam.rot[3 * i + j] = v[4 * i + j];
      cam.trans[i] = v[4 * i + 3];
    }
    cam.fx = k[0], cam.fy = k[4], cam.cx = k[2], cam.cy = k[5];
    cam.lim_x_pos = (width - cam.cx) / cam.fx + 0.3 * (0.5 * width / cam.fx);
    cam.lim_x_neg = cam.cx / cam.fx + 0.3 * (0.5 * width / cam.fx);
    cam.lim_y_pos = (height - cam.cy) / cam.fy + 0.3 * (0.5 * height / cam.fy);
    cam.lim_y_neg = cam.cy / cam.fy + 0.3 * (0.5 * height / cam.fy);
  }
  return cams;
}

// The world covariance's factors of one Gaussian: normalised quaternion, R(q), M = R(q) S.
struct Shape {
  double q[4], norm, rq[9], m[9];
};

template <typename scalar_t>
Shape shape_of(const scalar_t* quat, const scalar_t* scale) {
  Shape sh;
  const double n = std::sqrt(double(quat[0]) * quat[0] + double(quat[1]) * quat[1] +
                             double(quat[2]) * quat[2] + double(quat[3]) * quat[3]);
  sh.norm = std::max(n, 1e-12);
  for (int i = 0; i < 4; ++i) sh.q[i] = quat[i] / sh.norm;
  const double w = sh.q[0], x = sh.q[1], y = sh.q[2], z = sh.q[3];
  const double r[9] = {1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                       2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                       2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)};
  for (int i = 0; i < 9; ++i) {
    sh.rq[i] = r[i];
    sh.m[i] = r[i] * scale[i % 3];
  }
  return sh;
}

// Everything projection computes for one (camera, Gaussian) pair, kept for the backward.
struct Projected {
  double p[3], z;         // camera-space mean, z as used (1 when culled by depth)
  bool in_depth;
  double cov_c[9];        // W Sigma W^T
  double jac[6];          // 2 x 3
  double tx, ty;          // the clamped x, y (z * clamped x/z)
  bool clamp_x, clamp_y;  // whether the clamps were active
  double a, b, c, det;    // cov2d + eps2d I, and its determinant as used
};

inline void mat3_mul(const double* a, const double* b, double* out) {
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      out[3 * i + j] = a[3 * i] * b[j] + a[3 * i + 1] * b[3 + j] + a[3 * i + 2] * b[6 + j];
}

inline void mat3_mul_bt(const double* a, const double* b, double* out) {  // a b^T
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      out[3 * i + j] = a[3 * i] * b[3 * j] + a[3 * i + 1] * b[3 * j + 1] + a[3 * i + 2] * b[3 * j + 2];
}

inline void mat3_at_b(const double* a, const double* b, double* out) {  // a^T b
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      out[3 * i + j] = a[i] * b[j] + a[3 + i] * b[3 + j] + a[6 + i] * b[6 + j];
}

template <typename scalar_t>
Projected project_one(const Camera& cam, const Shape& sh, const scalar_t* mean, double near,
                      double far, double eps2d) {
  Projected pr;
  for (int i = 0; i < 3; ++i)
    pr.p[i] = cam.rot[3 * i] * mean[0] + cam.rot[3 * i + 1] * mean[1] +
              cam.rot[3 * i + 2] * mean[2] + cam.trans[i];
  pr.in_depth = pr.p[2] >= near && pr.p[2] <= far;
  pr.z = pr.in_depth ? pr.p[2] : 1.0;
  double sigma[9], tmp[9];
  mat3_mul_bt(sh.m, sh.m, sigma);        // M M^T
  mat3_mul(cam.rot, sigma, tmp);         // W Sigma
  mat3_mul_bt(tmp, cam.rot, pr.cov_c);   // W Sigma W^T
  const double z = pr.z, u = pr.p[0] / z, v = pr.p[1] / z;
  const double uc = std::min(cam.lim_x_pos, std::max(-cam.lim_x_neg, u));
  const double vc = std::min(cam.lim_y_pos, std::max(-cam.lim_y_neg, v));
  pr.clamp_x = uc != u;
  pr.clamp_y = vc != v;
  pr.tx = z * uc;
  pr.ty = z * vc;
  const double j[6] = {cam.fx / z, 0.0, -cam.fx * pr.tx / (z * z),
                       0.0, cam.fy / z, -cam.fy * pr.ty / (z * z)};
  std::copy(j, j + 6, pr.jac);
  double jc[6];  // J cov_c, 2 x 3
  for (int r = 0; r < 2; ++r)
    for (int k = 0; k < 3; ++k)
      jc[3 * r + k] = j[3 * r] * pr.cov_c[k] + j[3 * r + 1] * pr.cov_c[3 + k] +
                      j[3 * r + 2] * pr.cov_c[6 + k];
  const double c00 = jc[0] * j[0] + jc[1] * j[1] + jc[2] * j[2];
  const double c01 = jc[0] * j[3] + jc[1] * j[4] + jc[2] * j[5];
  const double c10 = jc[3] * j[0] + jc[4] * j[1] + jc[5] * j[2];
  const double c11 = jc[3] * j[3] + jc[4] * j[4] + jc[5] * j[5];
  pr.a = c00 + eps2d;
  pr.b = 0.5 * (c01 + c10);
  pr.c = c11 + eps2d;
  const double det = pr.a * pr.c - pr.b * pr.b;
  pr.det = det > 0 ? det : 1.0;
  return pr;
}

// means [N, 3], quats [N, 4], scales [N, 3], opacities [N], viewmats [C, 4, 4], Ks [C, 3, 3] ->
// means2d [C, N, 2], conics [C, N, 3], depths [C, N], radii [C, N, 2] int32.
std::tuple<Tensor, Tensor, Tensor, Tensor> project_forward(
    const Tensor& means, const Tensor& quats, const Tensor& scales, const Tensor& opacities,
    const Tensor& viewmats, const Tensor& Ks, int64_t width, int64_t height, double near,
    double far, double eps2d) {
  check_floats({&means, &quats, &scales, &opacities, &viewmats, &Ks});
  const int64_t n = means.size(0), n_cams = viewmats.size(0);
  auto options = means.options();
  Tensor means2d = at::empty({n_cams, n, 2}, options);
  Tensor conics = at::empty({n_cams, n, 3}, options);
  Tensor depths = at::empty({n_cams, n}, options);
  Tensor radii = at::empty({n_cams, n, 2}, options.dtype(at::kInt));
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "project_forward", [&] {
    const auto cams = cameras_of(viewmats.data_ptr<scalar_t>(), Ks.data_ptr<scalar_t>(), n_cams,
                                 width, height);
    const scalar_t *mu = means.data_ptr<scalar_t>(), *q = quats.data_ptr<scalar_t>();
    const scalar_t *sc = scales.data_ptr<scalar_t>(), *op = opacities.data_ptr<scalar_t>();
    scalar_t *m2 = means2d.data_ptr<scalar_t>(), *con = conics.data_ptr<scalar_t>();
    scalar_t* dep = depths.data_ptr<scalar_t>();
    int32_t* rad = radii.data_ptr<int32_t>();
    at::parallel_for(0, n, 1024, [&](int64_t begin, int64_t end) {
      for (int64_t g = begin; g < end; ++g) {
        const Shape sh = shape_of(q + 4 * g, sc + 3 * g);
        // The opacity-aware extent, in the reference's dtype.
        const scalar_t thr = static_cast<scalar_t>(kAlphaThreshold);
        const scalar_t ratio = std::max(op[g] / thr, scalar_t(1));
        const scalar_t extent =
            std::min(std::sqrt(scalar_t(2) * std::log(ratio)), static_cast<scalar_t>(3.33));
        const bool visible = op[g] >= thr;
        for (int64_t c = 0; c < n_cams; ++c) {
          const Projected pr = project_one(cams[c], sh, mu + 3 * g, near, far, eps2d);
          const int64_t i = c * n + g;
          const scalar_t mx = static_cast<scalar_t>(cams[c].fx * (pr.p[0] / pr.z) + cams[c].cx);
          const scalar_t my = static_cast<scalar_t>(cams[c].fy * (pr.p[1] / pr.z) + cams[c].cy);
          m2[2 * i] = mx;
          m2[2 * i + 1] = my;
          con[3 * i] = static_cast<scalar_t>(pr.c / pr.det);
          con[3 * i + 1] = static_cast<scalar_t>(-pr.b / pr.det);
          con[3 * i + 2] = static_cast<scalar_t>(pr.a / pr.det);
          dep[i] = static_cast<scalar_t>(pr.p[2]);
          const scalar_t rx = std::ceil(extent * std::sqrt(std::max(static_cast<scalar_t>(pr.a), scalar_t(0))));
          const scalar_t ry = std::ceil(extent * std::sqrt(std::max(static_cast<scalar_t>(pr.c), scalar_t(0))));
          const bool on_image = mx + rx > 0 && mx - rx < width && my + ry > 0 && my - ry < height;
          const bool keep = visible && (rx > 0 || ry > 0) && on_image && pr.in_depth &&
                            pr.a * pr.c - pr.b * pr.b > 0;
          rad[2 * i] = keep ? static_cast<int32_t>(rx) : 0;
          rad[2 * i + 1] = keep ? static_cast<int32_t>(ry) : 0;
        }
      }
    });
  });
  return {means2d, conics, depths, radii};
}

// Gradients of project_forward w.r.t. means, quats and scales from those of means2d, conics and
// depths (radii have none; the cameras are taken as constants).
std::tuple<Tensor, Tensor, Tensor> project_backward(
    const Tensor& means, const Tensor& quats, const Tensor& scales, const Tensor& viewmats,
    const Tensor& Ks, int64_t width, int64_t height, double near, double far, double eps2d,
    const Tensor& g_means2d, const Tensor& g_conics, const Tensor& g_depths) {
  check_floats({&means, &quats, &scales, &viewmats, &Ks, &g_means2d, &g_conics, &g_depths});
  const int64_t n = means.size(0), n_cams = viewmats.size(0);
  Tensor g_means = at::zeros_like(means), g_quats = at::zeros_like(quats);
  Tensor g_scales = at::zeros_like(scales);
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "project_backward", [&] {
    const auto cams = cameras_of(viewmats.data_ptr<scalar_t>(), Ks.data_ptr<scalar_t>(), n_cams,
                                 width, height);
    const scalar_t *mu = means.data_ptr<scalar_t>(), *q = quats.data_ptr<scalar_t>();
    const scalar_t* sc = scales.data_ptr<scalar_t>();
    const scalar_t *gm2 = g_means2d.data_ptr<scalar_t>(), *gcon = g_conics.data_ptr<scalar_t>();
    const scalar_t* gdep = g_depths.data_ptr<scalar_t>();
    scalar_t *gmu = g_means.data_ptr<scalar_t>(), *gq = g_quats.data_ptr<scalar_t>();
    scalar_t* gsc = g_scales.data_ptr<scalar_t>();
    at::parallel_for(0, n, 1024, [&](int64_t begin, int64_t end) {
      for (int64_t g = begin; g < end; ++g) {
        const Shape sh = shape_of(q + 4 * g, sc + 3 * g);
        double d_sigma[9] = {0};  // dL/dSigma (world), summed over cameras
        double d_mean[3] = {0};
        for (int64_t c = 0; c < n_cams; ++c) {
          const int64_t i = c * n + g;
          const double gx = gm2[2 * i], gy = gm2[2 * i + 1];
          const double g0 = gcon[3 * i], g1 = gcon[3 * i + 1], g2 = gcon[3 * i + 2];
          const double gd = gdep[i];
          if (gx == 0 && gy == 0 && g0 == 0 && g1 == 0 && g2 == 0 && gd == 0) continue;
          const Camera& cam = cams[c];
          const Projected pr = project_one(cam, sh, mu + 3 * g, near, far, eps2d);
          const double z = pr.z;
          double d_p[3] = {0, 0, gd};  // dL/dp (camera space); depth is the raw p_z
          double d_z = 0;              // through the z used (only when in depth)
          // means2d = (fx x / z + cx, fy y / z + cy)
          d_p[0] += cam.fx / z * gx;
          d_p[1] += cam.fy / z * gy;
          d_z -= (cam.fx * pr.p[0] * gx + cam.fy * pr.p[1] * gy) / (z * z);
          // conic = inverse of [[a, b], [b, c]] (divided by det as used): dL/dcov2d = -Ci G Ci.
          const double ia = pr.c / pr.det, ib = -pr.b / pr.det, ic = pr.a / pr.det;
          double da, db, dc;
          if (pr.a * pr.c - pr.b * pr.b > 0) {
            const double G00 = g0, G01 = 0.5 * g1, G11 = g2;
            // (Ci G Ci) for symmetric 2 x 2 matrices
            const double t00 = ia * G00 + ib * G01, t01 = ia * G01 + ib * G11;
            const double t10 = ib * G00 + ic * G01, t11 = ib * G01 + ic * G11;
            const double m00 = t00 * ia + t01 * ib, m01 = t00 * ib + t01 * ic;
            const double m11 = t10 * ib + t11 * ic;
            da = -m00;
            db = -2.0 * m01;
            dc = -m11;
          } else {  // det taken as 1: conic = (c, -b, a)
            da = g2;
            db = -g1;
            dc = g0;
          }
          // cov2d = J cov_c J^T (a = c00, b = (c01 + c10) / 2, c = c11)
          const double Gs[4] = {da, 0.5 * db, 0.5 * db, dc};  // dL/dcov2d, symmetric 2 x 2
          const double* J = pr.jac;
          double d_cov_c[9];  // J^T Gs J
          for (int r = 0; r < 3; ++r)
            for (int k = 0; k < 3; ++k)
              d_cov_c[3 * r + k] = J[r] * (Gs[0] * J[k] + Gs[1] * J[3 + k]) +
                                   J[3 + r] * (Gs[2] * J[k] + Gs[3] * J[3 + k]);
          double d_jac[6];  // 2 Gs J cov_c
          for (int r = 0; r < 2; ++r)
            for (int k = 0; k < 3; ++k) {
              double acc = 0;
              for (int m = 0; m < 2; ++m)
                for (int l = 0; l < 3; ++l)
                  acc += Gs[2 * r + m] * J[3 * m + l] * pr.cov_c[3 * l + k];
              d_jac[3 * r + k] = 2.0 * acc;
            }
          // J = [[fx/z, 0, -fx tx/z^2], [0, fy/z, -fy ty/z^2]], tx = x or z * clamp
          d_z += -cam.fx / (z * z) * d_jac[0] - cam.fy / (z * z) * d_jac[4];
          d_z += 2.0 * cam.fx * pr.tx / (z * z * z) * d_jac[2];
          d_z += 2.0 * cam.fy * pr.ty / (z * z * z) * d_jac[5];
          const double d_tx = -cam.fx / (z * z) * d_jac[2];
          const double d_ty = -cam.fy / (z * z) * d_jac[5];
          if (pr.clamp_x) d_z += d_tx * (pr.tx / z); else d_p[0] += d_tx;
          if (pr.clamp_y) d_z += d_ty * (pr.ty / z); else d_p[1] += d_ty;
          if (pr.in_depth) d_p[2] += d_z;
          // p = W mu + t
          for (int k = 0; k < 3; ++k)
            d_mean[k] += cam.rot[k] * d_p[0] + cam.rot[3 + k] * d_p[1] + cam.rot[6 + k] * d_p[2];
          // cov_c = W Sigma W^T: dL/dSigma = W^T dL/dcov_c W
          double tmp[9], d_world[9];
          mat3_at_b(cam.rot, d_cov_c, tmp);
          mat3_mul(tmp, cam.rot, d_world);
          for (int k = 0; k < 9; ++k) d_sigma[k] += d_world[k];
        }
        for (int k = 0; k < 3; ++k) gmu[3 * g + k] = static_cast<scalar_t>(d_mean[k]);
        // Sigma = M M^T: dL/dM = (D + D^T) M; M = R(q) S.
        double d_m[9];
        for (int r = 0; r < 3; ++r)
          for (int k = 0; k < 3; ++k) {
            double acc = 0;
            for (int l = 0; l < 3; ++l) acc += (d_sigma[3 * r + l] + d_sigma[3 * l + r]) * sh.m[3 * l + k];
            d_m[3 * r + k] = acc;
          }
        double G[9];  // dL/dR(q)
        for (int k = 0; k < 9; ++k) G[k] = d_m[k] * sc[3 * g + k % 3];
        for (int k = 0; k < 3; ++k)
          gsc[3 * g + k] = static_cast<scalar_t>(d_m[k] * sh.rq[k] + d_m[3 + k] * sh.rq[3 + k] +
                                                 d_m[6 + k] * sh.rq[6 + k]);
        const double w = sh.q[0], x = sh.q[1], y = sh.q[2], zq = sh.q[3];
        const double dq[4] = {
            2 * (-zq * G[1] + y * G[2] + zq * G[3] - x * G[5] - y * G[6] + x * G[7]),
            2 * (y * G[1] + zq * G[2] + y * G[3] - 2 * x * G[4] - w * G[5] + zq * G[6] + w * G[7] -
                 2 * x * G[8]),
            2 * (-2 * y * G[0] + x * G[1] + w * G[2] + x * G[3] + zq * G[5] - w * G[6] + zq * G[7] -
                 2 * y * G[8]),
            2 * (-2 * zq * G[0] - w * G[1] + x * G[2] + w * G[3] - 2 * zq * G[4] + y * G[5] +
                 x * G[6] + y * G[7])};
        const double dot = dq[0] * w + dq[1] * x + dq[2] * y + dq[3] * zq;
        for (int k = 0; k < 4; ++k)
          gq[4 * g + k] = static_cast<scalar_t>((dq[k] - sh.q[k] * dot) / sh.norm);
      }
    });
  });
  return {g_means, g_quats, g_scales};
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

// Runs body(tile, ids, count, geo) for every tile with a non-empty list.
template <typename scalar_t, typename F>
void for_each_list(const Lists& lists, const Tensor& means2d, const Tensor& conics,
                   const Tensor& opacities, const F& body) {
  const Tensor table = geometry_table<scalar_t>(means2d, conics, opacities);
  for_each_tile(lists.n_tiles, [&](int64_t tile) {
    const int64_t count = lists.counts[tile];
    if (count == 0) return;
    const int64_t* ids = lists.ids + lists.offsets[tile];
    ListGeometry<scalar_t> geo{table.data_ptr<scalar_t>(), ids};
    body(tile, ids, count, geo);
  });
}

// sum[i] += w[i] f for a row of n pixels; separate restrict pointers and f by value, so that the
// compiler needs no aliasing checks between the row's weights and its sums (f = 1: w * 1 is w).
template <typename scalar_t>
inline void add_weighted(const scalar_t* __restrict w, scalar_t f, int64_t n,
                         scalar_t* __restrict sum) {
  for (int64_t i = 0; i < n; ++i) sum[i] += w[i] * f;
}

// means2d [C, N, 2], conics [C, N, 3], opacities [C, N], features [C, N, D] -> colors
// [C, H, W, D] and alpha [C, H, W, 1] over black, and for the backward each pixel's final
// transmittance and 1 + the list position of its last entry that counts ([C, H, W] each).
std::tuple<Tensor, Tensor, Tensor, Tensor> composite_forward(
    const Tensor& means2d, const Tensor& conics, const Tensor& opacities, const Tensor& features,
    const Tensor& flatten_ids, const Tensor& tile_offsets, const Tensor& tile_counts,
    int64_t width, int64_t height, int64_t tile_size, int64_t tile_w) {
  check_floats({&means2d, &conics, &opacities, &features});
  const Lists lists = lists_of(flatten_ids, tile_offsets, tile_counts);
  const int64_t n_cams = means2d.size(0), n_feat = features.size(2), s = tile_size;
  const Tiling tiling{width, height, tile_size, tile_w, lists.n_tiles / n_cams};
  Tensor colors = at::zeros({n_cams, height, width, n_feat}, features.options());
  Tensor alphas = at::zeros({n_cams, height, width, 1}, features.options());
  Tensor final_trans = at::ones({n_cams, height, width}, features.options());
  Tensor lasts = at::zeros({n_cams, height, width}, features.options());
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "composite_forward", [&] {
    const scalar_t* feats = features.data_ptr<scalar_t>();
    scalar_t* out = colors.data_ptr<scalar_t>();
    scalar_t* out_alpha = alphas.data_ptr<scalar_t>();
    scalar_t* out_trans = final_trans.data_ptr<scalar_t>();
    scalar_t* out_last = lasts.data_ptr<scalar_t>();
    for_each_list<scalar_t>(lists, means2d, conics, opacities,
                            [&](int64_t tile, const int64_t* ids, int64_t count,
                                const ListGeometry<scalar_t>& geo) {
      thread_local WalkState<scalar_t> state;
      thread_local std::vector<scalar_t> sums;  // [D + 1, s * s]: features, then alpha
      sums.assign((n_feat + 1) * s * s, scalar_t(0));
      walk_tile(geo, count, tiling, tile, state,
                [&](int64_t k, int64_t j, const scalar_t* w, int64_t begin, int64_t end) {
                  const scalar_t* f = feats + ids[k] * n_feat;
                  const int64_t at = j * s + begin;
                  for (int64_t d = 0; d < n_feat; ++d)
                    add_weighted(w + begin, f[d], end - begin, sums.data() + d * s * s + at);
                  add_weighted(w + begin, scalar_t(1), end - begin, sums.data() + n_feat * s * s + at);
                });
      tiling.pixels(tile, [&](int64_t p, int64_t index) {
        for (int64_t d = 0; d < n_feat; ++d) out[index * n_feat + d] = sums[d * s * s + p];
        out_alpha[index] = sums[n_feat * s * s + p];
        out_trans[index] = state.trans[p];
        out_last[index] = state.last[p];
      });
    });
  });
  return {colors, alphas, final_trans, lasts};
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
// its colors [C, H, W, D] and alpha [C, H, W, 1], given its final transmittances and last
// entries.
//
// With c_i = g . f_i + g_alpha, w_i = alpha_i T_i and S_i the sum of w_k c_k over the later
// entries k that count: dL/df_i = w_i g and dL/dalpha_i = T_i c_i - S_i / (1 - alpha_i); then
// dL/dsigma = -alpha dL/dalpha, dL/do = exp(-sigma) dL/dalpha, both 0 where alpha is clamped.
// Walking back to front, T_i = T_(i+1) / (1 - alpha_i) from the final T.
std::tuple<Tensor, Tensor, Tensor, Tensor> composite_backward(
    const Tensor& means2d, const Tensor& conics, const Tensor& opacities, const Tensor& features,
    const Tensor& flatten_ids, const Tensor& tile_offsets, const Tensor& tile_counts,
    const Tensor& final_trans, const Tensor& lasts, int64_t width, int64_t height,
    int64_t tile_size, int64_t tile_w, const Tensor& grad_colors, const Tensor& grad_alpha) {
  check_floats({&means2d, &conics, &opacities, &features, &final_trans, &lasts, &grad_colors,
                &grad_alpha});
  const Lists lists = lists_of(flatten_ids, tile_offsets, tile_counts);
  const int64_t n_cams = means2d.size(0), n_gauss = means2d.size(1), n_feat = features.size(2);
  const int64_t s = tile_size, ss = s * s;
  const int64_t row_width = 6 + n_feat;  // mean x, y, conic a, b, c, opacity, features
  const Tiling tiling{width, height, tile_size, tile_w, lists.n_tiles / n_cams};
  Tensor per_entry = at::zeros({flatten_ids.numel(), row_width}, features.options());
  Tensor per_gauss = at::zeros({n_cams * n_gauss, row_width}, features.options());
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "composite_backward", [&] {
    const scalar_t* feats = features.data_ptr<scalar_t>();
    const scalar_t* g_color = grad_colors.data_ptr<scalar_t>();
    const scalar_t* g_alpha = grad_alpha.data_ptr<scalar_t>();
    const scalar_t* in_trans = final_trans.data_ptr<scalar_t>();
    const scalar_t* in_last = lasts.data_ptr<scalar_t>();
    scalar_t* grads = per_entry.data_ptr<scalar_t>();
    for_each_list<scalar_t>(lists, means2d, conics, opacities,
                            [&](int64_t tile, const int64_t* ids, int64_t count,
                                const ListGeometry<scalar_t>& geo) {
      scalar_t* tile_grads = grads + lists.offsets[tile] * row_width;
      // Per pixel [s * s]: T after the entries still ahead, last entry + 1, S, then the
      // output gradient [D + 1, s * s] (features, alpha); pixels outside the image have last 0.
      thread_local std::vector<scalar_t> trans, last, later, g, lanes, c, w;
      trans.assign(ss, scalar_t(1));
      last.assign(ss, scalar_t(0));
      later.assign(ss, scalar_t(0));
      g.assign((n_feat + 1) * ss, scalar_t(0));
      tiling.pixels(tile, [&](int64_t p, int64_t index) {
        trans[p] = in_trans[index];
        last[p] = in_last[index];
        for (int64_t d = 0; d < n_feat; ++d) g[d * ss + p] = g_color[index * n_feat + d];
        g[n_feat * ss + p] = g_alpha[index];
      });
      thread_local std::vector<int64_t> row_end;  // per row: the largest last
      row_end.assign(s, 0);
      for (int64_t p = 0; p < ss; ++p)
        row_end[p / s] = std::max(row_end[p / s], static_cast<int64_t>(last[p]));
      const int64_t end = *std::max_element(row_end.begin(), row_end.end());
      lanes.assign(row_width * s, scalar_t(0));  // per-column partial sums of an entry's gradient
      c.assign(s, scalar_t(0));
      w.assign(s, scalar_t(0));
      const int64_t y0 = tiling.y0(tile), ny = tiling.ny(tile);
      const scalar_t px0 = static_cast<scalar_t>(tiling.x0(tile)) + scalar_t(0.5);
      for (int64_t k = end - 1; k >= 0; --k) {
        const scalar_t* row = geo.row(k);
        auto [j0, j1] = box_rows(row, y0, ny);
        while (j0 <= j1 && k >= row_end[j0]) ++j0;  // rows whose pixels all stopped before k
        while (j1 >= j0 && k >= row_end[j1]) --j1;
        if (j0 > j1) continue;
        const scalar_t* f = feats + ids[k] * n_feat;
        const scalar_t kk = static_cast<scalar_t>(k);
        std::fill(lanes.begin(), lanes.end(), scalar_t(0));
        for (int64_t j = j0; j <= j1; ++j) {
          if (k >= row_end[j]) continue;
          const int64_t p0 = j * s;
          const scalar_t dy = row[1] - (static_cast<scalar_t>(y0 + j) + scalar_t(0.5));
          for (int64_t i = 0; i < s; ++i) c[i] = g[n_feat * ss + p0 + i];
          for (int64_t d = 0; d < n_feat; ++d)
            for (int64_t i = 0; i < s; ++i) c[i] += g[d * ss + p0 + i] * f[d];
          scalar_t* __restrict tr = trans.data() + p0;
          scalar_t* __restrict sl = later.data() + p0;
          const scalar_t* __restrict ls = last.data() + p0;
          scalar_t* l = lanes.data();
          row_backward(row, px0, dy, s, kk, ls, c.data(), tr, sl, w.data(), l, l + s, l + 2 * s,
                       l + 3 * s, l + 4 * s, l + 5 * s);
          for (int64_t d = 0; d < n_feat; ++d)
            for (int64_t i = 0; i < s; ++i) lanes[(6 + d) * s + i] += w[i] * g[d * ss + p0 + i];
        }
        scalar_t* out = tile_grads + k * row_width;
        for (int64_t r = 0; r < row_width; ++r)
          for (int64_t i = 0; i < s; ++i) out[r] += lanes[r * s + i];
      }
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
  const int64_t s = tile_size, ss = s * s, row_width = n_maps + 1;
  const Tiling tiling{width, height, tile_size, tile_w, lists.n_tiles / n_cams};
  Tensor per_entry = at::zeros({flatten_ids.numel(), row_width}, maps.options());
  Tensor per_gauss = at::zeros({n_cams * n_gauss, row_width}, maps.options());
  AT_DISPATCH_FLOATING_TYPES(maps.scalar_type(), "blend_sums", [&] {
    const scalar_t* values = maps.data_ptr<scalar_t>();
    scalar_t* sums = per_entry.data_ptr<scalar_t>();
    for_each_list<scalar_t>(lists, means2d, conics, opacities,
                            [&](int64_t tile, const int64_t* ids, int64_t count,
                                const ListGeometry<scalar_t>& geo) {
      scalar_t* tile_sums = sums + lists.offsets[tile] * row_width;
      thread_local WalkState<scalar_t> state;
      thread_local std::vector<scalar_t> value;  // [L + 1, s * s]: the maps, then ones
      value.assign(row_width * ss, scalar_t(0));
      tiling.pixels(tile, [&](int64_t p, int64_t index) {
        for (int64_t l = 0; l < n_maps; ++l) value[l * ss + p] = values[index * n_maps + l];
        value[n_maps * ss + p] = scalar_t(1);
      });
      walk_tile(geo, count, tiling, tile, state,
                [&](int64_t k, int64_t j, const scalar_t* w, int64_t begin, int64_t end) {
                  scalar_t* out = tile_sums + k * row_width;
                  for (int64_t l = 0; l < row_width; ++l) {
                    const scalar_t* v = value.data() + l * ss + j * s;
                    scalar_t sum = 0;
                    for (int64_t i = begin; i < end; ++i) sum += w[i] * v[i];
                    out[l] += sum;
                  }
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
  m.def("project_forward", &project_forward);
  m.def("project_backward", &project_backward);
}
