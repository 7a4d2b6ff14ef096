#include "segment/kmeans_kernels.h"

#include <cassert>
#include <cmath>
#include <cstring>

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

void NearestTwoGeneric(const float* const* rows, const CentroidPanel& panel, int32_t* best,
                       float* best_sq, float* second_sq);

float DistanceGeneric(const float* x, const float* c, size_t d) {
  float acc = 0.0f;
  for (size_t j = 0; j < d; ++j) {
    float diff = x[j] - c[j];
    acc = std::fma(diff, diff, acc);
  }
  return acc;
}

void Distances4Generic(const float* const* x, const float* const* c, size_t d, float* out) {
  for (size_t r = 0; r < kRowsPerBlock; ++r) out[r] = DistanceGeneric(x[r], c[r], d);
}

#ifdef SHOAL_KMEANS_X86
// GCC 12's AVX-512 min/max intrinsics trip a false -Wmaybe-uninitialized (_mm512_undefined_ps).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
__attribute__((target("avx2,fma"))) void Distances4Avx2(const float* const* x,
                                                        const float* const* c, size_t d,
                                                        float* out) {
  float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  const float *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3];
  const float *c0 = c[0], *c1 = c[1], *c2 = c[2], *c3 = c[3];
  for (size_t j = 0; j < d; ++j) {
    float t0 = x0[j] - c0[j], t1 = x1[j] - c1[j], t2 = x2[j] - c2[j], t3 = x3[j] - c3[j];
    a0 = std::fma(t0, t0, a0);
    a1 = std::fma(t1, t1, a1);
    a2 = std::fma(t2, t2, a2);
    a3 = std::fma(t3, t3, a3);
  }
  out[0] = a0, out[1] = a1, out[2] = a2, out[3] = a3;
}

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

__attribute__((target("avx2,fma"), always_inline)) inline float ReduceMin256(__m256 v) {
  __m128 m4 = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m4 = _mm_min_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_min_ss(m4, _mm_shuffle_ps(m4, m4, 1));
  return _mm_cvtss_f32(m4);
}

__attribute__((target("avx2,fma"), always_inline)) inline int ReduceMinInt256(__m256i v) {
  __m128i m4 = _mm_min_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  m4 = _mm_min_epi32(m4, _mm_shuffle_epi32(m4, 0x4e));
  m4 = _mm_min_epi32(m4, _mm_shuffle_epi32(m4, 0xb1));
  return _mm_cvtsi128_si32(m4);
}

// AVX2 version of Fold512: lanes where `valid` is all ones count.
__attribute__((target("avx2,fma"), always_inline)) inline void Fold256(
    __m256 a, __m256 valid, __m256i index, __m256& b, __m256& s, __m256i& idx) {
  a = _mm256_blendv_ps(_mm256_set1_ps(__builtin_inff()), a, valid);
  __m256 better = _mm256_cmp_ps(a, b, _CMP_LT_OQ);
  s = _mm256_min_ps(s, _mm256_max_ps(b, a));
  b = _mm256_blendv_ps(b, a, better);
  idx = _mm256_castps_si256(
      _mm256_blendv_ps(_mm256_castsi256_ps(idx), _mm256_castsi256_ps(index), better));
}

__attribute__((target("avx2,fma"), always_inline)) inline void Finish256(
    __m256 b, __m256 s, __m256i idx, int32_t* best, float* best_sq, float* second_sq) {
  const __m256 inf = _mm256_set1_ps(__builtin_inff());
  float m = ReduceMin256(b);
  __m256i ties = _mm256_castps_si256(_mm256_cmp_ps(b, _mm256_set1_ps(m), _CMP_EQ_OQ));
  __m256i candidates = _mm256_blendv_epi8(_mm256_set1_epi32(0x7fffffff), idx, ties);
  int winner = ReduceMinInt256(candidates);
  __m256i winner_lane = _mm256_and_si256(ties, _mm256_cmpeq_epi32(idx, _mm256_set1_epi32(winner)));
  __m256 others = _mm256_blendv_ps(b, inf, _mm256_castsi256_ps(winner_lane));
  *best = winner;
  *best_sq = m;
  float s_min = ReduceMin256(s), o_min = ReduceMin256(others);
  *second_sq = s_min < o_min ? s_min : o_min;
}

