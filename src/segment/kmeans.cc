#include "segment/kmeans.h"

#include <algorithm>
#include <cassert>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "common/parallel.h"
#include "segment/kmeans_kernels.h"

namespace shoal {
namespace {

using kmeans_internal::ArgMinTwo;
using kmeans_internal::BuildPanel;
using kmeans_internal::CentroidPanel;
using kmeans_internal::kRowsPerBlock;
using kmeans_internal::NearestTwoBlock;
using kmeans_internal::SquaredDistance;
using kmeans_internal::SquaredDistances4;
using kmeans_internal::SquaredDistancesBlock;
using Algorithm = KMeansOptions::Algorithm;

// Fixed unit of parallel work and of partial sums: results never depend on the thread count.
constexpr size_t kBlockPoints = 8192;
// Directed rounding for bounds kept in float across iterations.
constexpr float kRoundUp = 1.0f + 4 * FLT_EPSILON;
constexpr float kRoundDown = 1.0f - 4 * FLT_EPSILON;
constexpr float kInfinity = std::numeric_limits<float>::infinity();

size_t NumBlocks(size_t n) { return (n + kBlockPoints - 1) / kBlockPoints; }

// Runs fn(block_idx, begin, end) over the fixed blocks of [0, n) on `threads` workers.
template <typename Fn>
void ForEachBlock(size_t n, int threads, Fn&& fn) {
  ParallelFor(
      NumBlocks(n), threads,
      [&](size_t block_begin, size_t block_end, int) {
        for (size_t block = block_begin; block < block_end; ++block) {
          fn(block, block * kBlockPoints, std::min(n, (block + 1) * kBlockPoints));
        }
      },
      1);
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Small deterministic generator (SplitMix64 stream); identical on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    state_ += 0x9e3779b97f4a7c15ULL;
    return SplitMix64(state_);
  }
  // Uniform in [0, 1).
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Uniform in [0, bound), bound >= 1.
  size_t Below(size_t bound) {
    return std::min(bound - 1, static_cast<size_t>(Uniform() * static_cast<double>(bound)));
  }

 private:
  uint64_t state_;
};

// Squared norm in float64 with four interleaved partial sums (fixed order, so deterministic).
inline double NormSquared(const float* x, size_t d) {
  double p0 = 0, p1 = 0, p2 = 0, p3 = 0;
  size_t j = 0;
  for (; j + 4 <= d; j += 4) {
    double v0 = x[j], v1 = x[j + 1], v2 = x[j + 2], v3 = x[j + 3];
    p0 += v0 * v0;
    p1 += v1 * v1;
    p2 += v2 * v2;
    p3 += v3 * v3;
  }
  for (; j < d; ++j) p0 += static_cast<double>(x[j]) * x[j];
  return (p0 + p1) + (p2 + p3);
}

// Per-cluster first and second moments in float64 with counts; mergeable.
struct Moments {
  size_t k = 0, d = 0;
  std::vector<double> sum;     // k x d
  std::vector<double> sum_sq;  // k: sum of squared norms
  std::vector<int64_t> count;  // k
  bool touched = false;

