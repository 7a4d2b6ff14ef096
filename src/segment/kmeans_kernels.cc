#include "segment/kmeans_kernels.h"

#include <cassert>
#include <cmath>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define SHOAL_KMEANS_X86 1
#endif

namespace shoal::kmeans_internal {
namespace {

constexpr size_t kPanelAlign = 16;

// Portable reference: the canonical sequence, one lane at a time.
void BlockGeneric(const float* const* rows, const CentroidPanel& panel, float* out) {
  const size_t d = panel.d, padded_k = panel.padded_k;
  for (size_t r = 0; r < kRowsPerBlock; ++r) {
    const float* x = rows[r];
    float* row_out = out + r * padded_k;
    for (size_t c = 0; c < panel.k; ++c) row_out[c] = 0.0f;
    for (size_t j = 0; j < d; ++j) {
      const float* cj = panel.values.data() + j * padded_k;
      for (size_t c = 0; c < panel.k; ++c) {
        float diff = x[j] - cj[c];
        row_out[c] = std::fma(diff, diff, row_out[c]);
      }
    }
  }
}

float DistanceGeneric(const float* x, const float* c, size_t d) {
  float acc = 0.0f;
  for (size_t j = 0; j < d; ++j) {
    float diff = x[j] - c[j];
    acc = std::fma(diff, diff, acc);
  }
  return acc;
}

#ifdef SHOAL_KMEANS_X86
__attribute__((target("avx2,fma"))) float DistanceAvx2(const float* x, const float* c, size_t d) {
  float acc = 0.0f;
  for (size_t j = 0; j < d; ++j) {
    float diff = x[j] - c[j];
    acc = std::fma(diff, diff, acc);  // one vfmadd instruction under this target
  }
  return acc;
}

// 4 rows x 16 centroids per inner step: 8 independent accumulators hide the FMA latency.
__attribute__((target("avx2,fma"))) void BlockAvx2(const float* const* rows,
                                                   const CentroidPanel& panel, float* out) {
  const size_t d = panel.d, padded_k = panel.padded_k;
  const size_t groups = (panel.k + 7) / 8;
  const float* x0 = rows[0];
  const float* x1 = rows[1];
  const float* x2 = rows[2];
  const float* x3 = rows[3];
  size_t g = 0;
  for (; g + 2 <= groups; g += 2) {
    __m256 a00 = _mm256_setzero_ps(), a01 = _mm256_setzero_ps();
    __m256 a10 = _mm256_setzero_ps(), a11 = _mm256_setzero_ps();
    __m256 a20 = _mm256_setzero_ps(), a21 = _mm256_setzero_ps();
    __m256 a30 = _mm256_setzero_ps(), a31 = _mm256_setzero_ps();
    const float* p = panel.values.data() + g * 8;
    for (size_t j = 0; j < d; ++j, p += padded_k) {
      const __m256 c0 = _mm256_loadu_ps(p), c1 = _mm256_loadu_ps(p + 8);
      __m256 x = _mm256_broadcast_ss(x0 + j);
      __m256 t0 = _mm256_sub_ps(x, c0), t1 = _mm256_sub_ps(x, c1);
      a00 = _mm256_fmadd_ps(t0, t0, a00);
      a01 = _mm256_fmadd_ps(t1, t1, a01);
      x = _mm256_broadcast_ss(x1 + j);
      t0 = _mm256_sub_ps(x, c0), t1 = _mm256_sub_ps(x, c1);
      a10 = _mm256_fmadd_ps(t0, t0, a10);
      a11 = _mm256_fmadd_ps(t1, t1, a11);
      x = _mm256_broadcast_ss(x2 + j);
      t0 = _mm256_sub_ps(x, c0), t1 = _mm256_sub_ps(x, c1);
      a20 = _mm256_fmadd_ps(t0, t0, a20);
      a21 = _mm256_fmadd_ps(t1, t1, a21);
      x = _mm256_broadcast_ss(x3 + j);
      t0 = _mm256_sub_ps(x, c0), t1 = _mm256_sub_ps(x, c1);
      a30 = _mm256_fmadd_ps(t0, t0, a30);
      a31 = _mm256_fmadd_ps(t1, t1, a31);
    }
    float* o = out + g * 8;
    _mm256_storeu_ps(o, a00), _mm256_storeu_ps(o + 8, a01);
    o += padded_k;
    _mm256_storeu_ps(o, a10), _mm256_storeu_ps(o + 8, a11);
    o += padded_k;
    _mm256_storeu_ps(o, a20), _mm256_storeu_ps(o + 8, a21);
    o += padded_k;
    _mm256_storeu_ps(o, a30), _mm256_storeu_ps(o + 8, a31);
  }
  if (g < groups) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    const float* p = panel.values.data() + g * 8;
    for (size_t j = 0; j < d; ++j, p += padded_k) {
      const __m256 c0 = _mm256_loadu_ps(p);
      __m256 t = _mm256_sub_ps(_mm256_broadcast_ss(x0 + j), c0);
      a0 = _mm256_fmadd_ps(t, t, a0);
      t = _mm256_sub_ps(_mm256_broadcast_ss(x1 + j), c0);
      a1 = _mm256_fmadd_ps(t, t, a1);
      t = _mm256_sub_ps(_mm256_broadcast_ss(x2 + j), c0);
      a2 = _mm256_fmadd_ps(t, t, a2);
      t = _mm256_sub_ps(_mm256_broadcast_ss(x3 + j), c0);
      a3 = _mm256_fmadd_ps(t, t, a3);
    }
    float* o = out + g * 8;
    _mm256_storeu_ps(o, a0);
    _mm256_storeu_ps(o + padded_k, a1);
    _mm256_storeu_ps(o + 2 * padded_k, a2);
    _mm256_storeu_ps(o + 3 * padded_k, a3);
  }
}

// Same scheme with 16 lanes: 4 rows x 32 centroids per inner step.
__attribute__((target("avx512f"))) void BlockAvx512(const float* const* rows,
                                                    const CentroidPanel& panel, float* out) {
  const size_t d = panel.d, padded_k = panel.padded_k;
  const size_t groups = (panel.k + 15) / 16;
  const float* x0 = rows[0];
  const float* x1 = rows[1];
  const float* x2 = rows[2];
  const float* x3 = rows[3];
  size_t g = 0;
  for (; g + 2 <= groups; g += 2) {
    __m512 a00 = _mm512_setzero_ps(), a01 = _mm512_setzero_ps();
    __m512 a10 = _mm512_setzero_ps(), a11 = _mm512_setzero_ps();
    __m512 a20 = _mm512_setzero_ps(), a21 = _mm512_setzero_ps();
    __m512 a30 = _mm512_setzero_ps(), a31 = _mm512_setzero_ps();
    const float* p = panel.values.data() + g * 16;
    for (size_t j = 0; j < d; ++j, p += padded_k) {
      const __m512 c0 = _mm512_loadu_ps(p), c1 = _mm512_loadu_ps(p + 16);
      __m512 x = _mm512_set1_ps(x0[j]);
      __m512 t0 = _mm512_sub_ps(x, c0), t1 = _mm512_sub_ps(x, c1);
      a00 = _mm512_fmadd_ps(t0, t0, a00);
      a01 = _mm512_fmadd_ps(t1, t1, a01);
      x = _mm512_set1_ps(x1[j]);
      t0 = _mm512_sub_ps(x, c0), t1 = _mm512_sub_ps(x, c1);
      a10 = _mm512_fmadd_ps(t0, t0, a10);
      a11 = _mm512_fmadd_ps(t1, t1, a11);
      x = _mm512_set1_ps(x2[j]);
      t0 = _mm512_sub_ps(x, c0), t1 = _mm512_sub_ps(x, c1);
      a20 = _mm512_fmadd_ps(t0, t0, a20);
      a21 = _mm512_fmadd_ps(t1, t1, a21);
      x = _mm512_set1_ps(x3[j]);
      t0 = _mm512_sub_ps(x, c0), t1 = _mm512_sub_ps(x, c1);
      a30 = _mm512_fmadd_ps(t0, t0, a30);
      a31 = _mm512_fmadd_ps(t1, t1, a31);
    }
    float* o = out + g * 16;
    _mm512_storeu_ps(o, a00), _mm512_storeu_ps(o + 16, a01);
    o += padded_k;
    _mm512_storeu_ps(o, a10), _mm512_storeu_ps(o + 16, a11);
    o += padded_k;
    _mm512_storeu_ps(o, a20), _mm512_storeu_ps(o + 16, a21);
    o += padded_k;
    _mm512_storeu_ps(o, a30), _mm512_storeu_ps(o + 16, a31);
  }
  if (g < groups) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    const float* p = panel.values.data() + g * 16;
    for (size_t j = 0; j < d; ++j, p += padded_k) {
      const __m512 c0 = _mm512_loadu_ps(p);
      __m512 t = _mm512_sub_ps(_mm512_set1_ps(x0[j]), c0);
      a0 = _mm512_fmadd_ps(t, t, a0);
      t = _mm512_sub_ps(_mm512_set1_ps(x1[j]), c0);
      a1 = _mm512_fmadd_ps(t, t, a1);
      t = _mm512_sub_ps(_mm512_set1_ps(x2[j]), c0);
      a2 = _mm512_fmadd_ps(t, t, a2);
      t = _mm512_sub_ps(_mm512_set1_ps(x3[j]), c0);
      a3 = _mm512_fmadd_ps(t, t, a3);
    }
    float* o = out + g * 16;
    _mm512_storeu_ps(o, a0);
    _mm512_storeu_ps(o + padded_k, a1);
    _mm512_storeu_ps(o + 2 * padded_k, a2);
    _mm512_storeu_ps(o + 3 * padded_k, a3);
  }
}
#endif

