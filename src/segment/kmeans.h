// Exact accelerated k-means on float32 matrices (row-major, n x d), k-means++ seeding, nearest
// centroid assignment and a silhouette criterion for choosing k.
//
// Exactness: Lloyd, Hamerly and Elkan follow the same trajectory from the same initial centroids
// (same labels at every iteration, same centroids bit for bit). The bound-based algorithms only
// skip a distance when the triangle inequality proves, with a margin covering float rounding,
// that the skipped centroid cannot win under the distance kernel Lloyd uses. Every distance is the
// direct form sum_j (x_j - c_j)^2 accumulated over j in order with fused multiply-adds, so all
// paths compute bit-identical values; ties go to the lowest centroid index.
//
// Determinism: work is cut into fixed blocks of points whose partial sums are merged in block
// order, so results depend on the seed and the data, never on ctx.Threads().
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/context.h"
#include "common/status.h"

namespace shoal {

struct KMeansOptions {
  enum class Algorithm {
    kAuto,       // Hamerly (the fastest exact choice measured for k <= 64 at small d)
    kLloyd,      // plain Lloyd: every point against every centroid each iteration
    kHamerly,    // one upper and one lower bound per point; exact
    kElkan,      // one upper and k lower bounds per point (n x k floats of memory); exact
    kMiniBatch,  // Sculley's mini-batch k-means; approximate, for very large inputs
  };

  // Number of clusters; 1 <= k <= n.
  int k = 8;
  // Maximum number of (assign, update) rounds; for kMiniBatch, passes over the data (epochs).
  int max_iterations = 300;
  // Convergence: stop when the summed squared centroid shift of a round is <= tolerance times the
  // mean per-feature variance of the data (scikit-learn's `tol`), or when no label changed. 0 =
  // stop only when no label changes. kMiniBatch ignores it (see minibatch_patience).
  double tolerance = 1e-4;
  // Algorithm; all but kMiniBatch reach the same result from the same initial centroids.
  Algorithm algorithm = Algorithm::kAuto;
  // KMeans() runs this many k-means++ seedings (seeds derived from ctx.seed) and keeps the lowest
  // inertia; KMeansFrom() ignores it.
  int n_init = 1;
  // kMiniBatch: points sampled (with replacement) per step.
  size_t minibatch_size = 4096;
  // kMiniBatch: stop after this many consecutive steps without improving the smoothed batch
  // inertia (scikit-learn's max_no_improvement).
  int minibatch_patience = 10;
  // ChooseK: the silhouette is computed exactly on a deterministic sample of at most this many
  // points (cost grows with its square).
  size_t silhouette_sample_size = 10000;
  // ChooseK: how the candidate clusterings are scored (the highest score wins).
  enum class KCriterion {
    kSilhouette,         // mean silhouette on a sample (Rousseeuw 1987); O(sample^2 d) per k
    kCalinskiHarabasz,   // variance ratio (Calinski & Harabasz 1974) on every point; O(1) per k
  };
  KCriterion k_criterion = KCriterion::kSilhouette;
};

struct KMeansResult {
  // Final centroids, k x d, row-major.
  std::vector<float> centroids;
  // Index of the nearest final centroid for every point (lowest index on ties), n entries.
  std::vector<int32_t> labels;
  // Sum over points of the squared Euclidean distance to the assigned centroid, in float64.
  double inertia = 0;
  // Number of (assign, update) rounds done (mini-batch: steps).
  int iterations = 0;
  // True when the tolerance or the no-label-change criterion stopped the run (mini-batch: the
  // patience criterion) before max_iterations.
  bool converged = false;
  // Per round: inertia of that round's labels around the centroids they produce (float64, from
  // per-cluster moments). Mini-batch: the smoothed per-point batch inertia of each step.
  std::vector<double> inertia_trace;
};

// Clusters `data` (n x d, row-major) into options.k clusters, seeding with KMeansPlusPlus and
// keeping the best of options.n_init runs. Uses ctx.Threads() workers; the result depends only on
// the data, options and ctx.seed. InvalidArgument for n == 0, d == 0, data.size() != n * d,
// k < 1 or k > n, non-finite values, or options out of range.
Result<KMeansResult> KMeans(std::span<const float> data, size_t n, size_t d,
                            const KMeansOptions& options, const Context& ctx);

// As KMeans, starting from `init_centroids` (options.k x d, row-major) instead of seeding; used for
// benchmarks with identical seeding and for stable rebuilds. kMiniBatch draws its samples from
// ctx.seed. InvalidArgument additionally when init_centroids has the wrong size or is not finite.
Result<KMeansResult> KMeansFrom(std::span<const float> data, size_t n, size_t d,
                                std::span<const float> init_centroids, const KMeansOptions& options,
                                const Context& ctx);

// Greedy k-means++ (Arthur & Vassilvitskii 2007, with 2 + floor(ln k) candidate centres per step
// keeping the one that lowers the potential most, as scikit-learn does). Returns k x d centroids.
// Preconditions (checked by assertions only): 1 <= k <= n, data.size() == n * d, finite values.
// Reproducible for a given ctx.seed whatever ctx.Threads().
std::vector<float> KMeansPlusPlus(std::span<const float> data, size_t n, size_t d, int k,
                                  const Context& ctx);

// Writes, for each of the n points, the index of the nearest of the k centroids (k x d; lowest
// index on ties) to labels[i] and the squared distance to it (same kernel as KMeans) to
// sq_distances[i]. Preconditions (assertions): sizes n * d, k * d, n, n; k >= 1.
void AssignNearest(std::span<const float> data, size_t n, size_t d,
                   std::span<const float> centroids, size_t k, std::span<int32_t> labels,
                   std::span<float> sq_distances, const Context& ctx);

// Chooses k in [k_min, k_max] by scoring the KMeans clustering for each k with
// options.k_criterion: the mean silhouette (Rousseeuw 1987), computed exactly (Euclidean
// distances) on a deterministic sample of at most options.silhouette_sample_size points, or the
// Calinski-Harabasz variance ratio over all points. The highest score wins, the smallest k on
// ties. If `scores` is non-null it receives one score per k, in order. InvalidArgument for
// k_min < 2, k_max < k_min, k_max > n, and everything KMeans rejects.
Result<int> ChooseK(std::span<const float> data, size_t n, size_t d, int k_min, int k_max,
                    const KMeansOptions& options, const Context& ctx,
                    std::vector<double>* scores);

// Calinski-Harabasz index of a k-clustering with within-cluster sum of squares `inertia`:
//   [(T - W) / (k - 1)] / [W / (n - k)],  T = total sum of squares about the grand mean (float64).
// +infinity when W == 0 and T > 0; 0 when k < 2 or n <= k.
double CalinskiHarabasz(std::span<const float> data, size_t n, size_t d, int k, double inertia);

// Mean silhouette of `labels` (values in [0, k)) over the points whose indices are listed in
// `sample` (all points when empty), distances only among sampled points. Points alone in their
// cluster score 0. Preconditions (assertions): sizes consistent, labels in range.
double Silhouette(std::span<const float> data, size_t n, size_t d, std::span<const int32_t> labels,
                  int k, std::span<const size_t> sample, const Context& ctx);

}  // namespace shoal