  void Init(size_t clusters, size_t dims) {
    k = clusters;
    d = dims;
    sum.assign(k * d, 0.0);
    sum_sq.assign(k, 0.0);
    count.assign(k, 0);
    touched = false;
  }
  void Clear() {
    if (!touched) return;
    std::fill(sum.begin(), sum.end(), 0.0);
    std::fill(sum_sq.begin(), sum_sq.end(), 0.0);
    std::fill(count.begin(), count.end(), 0);
    touched = false;
  }
  // Moves point x from cluster `from` (-1 = none) to cluster `to`.
  void Move(const float* x, int32_t from, int32_t to) {
    touched = true;
    double* to_sum = sum.data() + static_cast<size_t>(to) * d;
    for (size_t j = 0; j < d; ++j) to_sum[j] += x[j];
    const double norm_sq = NormSquared(x, d);
    sum_sq[to] += norm_sq;
    count[to] += 1;
    if (from >= 0) {
      double* from_sum = sum.data() + static_cast<size_t>(from) * d;
      for (size_t j = 0; j < d; ++j) from_sum[j] -= x[j];
      sum_sq[from] -= norm_sq;
      count[from] -= 1;
    }
  }
  void Add(const Moments& other) {
    if (!other.touched) return;
    touched = true;
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += other.sum[i];
    for (size_t c = 0; c < k; ++c) {
      sum_sq[c] += other.sum_sq[c];
      count[c] += other.count[c];
    }
  }
  // Mean over features of the population variance of all points counted (scikit-learn's
  // tolerance scale), from the pooled moments.
  double MeanVariance() const {
    double total_sq = 0, total_count = 0, centre_sq = 0;
    for (size_t c = 0; c < k; ++c) {
      total_sq += sum_sq[c];
      total_count += static_cast<double>(count[c]);
    }
    for (size_t j = 0; j < d; ++j) {
      double s = 0;
      for (size_t c = 0; c < k; ++c) s += sum[c * d + j];
      centre_sq += s * s;
    }
    if (total_count == 0) return 0;
    return std::max(0.0, total_sq - centre_sq / total_count) / (total_count * d);
  }
  // Sum over clusters of squared distances of members to their mean.
  double Inertia() const {
    double total = 0;
    for (size_t c = 0; c < k; ++c) {
      if (count[c] == 0) continue;
      double norm_sq = 0;
      for (size_t j = 0; j < d; ++j) norm_sq += sum[c * d + j] * sum[c * d + j];
      total += std::max(0.0, sum_sq[c] - norm_sq / static_cast<double>(count[c]));
    }
    return total;
  }
};

Status CheckFinite(std::span<const float> values, const char* what, int threads) {
  const size_t n = values.size();
  std::vector<size_t> first_bad(NumBlocks(n), n);
  ForEachBlock(n, threads, [&](size_t block, size_t begin, size_t end) {
    // Exponent bits all ones = infinity or NaN; a branch-free scan that vectorises.
    uint32_t any_bad = 0;
    for (size_t i = begin; i < end; ++i) {
      uint32_t bits;
      std::memcpy(&bits, &values[i], sizeof(bits));
      any_bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
    }
    if (!any_bad) return;
    for (size_t i = begin; i < end; ++i) {
      if (!std::isfinite(values[i])) {
        first_bad[block] = i;
        return;
      }
    }
  });
  for (size_t bad : first_bad) {
    if (bad < n) {
      return Status::InvalidArgument(std::string("k-means: ") + what + " value " +
                                     std::to_string(bad) + " is not finite (NaN or infinity)");
    }
  }
  return Status::OK();
}

Status ValidateInputs(std::span<const float> data, size_t n, size_t d,
                      const KMeansOptions& options, int threads) {
  if (n == 0) return Status::InvalidArgument("k-means: no points (n == 0)");
  if (d == 0) return Status::InvalidArgument("k-means: no features (d == 0)");
  if (data.size() != n * d) {
    return Status::InvalidArgument("k-means: data has " + std::to_string(data.size()) +
                                   " values, expected n * d = " + std::to_string(n * d));
  }
  if (options.k < 1 || static_cast<size_t>(options.k) > n) {
    return Status::InvalidArgument("k-means: k = " + std::to_string(options.k) +
                                   " must be in [1, n = " + std::to_string(n) + "]");
  }
  if (options.max_iterations < 1) {
    return Status::InvalidArgument("k-means: max_iterations must be >= 1");
  }
  if (!(options.tolerance >= 0) || !std::isfinite(options.tolerance)) {
    return Status::InvalidArgument("k-means: tolerance must be finite and >= 0");
  }
  if (options.n_init < 1) return Status::InvalidArgument("k-means: n_init must be >= 1");
  if (options.minibatch_size < 1) {
    return Status::InvalidArgument("k-means: minibatch_size must be >= 1");
  }
  if (options.minibatch_patience < 1) {
    return Status::InvalidArgument("k-means: minibatch_patience must be >= 1");
  }
  if (options.silhouette_sample_size < 2) {
    return Status::InvalidArgument("k-means: silhouette_sample_size must be >= 2");
  }
  return CheckFinite(data, "data", threads);
}

// Exact float64 inertia of `labels` around `centroids`.
double ExactInertia(const float* data, size_t n, size_t d, const float* centroids,
                    const int32_t* labels, int threads) {
  std::vector<double> partial(NumBlocks(n), 0.0);
  ForEachBlock(n, threads, [&](size_t block, size_t begin, size_t end) {
    double total = 0;
    for (size_t i = begin; i < end; ++i) {
      const float* x = data + i * d;
      const float* c = centroids + static_cast<size_t>(labels[i]) * d;
      double p0 = 0, p1 = 0, p2 = 0, p3 = 0;  // independent chains; fixed order
      size_t j = 0;
      for (; j + 4 <= d; j += 4) {
        double e0 = static_cast<double>(x[j]) - c[j], e1 = static_cast<double>(x[j + 1]) - c[j + 1];
        double e2 = static_cast<double>(x[j + 2]) - c[j + 2];
        double e3 = static_cast<double>(x[j + 3]) - c[j + 3];
        p0 += e0 * e0;
        p1 += e1 * e1;
        p2 += e2 * e2;
        p3 += e3 * e3;
      }
      for (; j < d; ++j) {
        double e = static_cast<double>(x[j]) - c[j];
        p0 += e * e;
      }
      total += (p0 + p1) + (p2 + p3);
    }
    partial[block] = total;
  });
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

// One k-means run from given centroids. Holds the state of the exact algorithms: labels, moments
// (kept up to date by label moves) and the per-point bounds.
class Clusterer {
 public:
  Clusterer(const float* data, size_t n, size_t d, size_t k, const KMeansOptions& options,
            const Context& ctx)
      : data_(data), n_(n), d_(d), k_(k), options_(options), threads_(ctx.Threads()),
        seed_(ctx.seed) {
    algorithm_ = options.algorithm == Algorithm::kAuto ? Algorithm::kHamerly : options.algorithm;
    // Relative error bound of a kernel distance (d rounded fused terms, one subtraction, sqrt),
    // doubled: stored bounds are widened by it and a pruning test must clear it both ways.
    const float error = static_cast<float>(d + 4) * FLT_EPSILON;
    grow_ = 1.0f + error;
    shrink_ = 1.0f - error;
  }

  KMeansResult Run(std::span<const float> init) {
    if (algorithm_ == Algorithm::kMiniBatch) return RunMiniBatch(init);
    double tolerance = 0;
    centroids_.assign(init.begin(), init.end());
    labels_.assign(n_, -1);
    totals_.Init(k_, d_);
    block_moments_.resize(NumBlocks(n_));
    for (auto& m : block_moments_) m.Init(k_, d_);
    block_changes_.assign(NumBlocks(n_), 0);
    drift_.assign(k_, 0.0f);
    upper_.assign(n_, kInfinity);
    if (algorithm_ == Algorithm::kHamerly) lower_.assign(n_, 0.0f);
    if (algorithm_ == Algorithm::kElkan) lower_.assign(n_ * k_, 0.0f);
    PrepareCentroids();

    KMeansResult result;
    bool labels_consistent = false;
    for (int iteration = 0; iteration < options_.max_iterations; ++iteration) {
      size_t changed = Assign(iteration == 0);
      if (iteration == 0) tolerance = options_.tolerance * totals_.MeanVariance();
      bool relocated = RelocateEmptyClusters();
      result.iterations = iteration + 1;
      if (iteration > 0 && changed == 0 && !relocated) {
        // Labels repeat, so the update would reproduce the same centroids bit for bit.
        result.inertia_trace.push_back(totals_.Inertia());
        result.converged = true;
        labels_consistent = true;
        break;
      }
      double shift = UpdateCentroids();
      result.inertia_trace.push_back(totals_.Inertia());
      if (shift <= tolerance) {
        result.converged = true;
        break;
      }
    }
    if (!labels_consistent) Assign(false);  // labels of the final centroids
    result.inertia = ExactInertia(data_, n_, d_, centroids_.data(), labels_.data(), threads_);
    result.centroids = std::move(centroids_);
    result.labels = std::move(labels_);
    return result;
  }

 private:
  const float* Row(size_t i) const { return data_ + i * d_; }
  bool Prunes(float upper, float lower) const { return upper * grow_ < lower * shrink_; }

  // Panel and centroid half-gaps for the current centroids.
  void PrepareCentroids() {
    BuildPanel(centroids_.data(), k_, d_, &panel_);
    if (algorithm_ != Algorithm::kHamerly && algorithm_ != Algorithm::kElkan) return;
    half_gap_.assign(k_, kInfinity);
    if (algorithm_ == Algorithm::kElkan) pair_half_gap_.assign(k_ * k_, 0.0f);
    for (size_t a = 0; a < k_; ++a) {
      for (size_t b = a + 1; b < k_; ++b) {
        double sq = 0;
        for (size_t j = 0; j < d_; ++j) {
          double diff = static_cast<double>(centroids_[a * d_ + j]) - centroids_[b * d_ + j];
          sq += diff * diff;
        }
        float half = static_cast<float>(0.5 * std::sqrt(sq)) * kRoundDown;
        half_gap_[a] = std::min(half_gap_[a], half);
        half_gap_[b] = std::min(half_gap_[b], half);
        if (algorithm_ == Algorithm::kElkan) {
          pair_half_gap_[a * k_ + b] = half;
          pair_half_gap_[b * k_ + a] = half;
        }
      }
    }
  }

  // One assignment pass; returns the number of labels that changed. Moves are recorded in
  // per-block moments and merged into totals_ in block order.
  size_t Assign(bool first) {
    if (algorithm_ == Algorithm::kHamerly) {
      AssignHamerly(first);
    } else if (algorithm_ == Algorithm::kElkan) {
      AssignElkan(first);
    } else {
      AssignLloyd();
    }
    size_t changed = 0;
    for (size_t block = 0; block < block_moments_.size(); ++block) {
      totals_.Add(block_moments_[block]);
      changed += block_changes_[block];
    }
    return changed;
  }

  // Nearest and second nearest centroid of points[0..count) (count <= kRowsPerBlock); calls
  // on_row(r, best, best_sq, second_sq).
  template <typename OnRow>
  void NearestRows(const size_t* points, size_t count, OnRow&& on_row) const {
    const float* rows[kRowsPerBlock];
    for (size_t r = 0; r < kRowsPerBlock; ++r) rows[r] = Row(points[r < count ? r : 0]);
    int32_t best[kRowsPerBlock];
    float best_sq[kRowsPerBlock], second_sq[kRowsPerBlock];
    NearestTwoBlock(rows, panel_, best, best_sq, second_sq);
    for (size_t r = 0; r < count; ++r) on_row(r, best[r], best_sq[r], second_sq[r]);
  }

  // Full scan of points[0..count) (count <= kRowsPerBlock); calls on_row(r, best, best_sq,
  // second_sq, distances_of_row).
  template <typename OnRow>
  void ScanRows(const size_t* points, size_t count, float* buffer, OnRow&& on_row) const {
    const float* rows[kRowsPerBlock];
    for (size_t r = 0; r < kRowsPerBlock; ++r) rows[r] = Row(points[r < count ? r : 0]);
    SquaredDistancesBlock(rows, panel_, buffer);
    for (size_t r = 0; r < count; ++r) {
      const float* distances = buffer + r * panel_.padded_k;
      float best_sq, second_sq;
      int32_t best = ArgMinTwo(distances, k_, &best_sq, &second_sq);
      on_row(r, best, best_sq, second_sq, distances);
    }
  }

  void AssignLloyd() {
    ForEachBlock(n_, threads_, [&](size_t block, size_t begin, size_t end) {
      Moments& moments = block_moments_[block];
      moments.Clear();
      size_t changes = 0;
      size_t points[kRowsPerBlock];
      for (size_t i = begin; i < end; i += kRowsPerBlock) {
        size_t count = std::min(kRowsPerBlock, end - i);
        for (size_t r = 0; r < count; ++r) points[r] = i + r;
        NearestRows(points, count, [&](size_t r, int32_t best, float, float) {
                   size_t p = points[r];
                   if (labels_[p] != best) {
                     moments.Move(Row(p), labels_[p], best);
                     labels_[p] = best;
                     ++changes;
                   }
                 });
      }
      block_changes_[block] = changes;
    });
  }

  // Hamerly (2010): upper bound to the own centroid, one lower bound to all others.
  void AssignHamerly(bool first) {
    // A full scan of up to 16 centroids costs about as much as one exact distance, so small k
    // goes straight to the scan, which also refreshes the lower bound.
    const bool tighten = k_ > 16;
    // Largest and second largest drift, so that "largest drift of another centroid" is O(1).
    size_t top = 0;
    for (size_t c = 1; c < k_; ++c) {
      if (drift_[c] > drift_[top]) top = c;
    }
    float top_drift = drift_[top], second_drift = 0.0f;
    for (size_t c = 0; c < k_; ++c) {
      if (c != top) second_drift = std::max(second_drift, drift_[c]);
    }
    ForEachBlock(n_, threads_, [&](size_t block, size_t begin, size_t end) {
      Moments& moments = block_moments_[block];
      moments.Clear();
      // Points leave the queues out of index order; moves are applied sorted afterwards so the
      // float64 sums see the same order as Lloyd's.
      std::vector<std::pair<size_t, int32_t>> moved;  // (point, previous label)
      size_t pending[kRowsPerBlock];
      size_t num_pending = 0;
      auto flush = [&] {
        NearestRows(pending, num_pending, [&](size_t r, int32_t best, float best_sq, float second_sq) {
                   size_t p = pending[r];
                   upper_[p] = std::sqrt(best_sq) * grow_;
                   lower_[p] = std::sqrt(second_sq) * shrink_;
                   if (labels_[p] != best) {
                     moved.emplace_back(p, labels_[p]);
                     labels_[p] = best;
                   }
                 });
        num_pending = 0;
      };
      size_t tighten_points[kRowsPerBlock];
      float tighten_bound[kRowsPerBlock];
      size_t num_tighten = 0;
      auto tighten_flush = [&] {
        const float* x[kRowsPerBlock];
        const float* c[kRowsPerBlock];
        float sq[kRowsPerBlock];
        for (size_t r = 0; r < kRowsPerBlock; ++r) {
          size_t p = tighten_points[r < num_tighten ? r : 0];
          x[r] = Row(p);
          c[r] = centroids_.data() + static_cast<size_t>(labels_[p]) * d_;
        }
        SquaredDistances4(x, c, d_, sq);
        for (size_t r = 0; r < num_tighten; ++r) {
          size_t p = tighten_points[r];
          float upper = std::sqrt(sq[r]) * grow_;
          upper_[p] = upper;
          if (Prunes(upper, tighten_bound[r])) continue;
          pending[num_pending++] = p;
          if (num_pending == kRowsPerBlock) flush();
        }
        num_tighten = 0;
      };
      for (size_t i = begin; i < end; ++i) {
        if (!first) {
          int32_t a = labels_[i];
          float upper = (upper_[i] + drift_[a]) * kRoundUp;
          float lower = (lower_[i] - (static_cast<size_t>(a) == top ? second_drift : top_drift)) *
                        kRoundDown;
          upper_[i] = upper;
          lower_[i] = lower;
          float bound = std::max(half_gap_[a], lower);
          if (Prunes(upper, bound)) continue;
          if (tighten) {
            // Recompute the upper bound exactly, four points at a time for throughput.
            tighten_points[num_tighten] = i;
            tighten_bound[num_tighten++] = bound;
            if (num_tighten == kRowsPerBlock) tighten_flush();
            continue;
          }
        }
        pending[num_pending++] = i;
        if (num_pending == kRowsPerBlock) flush();
      }
      if (num_tighten > 0) tighten_flush();
      if (num_pending > 0) flush();
      if (tighten) std::sort(moved.begin(), moved.end());  // otherwise already in order
      for (const auto& [p, previous] : moved) moments.Move(Row(p), previous, labels_[p]);
      block_changes_[block] = moved.size();
    });
  }

  // Elkan (2003): upper bound to the own centroid, one lower bound per centroid.
  void AssignElkan(bool first) {
    ForEachBlock(n_, threads_, [&](size_t block, size_t begin, size_t end) {
      Moments& moments = block_moments_[block];
      moments.Clear();
      size_t changes = 0;
      if (first) {
        std::vector<float> buffer(kRowsPerBlock * panel_.padded_k);
        size_t points[kRowsPerBlock];
        for (size_t i = begin; i < end; i += kRowsPerBlock) {
          size_t count = std::min(kRowsPerBlock, end - i);
          for (size_t r = 0; r < count; ++r) points[r] = i + r;
          ScanRows(points, count, buffer.data(),
                   [&](size_t r, int32_t best, float best_sq, float, const float* distances) {
                     size_t p = points[r];
                     float* lower = lower_.data() + p * k_;
                     for (size_t c = 0; c < k_; ++c) lower[c] = std::sqrt(distances[c]) * shrink_;
                     upper_[p] = std::sqrt(best_sq) * grow_;
                     moments.Move(Row(p), labels_[p], best);
                     labels_[p] = best;
                     ++changes;
                   });
        }
        block_changes_[block] = changes;
        return;
      }
      for (size_t i = begin; i < end; ++i) {
        float* lower = lower_.data() + i * k_;
        for (size_t c = 0; c < k_; ++c) lower[c] = (lower[c] - drift_[c]) * kRoundDown;
        int32_t a = labels_[i];
        float upper = (upper_[i] + drift_[a]) * kRoundUp;
        if (!Prunes(upper, half_gap_[a])) {
          const float* x = Row(i);
          bool exact = false;
          float best_sq = 0;
          for (size_t c = 0; c < k_; ++c) {
            if (static_cast<int32_t>(c) == a) continue;
            float bound = std::max(lower[c], pair_half_gap_[a * k_ + c]);
            if (Prunes(upper, bound)) continue;
            if (!exact) {
              best_sq = SquaredDistance(x, centroids_.data() + a * d_, d_);
              upper = std::sqrt(best_sq) * grow_;
              lower[a] = std::sqrt(best_sq) * shrink_;
              exact = true;
              if (Prunes(upper, bound)) continue;
            }
            float sq = SquaredDistance(x, centroids_.data() + c * d_, d_);
            lower[c] = std::sqrt(sq) * shrink_;
            if (sq < best_sq || (sq == best_sq && static_cast<int32_t>(c) < a)) {
              a = static_cast<int32_t>(c);
              best_sq = sq;
              upper = std::sqrt(sq) * grow_;
            }
          }
        }
        upper_[i] = upper;
        if (labels_[i] != a) {
          moments.Move(Row(i), labels_[i], a);
          labels_[i] = a;
          ++changes;
        }
      }
      block_changes_[block] = changes;
    });
  }

  // Gives every empty cluster the point farthest from its centroid (lowest index on ties) among
  // clusters that keep at least one member. Returns whether anything moved. Same for every
  // algorithm, so they stay on one trajectory.
  bool RelocateEmptyClusters() {
    std::vector<int32_t> empty;
    for (size_t c = 0; c < k_; ++c) {
      if (totals_.count[c] == 0) empty.push_back(static_cast<int32_t>(c));
    }
    if (empty.empty()) return false;
    std::vector<float> distance(n_);
    ForEachBlock(n_, threads_, [&](size_t, size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) {
        distance[i] = SquaredDistance(Row(i), centroids_.data() + labels_[i] * d_, d_);
      }
    });
    for (int32_t target : empty) {
      size_t chosen = n_;
      float farthest = -1.0f;
      for (size_t i = 0; i < n_; ++i) {
        if (distance[i] > farthest && totals_.count[labels_[i]] > 1) {
          farthest = distance[i];
          chosen = i;
        }
      }
      assert(chosen < n_);  // k <= n guarantees a cluster with two members
      totals_.Move(Row(chosen), labels_[chosen], target);
      labels_[chosen] = target;
      distance[chosen] = -1.0f;  // never chosen twice
      upper_[chosen] = kInfinity;
      if (algorithm_ == Algorithm::kHamerly) lower_[chosen] = 0.0f;
    }
    return true;
  }

  // Centroids <- cluster means; returns the summed squared shift and records per-centroid drift.
  double UpdateCentroids() {
    double shift = 0;
    for (size_t c = 0; c < k_; ++c) {
      if (totals_.count[c] == 0) {
        drift_[c] = 0.0f;
        continue;
      }
      double inverse = 1.0 / static_cast<double>(totals_.count[c]);
      double moved_sq = 0;
      for (size_t j = 0; j < d_; ++j) {
        float updated = static_cast<float>(totals_.sum[c * d_ + j] * inverse);
        double diff = static_cast<double>(updated) - centroids_[c * d_ + j];
        moved_sq += diff * diff;
        centroids_[c * d_ + j] = updated;
      }
      shift += moved_sq;
      drift_[c] = static_cast<float>(std::sqrt(moved_sq)) * kRoundUp;
    }
    PrepareCentroids();
    return shift;
  }

  // Sculley (2010) mini-batch k-means with per-centre learning rates 1 / (points seen).
  KMeansResult RunMiniBatch(std::span<const float> init) {
    centroids_.assign(init.begin(), init.end());
    const size_t batch = std::min(options_.minibatch_size, n_);
    const size_t steps_per_epoch = (n_ + batch - 1) / batch;
    const size_t max_steps = steps_per_epoch * static_cast<size_t>(options_.max_iterations);
    const double alpha = std::min(1.0, 2.0 * static_cast<double>(batch) / (n_ + 1.0));
    Rng rng(SplitMix64(seed_ ^ 0x6d696e6962617463ULL));
    std::vector<double> weight(k_, 0.0), batch_sum(k_ * d_);
    std::vector<int64_t> batch_count(k_);
    std::vector<size_t> sample(batch);
    std::vector<int32_t> sample_label(batch);
    std::vector<float> sample_sq(batch);
    KMeansResult result;
    double smoothed = 0, best_smoothed = std::numeric_limits<double>::infinity();
    int no_improvement = 0;
    for (size_t step = 0; step < max_steps; ++step) {
      BuildPanel(centroids_.data(), k_, d_, &panel_);
      for (size_t s = 0; s < batch; ++s) sample[s] = rng.Below(n_);
      const size_t groups = (batch + kRowsPerBlock - 1) / kRowsPerBlock;
      ParallelFor(
          groups, threads_,
          [&](size_t group_begin, size_t group_end, int) {
            for (size_t g = group_begin; g < group_end; ++g) {
              size_t first = g * kRowsPerBlock;
              size_t count = std::min(kRowsPerBlock, batch - first);
              NearestRows(sample.data() + first, count,
                       [&](size_t r, int32_t best, float best_sq, float) {
                         sample_label[first + r] = best;
                         sample_sq[first + r] = best_sq;
                       });
            }
          },
          256);
      std::fill(batch_sum.begin(), batch_sum.end(), 0.0);
      std::fill(batch_count.begin(), batch_count.end(), 0);
      double batch_inertia = 0;
      for (size_t s = 0; s < batch; ++s) {
        const float* x = Row(sample[s]);
        double* sum = batch_sum.data() + static_cast<size_t>(sample_label[s]) * d_;
        for (size_t j = 0; j < d_; ++j) sum[j] += x[j];
        batch_count[sample_label[s]] += 1;
        batch_inertia += sample_sq[s];
      }
      for (size_t c = 0; c < k_; ++c) {
        if (batch_count[c] == 0) continue;
        double total = weight[c] + static_cast<double>(batch_count[c]);
        for (size_t j = 0; j < d_; ++j) {
          double updated = (static_cast<double>(centroids_[c * d_ + j]) * weight[c] +
                            batch_sum[c * d_ + j]) /
                           total;
          centroids_[c * d_ + j] = static_cast<float>(updated);
        }
        weight[c] = total;
      }
      batch_inertia /= static_cast<double>(batch);
      smoothed = step == 0 ? batch_inertia : smoothed * (1 - alpha) + batch_inertia * alpha;
      result.inertia_trace.push_back(smoothed);
      result.iterations = static_cast<int>(step + 1);
      if (smoothed < best_smoothed) {
        best_smoothed = smoothed;
        no_improvement = 0;
      } else if (++no_improvement >= options_.minibatch_patience) {
        result.converged = true;
        break;
      }
    }
    labels_.assign(n_, 0);
    std::vector<float> sq(n_);
    AssignNearest(std::span<const float>(data_, n_ * d_), n_, d_, centroids_, k_, labels_, sq,
                  Context{threads_, seed_, {}});
    result.inertia = ExactInertia(data_, n_, d_, centroids_.data(), labels_.data(), threads_);
    result.centroids = std::move(centroids_);
    result.labels = std::move(labels_);
    return result;
  }

  const float* data_;
  size_t n_, d_, k_;
  const KMeansOptions& options_;
  int threads_;
  uint64_t seed_;
  Algorithm algorithm_;
  float grow_ = 1, shrink_ = 1;

  std::vector<float> centroids_;  // k x d
  CentroidPanel panel_;
  std::vector<int32_t> labels_;
  Moments totals_;
  std::vector<Moments> block_moments_;
  std::vector<size_t> block_changes_;
  std::vector<float> drift_;          // k: distance each centroid moved in the last update
  std::vector<float> half_gap_;       // k: half the distance to the nearest other centroid
  std::vector<float> pair_half_gap_;  // k x k (Elkan): half the distance between centroids
  std::vector<float> upper_;          // n: upper bound of the distance to the own centroid
  std::vector<float> lower_;          // Hamerly n, Elkan n x k: lower bounds to other centroids
};

}  // namespace