// 4 rows x 8 centroids per step, folded into per-lane best / second / index as in the AVX-512
// kernel.
__attribute__((target("avx2,fma"))) void NearestTwoAvx2(const float* const* rows,
                                                        const CentroidPanel& panel,
                                                        int32_t* best, float* best_sq,
                                                        float* second_sq) {
  const size_t d = panel.d, padded_k = panel.padded_k, k = panel.k;
  const size_t groups = (k + 7) / 8;
  const __m256 inf = _mm256_set1_ps(__builtin_inff());
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const float* x0 = rows[0];
  const float* x1 = rows[1];
  const float* x2 = rows[2];
  const float* x3 = rows[3];
  __m256 b0 = inf, b1 = inf, b2 = inf, b3 = inf;
  __m256 s0 = inf, s1 = inf, s2 = inf, s3 = inf;
  __m256i i0 = lane, i1 = lane, i2 = lane, i3 = lane;
  for (size_t g = 0; g < groups; ++g) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    const float* p = panel.values.data() + g * 8;
    for (size_t j = 0; j < d; ++j, p += padded_k) {
      const __m256 c = _mm256_loadu_ps(p);
      __m256 t = _mm256_sub_ps(_mm256_broadcast_ss(x0 + j), c);
      a0 = _mm256_fmadd_ps(t, t, a0);
      t = _mm256_sub_ps(_mm256_broadcast_ss(x1 + j), c);
      a1 = _mm256_fmadd_ps(t, t, a1);
      t = _mm256_sub_ps(_mm256_broadcast_ss(x2 + j), c);
      a2 = _mm256_fmadd_ps(t, t, a2);
      t = _mm256_sub_ps(_mm256_broadcast_ss(x3 + j), c);
      a3 = _mm256_fmadd_ps(t, t, a3);
    }
    const int remaining = static_cast<int>(k - g * 8);
    const __m256 valid =
        _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(remaining), lane));
    const __m256i index = _mm256_add_epi32(lane, _mm256_set1_epi32(static_cast<int>(g * 8)));
    Fold256(a0, valid, index, b0, s0, i0);
    Fold256(a1, valid, index, b1, s1, i1);
    Fold256(a2, valid, index, b2, s2, i2);
    Fold256(a3, valid, index, b3, s3, i3);
  }
  Finish256(b0, s0, i0, &best[0], &best_sq[0], &second_sq[0]);
  Finish256(b1, s1, i1, &best[1], &best_sq[1], &second_sq[1]);
  Finish256(b2, s2, i2, &best[2], &best_sq[2], &second_sq[2]);
  Finish256(b3, s3, i3, &best[3], &best_sq[3], &second_sq[3]);
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

// Folds one row's distances to 16 centroids (lanes outside `valid` ignored) into its per-lane
// best, second best and best index; strict "less" keeps the lower index on ties.
__attribute__((target("avx512f"), always_inline)) inline void Fold512(
    __m512 a, __mmask16 valid, __m512i index, __m512& b, __m512& s, __m512i& idx) {
  a = _mm512_mask_blend_ps(valid, _mm512_set1_ps(__builtin_inff()), a);
  __mmask16 better = _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ);
  s = _mm512_min_ps(s, _mm512_max_ps(b, a));
  b = _mm512_mask_blend_ps(better, b, a);
  idx = _mm512_mask_blend_epi32(better, idx, index);
}

