// Distance kernels for k-means (internal to src/segment). Every squared distance is the canonical
// sequence acc = fma(x_j - c_j, x_j - c_j, acc) for j = 0..d-1 starting from 0, in float. The SIMD
// kernels run that sequence in each lane, so every kernel returns bit-identical values; this is
// what lets the bound-based algorithms reproduce Lloyd exactly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace shoal::kmeans_internal {

// Number of rows the block kernel processes at once.
inline constexpr size_t kRowsPerBlock = 4;

// Centroids transposed into d rows of `padded_k` floats (padded_k = k rounded up to 16; padding
// columns are 0 and never read back as results).
struct CentroidPanel {
  std::vector<float> values;
  size_t k = 0;
  size_t d = 0;
  size_t padded_k = 0;
};

// Fills `panel` from `centroids` (k x d, row-major).
void BuildPanel(const float* centroids, size_t k, size_t d, CentroidPanel* panel);

// out[r * panel.padded_k + c] = squared distance of rows[r] to centroid c, for r < kRowsPerBlock,
// c < panel.k. All kRowsPerBlock row pointers must be valid (repeat one to pad).
void SquaredDistancesBlock(const float* const* rows, const CentroidPanel& panel, float* out);

// For each of the kRowsPerBlock rows: index of the nearest centroid (lowest index on ties), its
// squared distance and the second smallest squared distance (+inf when k == 1). Same values as
// SquaredDistancesBlock followed by a scan.
void NearestTwoBlock(const float* const* rows, const CentroidPanel& panel, int32_t* best,
                     float* best_sq, float* second_sq);

// Squared distance of one pair of d-vectors.
float SquaredDistance(const float* x, const float* c, size_t d);

// out[r] = SquaredDistance(x[r], c[r], d) for r < kRowsPerBlock, interleaved for throughput.
void SquaredDistances4(const float* const* x, const float* const* c, size_t d, float* out);

// Index of the smallest of values[0..k) (lowest index on ties), the smallest and the second
// smallest value (+inf when k == 1).
inline int32_t ArgMinTwo(const float* values, size_t k, float* best, float* second) {
  int32_t best_idx = 0;
  float b = values[0], s = __builtin_inff();
  for (size_t c = 1; c < k; ++c) {
    float v = values[c];
    bool better = v < b;
    s = better ? b : (v < s ? v : s);
    b = better ? v : b;
    best_idx = better ? static_cast<int32_t>(c) : best_idx;
  }
  *best = b;
  *second = s;
  return best_idx;
}

// Name of the kernel set in use ("avx512", "avx2" or "generic"), for benchmarks.
const char* KernelName();

// Tests only (not thread-safe): switches to the named kernel set if this CPU supports it and
// returns whether it did; "best" restores the run-time choice.
bool UseKernelsForTesting(const char* name);

}  // namespace shoal::kmeans_internal