std::vector<float> KMeansPlusPlus(std::span<const float> data, size_t n, size_t d, int k,
                                  const Context& ctx) {
  assert(k >= 1 && static_cast<size_t>(k) <= n && data.size() == n * d);
  const int threads = ctx.Threads();
  const float* x = data.data();
  const size_t clusters = static_cast<size_t>(k);
  std::vector<float> centers(clusters * d);
  Rng rng(ctx.seed);
  size_t first = rng.Below(n);
  std::copy(x + first * d, x + (first + 1) * d, centers.begin());
  if (clusters == 1) return centers;

  std::vector<float> closest(n);
  ForEachBlock(n, threads, [&](size_t, size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) closest[i] = SquaredDistance(x + i * d, x + first * d, d);
  });
  const size_t trials = 2 + static_cast<size_t>(std::log(static_cast<double>(k)));
  const size_t blocks = NumBlocks(n);
  std::vector<double> cumulative(n), partial(blocks * trials);
  std::vector<size_t> candidates(trials);
  std::vector<float> candidate_rows(trials * d);
  CentroidPanel panel;
  for (size_t center = 1; center < clusters; ++center) {
    double running = 0;
    for (size_t i = 0; i < n; ++i) {
      running += closest[i];
      cumulative[i] = running;
    }
    for (size_t t = 0; t < trials; ++t) {
      if (running > 0) {
        double target = rng.Uniform() * running;
        size_t idx = std::upper_bound(cumulative.begin(), cumulative.end(), target) -
                     cumulative.begin();
        candidates[t] = std::min(idx, n - 1);
      } else {
        candidates[t] = rng.Below(n);  // every point coincides with a centre already
      }
      std::copy(x + candidates[t] * d, x + (candidates[t] + 1) * d,
                candidate_rows.begin() + t * d);
    }
    BuildPanel(candidate_rows.data(), trials, d, &panel);
    ForEachBlock(n, threads, [&](size_t block, size_t begin, size_t end) {
      std::vector<float> buffer(kRowsPerBlock * panel.padded_k);
      double* potential = partial.data() + block * trials;
      std::fill(potential, potential + trials, 0.0);
      const float* rows[kRowsPerBlock];
      for (size_t i = begin; i < end; i += kRowsPerBlock) {
        size_t count = std::min(kRowsPerBlock, end - i);
        for (size_t r = 0; r < kRowsPerBlock; ++r) rows[r] = x + (i + (r < count ? r : 0)) * d;
        SquaredDistancesBlock(rows, panel, buffer.data());
        for (size_t r = 0; r < count; ++r) {
          for (size_t t = 0; t < trials; ++t) {
            potential[t] += std::min(closest[i + r], buffer[r * panel.padded_k + t]);
          }
        }
      }
    });
    size_t best_trial = 0;
    double best_potential = std::numeric_limits<double>::infinity();
    for (size_t t = 0; t < trials; ++t) {
      double total = 0;
      for (size_t block = 0; block < blocks; ++block) total += partial[block * trials + t];
      if (total < best_potential) {
        best_potential = total;
        best_trial = t;
      }
    }
    const float* chosen = candidate_rows.data() + best_trial * d;
    std::copy(chosen, chosen + d, centers.begin() + center * d);
    ForEachBlock(n, threads, [&](size_t, size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) {
        closest[i] = std::min(closest[i], SquaredDistance(x + i * d, chosen, d));
      }
    });
  }
  return centers;
}

