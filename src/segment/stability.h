// Stable rebuilds: a new clustering keeps the segment ids and names of the previous build where
// its centroids match (Hungarian algorithm on centroid distances, with a distance threshold), a
// customer near a boundary keeps its previous segment unless the new nearest centroid is closer by
// a margin (hysteresis), and every customer's move is counted in a transition matrix.
// docs/segments.md "Stable rebuilds" is the prose contract.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "common/context.h"
#include "common/status.h"

namespace shoal::segment {

// Minimum-cost assignment (Hungarian algorithm with potentials, O(r^2 c)) on a rows x cols
// row-major cost matrix with rows <= cols. Returns, per row, the column assigned to it; every row
// gets a distinct column. Costs must be finite (asserted, not validated).
std::vector<int32_t> SolveAssignment(std::span<const double> cost, size_t rows, size_t cols);

// The previous build's clusters, as stored with it.
struct PreviousClusters {
  // k_prev x dimensions, row-major, in the same (standardised) space as the new centroids.
  std::vector<double> centroids;
  // Per previous centroid: its segment id and its name.
  std::vector<int64_t> segment_ids;
  std::vector<std::string> names;
  // The id the next new segment receives (ids are never reused).
  int64_t next_segment_id = 0;
};

struct StabilityOptions {
  // Euclidean distance above which a new centroid is not matched to a previous one (and becomes a
  // new segment). <= 0 = automatic: half the median, over previous centroids, of the distance to
  // the nearest other previous centroid (infinite with one previous centroid).
  double max_match_distance = 0;
  // Hysteresis h: a customer whose previous segment survives keeps it unless the nearest new
  // centroid is closer by the factor (1 + h): it moves only if d_prev > (1 + h) * d_nearest.
  double hysteresis = 0.1;
};

// Counts of customers from each previous segment (rows) to each new segment (columns). Row id -1
// collects customers without a previous segment.
struct TransitionMatrix {
  std::vector<int64_t> from_ids;  // ascending
  std::vector<int64_t> to_ids;    // ascending
  std::vector<int64_t> counts;    // from_ids.size() x to_ids.size(), row-major
  int64_t Count(int64_t from_id, int64_t to_id) const;
};

struct StableClusters {
  // Per new centroid: the previous centroid it continues (-1 = a new segment), the distance to it,
  // its segment id and its name (the previous name, or empty for a new segment).
  std::vector<int32_t> matched_previous;
  std::vector<double> match_distance;
  std::vector<int64_t> segment_ids;
  std::vector<std::string> names;
  // The threshold actually used.
  double max_match_distance = 0;
  // Per customer: the new centroid index after hysteresis, its segment id, and whether hysteresis
  // kept it in its previous segment although another centroid was nearer.
  std::vector<int32_t> assignment;
  std::vector<int64_t> customer_segment_ids;
  std::vector<uint8_t> kept_by_hysteresis;
  // Customers with a previous segment whose segment id changed.
  int64_t moved = 0;
  TransitionMatrix transitions;
  int64_t next_segment_id = 0;
};

// Matches `centroids` (k x dimensions, row-major) to `previous`, assigns every customer of `points`
// (n x dimensions, row-major) with hysteresis against `previous_segment_ids` (per customer, -1 =
// none), and counts transitions. With no previous centroids every cluster is a new segment.
// InvalidArgument on inconsistent sizes or a negative hysteresis. Parallel over customers with
// context.Threads(); the result does not depend on the thread count.
Result<StableClusters> StabiliseClusters(std::span<const double> points,
                                         std::span<const double> centroids, size_t dimensions,
                                         std::span<const int64_t> previous_segment_ids,
                                         const PreviousClusters& previous,
                                         const StabilityOptions& options, const Context& context);

// The same for float32 points and centroids, as KMeans produces them (distances accumulate in
// double; previous centroids stay double).
Result<StableClusters> StabiliseClusters(std::span<const float> points,
                                         std::span<const float> centroids, size_t dimensions,
                                         std::span<const int64_t> previous_segment_ids,
                                         const PreviousClusters& previous,
                                         const StabilityOptions& options, const Context& context);

// Counts per (previous id, new id) pair; the spans are aligned per customer.
TransitionMatrix CountTransitions(std::span<const int64_t> previous_ids,
                                  std::span<const int64_t> new_ids);

}  // namespace shoal::segment