using BlockFn = void (*)(const float* const*, const CentroidPanel&, float*);
using DistanceFn = float (*)(const float*, const float*, size_t);

struct Kernels {
  BlockFn block = BlockGeneric;
  DistanceFn distance = DistanceGeneric;
  const char* name = "generic";
};

Kernels SelectKernels() {
  Kernels kernels;
#ifdef SHOAL_KMEANS_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    kernels.block = BlockAvx2;
    kernels.distance = DistanceAvx2;
    kernels.name = "avx2";
    if (__builtin_cpu_supports("avx512f")) {
      kernels.block = BlockAvx512;
      kernels.name = "avx512";
    }
  }
#endif
  return kernels;
}

const Kernels& ActiveKernels() {
  static const Kernels kernels = SelectKernels();
  return kernels;
}

}  // namespace

void BuildPanel(const float* centroids, size_t k, size_t d, CentroidPanel* panel) {
  panel->k = k;
  panel->d = d;
  panel->padded_k = (k + kPanelAlign - 1) / kPanelAlign * kPanelAlign;
  panel->values.assign(panel->padded_k * d, 0.0f);
  for (size_t c = 0; c < k; ++c) {
    for (size_t j = 0; j < d; ++j) panel->values[j * panel->padded_k + c] = centroids[c * d + j];
  }
}

void SquaredDistancesBlock(const float* const* rows, const CentroidPanel& panel, float* out) {
  ActiveKernels().block(rows, panel, out);
}

float SquaredDistance(const float* x, const float* c, size_t d) {
  return ActiveKernels().distance(x, c, d);
}

const char* KernelName() { return ActiveKernels().name; }

}  // namespace shoal::kmeans_internal