void AssignNearest(std::span<const float> data, size_t n, size_t d,
                   std::span<const float> centroids, size_t k, std::span<int32_t> labels,
                   std::span<float> sq_distances, const Context& ctx) {
  assert(k >= 1 && data.size() == n * d && centroids.size() == k * d && labels.size() == n &&
         sq_distances.size() == n);
  CentroidPanel panel;
  BuildPanel(centroids.data(), k, d, &panel);
  ForEachBlock(n, ctx.Threads(), [&](size_t, size_t begin, size_t end) {
    const float* rows[kRowsPerBlock];
    int32_t best[kRowsPerBlock];
    float best_sq[kRowsPerBlock], second_sq[kRowsPerBlock];
    for (size_t i = begin; i < end; i += kRowsPerBlock) {
      size_t count = std::min(kRowsPerBlock, end - i);
      for (size_t r = 0; r < kRowsPerBlock; ++r) {
        rows[r] = data.data() + (i + (r < count ? r : 0)) * d;
      }
      NearestTwoBlock(rows, panel, best, best_sq, second_sq);
      for (size_t r = 0; r < count; ++r) {
        labels[i + r] = best[r];
        sq_distances[i + r] = best_sq[r];
      }
    }
  });
}

Result<KMeansResult> KMeansFrom(std::span<const float> data, size_t n, size_t d,
                                std::span<const float> init_centroids,
                                const KMeansOptions& options, const Context& ctx) {
  SHOAL_RETURN_IF_ERROR(ValidateInputs(data, n, d, options, ctx.Threads()));
  const size_t k = static_cast<size_t>(options.k);
  if (init_centroids.size() != k * d) {
    return Status::InvalidArgument("k-means: init_centroids has " +
                                   std::to_string(init_centroids.size()) +
                                   " values, expected k * d = " + std::to_string(k * d));
  }
  SHOAL_RETURN_IF_ERROR(CheckFinite(init_centroids, "init_centroids", ctx.Threads()));
  Clusterer clusterer(data.data(), n, d, k, options, ctx);
  return clusterer.Run(init_centroids);
}