__attribute__((target("avx512f"), always_inline)) inline float ReduceMin512(__m512 v) {
  __m256 lo = _mm512_castps512_ps256(v);
  __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  __m256 m8 = _mm256_min_ps(lo, hi);
  __m128 m4 = _mm_min_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1));
  m4 = _mm_min_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_min_ss(m4, _mm_shuffle_ps(m4, m4, 1));
  return _mm_cvtss_f32(m4);
}

__attribute__((target("avx512f"), always_inline)) inline int ReduceMinInt512(__m512i v) {
  __m256i m8 = _mm256_min_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
  __m128i m4 = _mm_min_epi32(_mm256_castsi256_si128(m8), _mm256_extracti128_si256(m8, 1));
  m4 = _mm_min_epi32(m4, _mm_shuffle_epi32(m4, 0x4e));
  m4 = _mm_min_epi32(m4, _mm_shuffle_epi32(m4, 0xb1));
  return _mm_cvtsi128_si32(m4);
}

// Horizontal step: lowest index among lanes holding the minimum; second best over the rest.
__attribute__((target("avx512f"), always_inline)) inline void Finish512(
    __m512 b, __m512 s, __m512i idx, int32_t* best, float* best_sq, float* second_sq) {
  float m = ReduceMin512(b);
  __mmask16 ties = _mm512_cmp_ps_mask(b, _mm512_set1_ps(m), _CMP_EQ_OQ);
  int winner = ReduceMinInt512(_mm512_mask_blend_epi32(ties, _mm512_set1_epi32(0x7fffffff), idx));
  __mmask16 winner_lane = ties & _mm512_cmpeq_epi32_mask(idx, _mm512_set1_epi32(winner));
  __m512 others = _mm512_mask_blend_ps(winner_lane, b, _mm512_set1_ps(__builtin_inff()));
  *best = winner;
  *best_sq = m;
  float s_min = ReduceMin512(s), o_min = ReduceMin512(others);
  *second_sq = s_min < o_min ? s_min : o_min;
}

// Distances of 4 rows to 16 centroids per step, folded at once into per-lane best / second best /
// best index; one horizontal reduction per row at the end.
__attribute__((target("avx512f"))) void NearestTwoAvx512(const float* const* rows,
                                                         const CentroidPanel& panel,
                                                         int32_t* best, float* best_sq,
                                                         float* second_sq) {
  const size_t d = panel.d, padded_k = panel.padded_k, k = panel.k;
  const size_t groups = (k + 15) / 16;
  const __m512 inf = _mm512_set1_ps(__builtin_inff());
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const float* x0 = rows[0];
  const float* x1 = rows[1];
  const float* x2 = rows[2];
  const float* x3 = rows[3];
  __m512 b0 = inf, b1 = inf, b2 = inf, b3 = inf;
  __m512 s0 = inf, s1 = inf, s2 = inf, s3 = inf;
  __m512i i0 = lane, i1 = lane, i2 = lane, i3 = lane;
  for (size_t g = 0; g < groups; ++g) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    const float* p = panel.values.data() + g * 16;
    for (size_t j = 0; j < d; ++j, p += padded_k) {
      const __m512 c = _mm512_loadu_ps(p);
      __m512 t = _mm512_sub_ps(_mm512_set1_ps(x0[j]), c);
      a0 = _mm512_fmadd_ps(t, t, a0);
      t = _mm512_sub_ps(_mm512_set1_ps(x1[j]), c);
      a1 = _mm512_fmadd_ps(t, t, a1);
      t = _mm512_sub_ps(_mm512_set1_ps(x2[j]), c);
      a2 = _mm512_fmadd_ps(t, t, a2);
      t = _mm512_sub_ps(_mm512_set1_ps(x3[j]), c);
      a3 = _mm512_fmadd_ps(t, t, a3);
    }
    const size_t remaining = k - g * 16;
    const __mmask16 valid =
        remaining >= 16 ? static_cast<__mmask16>(0xffff)
                        : static_cast<__mmask16>((1u << remaining) - 1);
    const __m512i index = _mm512_add_epi32(lane, _mm512_set1_epi32(static_cast<int>(g * 16)));
    Fold512(a0, valid, index, b0, s0, i0);
    Fold512(a1, valid, index, b1, s1, i1);
    Fold512(a2, valid, index, b2, s2, i2);
    Fold512(a3, valid, index, b3, s3, i3);
  }
  Finish512(b0, s0, i0, &best[0], &best_sq[0], &second_sq[0]);
  Finish512(b1, s1, i1, &best[1], &best_sq[1], &second_sq[1]);
  Finish512(b2, s2, i2, &best[2], &best_sq[2], &second_sq[2]);
  Finish512(b3, s3, i3, &best[3], &best_sq[3], &second_sq[3]);
}
#pragma GCC diagnostic pop
#endif

