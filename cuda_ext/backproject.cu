// Multi-channel back-projection on CUDA: for every Gaussian, the sum over pixels of its blending
// weight times each of L maps, and the sum of its weights, in one forward pass over gsplat's tile
// lists (gsplat has no such kernel: its route is one backward of L + 1 probe channels).
//
// Semantics are those of cpu_kernels.cpp's blend_sums and of gsplat 1.5.3's classic forward:
// pixel centres at (x + 0.5, y + 0.5), alpha = min(0.999, opacity exp(-sigma)), skipped when
// sigma < 0 or alpha < 1/255, a pixel stops at the first Gaussian after which T <= 1e-4.
//
// Plain CUDA C++ with raw pointers (no torch headers), so that any nvcc compiles it on its own:
//   nvcc -c cuda_ext/backproject.cu -o backproject.o
// One thread block per tile, one thread per pixel; each thread walks its tile's list front to
// back and adds w * map into the Gaussian's row with atomicAdd.

#include <cuda_runtime.h>

#include <cstdint>

namespace {

constexpr float kMaxAlpha = 0.999f;
constexpr float kMinTransmittance = 1e-4f;
constexpr float kAlphaThreshold = 1.0f / 255.0f;

// means2d [C, N, 2], conics [C, N, 3], opacities [C, N]: gsplat's unpacked projection outputs.
// tile_offsets [C, tile_h, tile_w] and flatten_ids [M] (indices into C * N): its isect_offsets
// and flatten_ids. maps [C, H, W, L]. out [C * N, L + 1], zeroed by the caller.
__global__ void blend_sums_kernel(const float* __restrict__ means2d,
                                  const float* __restrict__ conics,
                                  const float* __restrict__ opacities,
                                  const int32_t* __restrict__ tile_offsets,
                                  const int32_t* __restrict__ flatten_ids, int32_t n_isects,
                                  const float* __restrict__ maps, int32_t n_maps, int32_t width,
                                  int32_t height, int32_t tile_size, int32_t tile_w,
                                  int32_t tile_h, float* __restrict__ out) {
  const int32_t tile = blockIdx.x;  // camera-major, as tile_offsets
  const int32_t tiles = tile_w * tile_h;
  const int32_t camera = tile / tiles, local = tile % tiles;
  const int32_t x = (local % tile_w) * tile_size + static_cast<int32_t>(threadIdx.x);
  const int32_t y = (local / tile_w) * tile_size + static_cast<int32_t>(threadIdx.y);
  if (x >= width || y >= height) return;
  const int32_t begin = tile_offsets[tile];
  const int32_t end = tile + 1 < gridDim.x ? tile_offsets[tile + 1] : n_isects;
  const float px = static_cast<float>(x) + 0.5f, py = static_cast<float>(y) + 0.5f;
  const float* value = maps + ((static_cast<int64_t>(camera) * height + y) * width + x) * n_maps;
  float trans = 1.0f;
  for (int32_t k = begin; k < end; ++k) {
    const int32_t g = flatten_ids[k];
    const float dx = means2d[2 * g] - px, dy = means2d[2 * g + 1] - py;
    const float a = conics[3 * g], b = conics[3 * g + 1], c = conics[3 * g + 2];
    const float neg_sigma = ((-b * dy) * dx + (-0.5f * c * dy) * dy) + (-0.5f * a * dx) * dx;
    if (neg_sigma > 0.0f) continue;
    const float alpha = fminf(kMaxAlpha, opacities[g] * __expf(neg_sigma));
    if (alpha < kAlphaThreshold) continue;
    const float next = trans * (1.0f - alpha);
    if (next <= kMinTransmittance) break;
    const float w = alpha * trans;
    float* row = out + static_cast<int64_t>(g) * (n_maps + 1);
    for (int32_t l = 0; l < n_maps; ++l) atomicAdd(row + l, w * value[l]);
    atomicAdd(row + n_maps, w);
    trans = next;
  }
}

}  // namespace

// Launches the kernel on `stream` for n_cams cameras; returns the CUDA error code (0: success).
extern "C" int gsedit_blend_sums_cuda(const float* means2d, const float* conics,
                                      const float* opacities, const int32_t* tile_offsets,
                                      const int32_t* flatten_ids, int32_t n_isects,
                                      const float* maps, int32_t n_maps, int32_t n_cams,
                                      int32_t width, int32_t height, int32_t tile_size,
                                      float* out, cudaStream_t stream) {
  const int32_t tile_w = (width + tile_size - 1) / tile_size;
  const int32_t tile_h = (height + tile_size - 1) / tile_size;
  const dim3 threads(tile_size, tile_size);
  blend_sums_kernel<<<n_cams * tile_w * tile_h, threads, 0, stream>>>(
      means2d, conics, opacities, tile_offsets, flatten_ids, n_isects, maps, n_maps, width,
      height, tile_size, tile_w, tile_h, out);
  return static_cast<int>(cudaGetLastError());
}