Result<KMeansResult> KMeans(std::span<const float> data, size_t n, size_t d,
                            const KMeansOptions& options, const Context& ctx) {
  SHOAL_RETURN_IF_ERROR(ValidateInputs(data, n, d, options, ctx.Threads()));
  const size_t k = static_cast<size_t>(options.k);
  std::optional<KMeansResult> best;
  for (int run = 0; run < options.n_init; ++run) {
    Context run_ctx = ctx;
    if (run > 0) run_ctx.seed = SplitMix64(ctx.seed + static_cast<uint64_t>(run));
    std::vector<float> init = KMeansPlusPlus(data, n, d, options.k, run_ctx);
    Clusterer clusterer(data.data(), n, d, k, options, run_ctx);
    KMeansResult result = clusterer.Run(init);
    if (!best || result.inertia < best->inertia) best = std::move(result);
  }
  return std::move(*best);
}

double CalinskiHarabasz(std::span<const float> data, size_t n, size_t d, int k, double inertia) {
  if (k < 2 || n <= static_cast<size_t>(k)) return 0;
  std::vector<double> mean(d, 0.0);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < d; ++j) mean[j] += data[i * d + j];
  }
  for (double& m : mean) m /= static_cast<double>(n);
  double total = 0;
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < d; ++j) {
      double dev = data[i * d + j] - mean[j];
      total += dev * dev;
    }
  }
  double within = std::max(0.0, inertia);
  if (within <= 0) return total > 0 ? std::numeric_limits<double>::infinity() : 0;
  double between = std::max(0.0, total - within);
  return (between / (k - 1)) / (within / static_cast<double>(n - static_cast<size_t>(k)));
}