using BlockFn = void (*)(const float* const*, const CentroidPanel&, float*);
using DistanceFn = float (*)(const float*, const float*, size_t);
using NearestFn = void (*)(const float* const*, const CentroidPanel&, int32_t*, float*, float*);
using Distances4Fn = void (*)(const float* const*, const float* const*, size_t, float*);

struct Kernels {
  BlockFn block = BlockGeneric;
  NearestFn nearest = NearestTwoGeneric;
  DistanceFn distance = DistanceGeneric;
  Distances4Fn distances4 = Distances4Generic;
  const char* name = "generic";
};

// The best set this CPU supports, or the named one ("generic", "avx2", "avx512"); false if the
// CPU lacks it.
bool SelectKernels(const char* name, Kernels* kernels) {
  const bool best = std::strcmp(name, "best") == 0;
  *kernels = Kernels();
  if (std::strcmp(name, "generic") == 0) return true;
#ifdef SHOAL_KMEANS_X86
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return best;
  kernels->block = BlockAvx2;
  kernels->distance = DistanceAvx2;
  kernels->distances4 = Distances4Avx2;
  kernels->nearest = NearestTwoAvx2;
  kernels->name = "avx2";
  if (std::strcmp(name, "avx2") == 0) return true;
  if (!__builtin_cpu_supports("avx512f")) return best;
  kernels->block = BlockAvx512;
  kernels->nearest = NearestTwoAvx512;
  kernels->name = "avx512";
  return true;
#else
  return best;
#endif
}

Kernels& ActiveKernels() {
  static Kernels kernels = [] {
    Kernels k;
    SelectKernels("best", &k);
    return k;
  }();
  return kernels;
}

// Block kernel of the selected instruction set, then a scalar scan.
void NearestTwoGeneric(const float* const* rows, const CentroidPanel& panel, int32_t* best,
                       float* best_sq, float* second_sq) {
  float buffer[kRowsPerBlock * 64];
  std::vector<float> heap;
  float* out = buffer;
  if (kRowsPerBlock * panel.padded_k > 4 * 64) {
    heap.resize(kRowsPerBlock * panel.padded_k);
    out = heap.data();
  }
  ActiveKernels().block(rows, panel, out);
  for (size_t r = 0; r < kRowsPerBlock; ++r) {
    best[r] = ArgMinTwo(out + r * panel.padded_k, panel.k, &best_sq[r], &second_sq[r]);
  }
}

}  // namespace

void NearestTwoBlock(const float* const* rows, const CentroidPanel& panel, int32_t* best,
                     float* best_sq, float* second_sq) {
  ActiveKernels().nearest(rows, panel, best, best_sq, second_sq);
}

void SquaredDistances4(const float* const* x, const float* const* c, size_t d, float* out) {
  ActiveKernels().distances4(x, c, d, out);
}

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

bool UseKernelsForTesting(const char* name) {
  Kernels kernels;
  if (!SelectKernels(name, &kernels)) return false;
  ActiveKernels() = kernels;
  return true;
}

}  // namespace shoal::kmeans_internal