double Silhouette(std::span<const float> data, size_t n, size_t d, std::span<const int32_t> labels,
                  int k, std::span<const size_t> sample, const Context& ctx) {
  assert(data.size() == n * d && labels.size() == n && k >= 1);
  const size_t m = sample.empty() ? n : sample.size();
  if (m < 2) return 0.0;
  auto point = [&](size_t s) { return sample.empty() ? s : sample[s]; };
  const size_t clusters = static_cast<size_t>(k);
  std::vector<float> rows(m * d);
  std::vector<int32_t> label(m);
  std::vector<double> size(clusters, 0.0);
  for (size_t s = 0; s < m; ++s) {
    size_t p = point(s);
    assert(p < n && labels[p] >= 0 && labels[p] < k);
    std::copy(data.data() + p * d, data.data() + (p + 1) * d, rows.begin() + s * d);
    label[s] = labels[p];
    size[labels[p]] += 1;
  }
  // The sample itself is the "centroid" panel: one kernel call gives 4 rows of distances.
  CentroidPanel panel;
  BuildPanel(rows.data(), m, d, &panel);
  std::vector<double> score(m, 0.0);
  const size_t groups = (m + kRowsPerBlock - 1) / kRowsPerBlock;
  ParallelFor(
      groups, ctx.Threads(),
      [&](size_t group_begin, size_t group_end, int) {
        std::vector<float> buffer(kRowsPerBlock * panel.padded_k);
        std::vector<double> distance_sum(clusters);
        const float* row_ptr[kRowsPerBlock];
        for (size_t g = group_begin; g < group_end; ++g) {
          size_t first = g * kRowsPerBlock;
          size_t count = std::min(kRowsPerBlock, m - first);
          for (size_t r = 0; r < kRowsPerBlock; ++r) {
            row_ptr[r] = rows.data() + (first + (r < count ? r : 0)) * d;
          }
          SquaredDistancesBlock(row_ptr, panel, buffer.data());
          for (size_t r = 0; r < count; ++r) {
            const float* sq = buffer.data() + r * panel.padded_k;
            std::fill(distance_sum.begin(), distance_sum.end(), 0.0);
            for (size_t s = 0; s < m; ++s) distance_sum[label[s]] += std::sqrt(sq[s]);
            int32_t own = label[first + r];
            if (size[own] <= 1) continue;  // a singleton scores 0
            double a = distance_sum[own] / (size[own] - 1);
            double b = std::numeric_limits<double>::infinity();
            for (size_t c = 0; c < clusters; ++c) {
              if (static_cast<int32_t>(c) != own && size[c] > 0) {
                b = std::min(b, distance_sum[c] / size[c]);
              }
            }
            if (!std::isfinite(b)) continue;  // only one cluster present
            double denominator = std::max(a, b);
            score[first + r] = denominator > 0 ? (b - a) / denominator : 0.0;
          }
        }
      },
      16);
  double total = 0;
  for (double s : score) total += s;
  return total / static_cast<double>(m);
}

Result<int> ChooseK(std::span<const float> data, size_t n, size_t d, int k_min, int k_max,
                    const KMeansOptions& options, const Context& ctx,
                    std::vector<double>* scores) {
  if (k_min < 2) return Status::InvalidArgument("ChooseK: k_min must be >= 2");
  if (k_max < k_min) return Status::InvalidArgument("ChooseK: k_max must be >= k_min");
  KMeansOptions run_options = options;
  run_options.k = k_max;
  SHOAL_RETURN_IF_ERROR(ValidateInputs(data, n, d, run_options, ctx.Threads()));
  // Deterministic sample without replacement (partial Fisher-Yates), kept in index order.
  std::vector<size_t> sample;
  if (n > options.silhouette_sample_size) {
    std::vector<size_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = i;
    Rng rng(SplitMix64(ctx.seed ^ 0x73696c686f756574ULL));
    for (size_t s = 0; s < options.silhouette_sample_size; ++s) {
      std::swap(order[s], order[s + rng.Below(n - s)]);
    }
    sample.assign(order.begin(), order.begin() + options.silhouette_sample_size);
    std::sort(sample.begin(), sample.end());
  }
  if (scores) scores->clear();
  int best_k = k_min;
  double best_score = -std::numeric_limits<double>::infinity();
  for (int k = k_min; k <= k_max; ++k) {
    run_options.k = k;
    SHOAL_ASSIGN_OR_RETURN(KMeansResult result, KMeans(data, n, d, run_options, ctx));
    double score = options.k_criterion == KMeansOptions::KCriterion::kSilhouette
                       ? Silhouette(data, n, d, result.labels, k, sample, ctx)
                       : CalinskiHarabasz(data, n, d, k, result.inertia);
    if (scores) scores->push_back(score);
    if (score > best_score) {
      best_score = score;
      best_k = k;
    }
  }
  return best_k;
}

}  // namespace shoal
