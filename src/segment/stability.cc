#include "segment/stability.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <utility>

#include "common/parallel.h"

namespace shoal::segment {

std::vector<int32_t> SolveAssignment(std::span<const double> cost, size_t rows, size_t cols) {
  assert(rows <= cols && cost.size() == rows * cols);
  const double kInf = std::numeric_limits<double>::infinity();
  // Potentials u (rows) and v (columns), 1-based with a sentinel column 0; column_row[j] is the
  // row holding column j. Each row is added by a shortest augmenting path (Dijkstra on reduced
  // costs), so the total is O(rows^2 * cols).
  std::vector<double> u(rows + 1, 0), v(cols + 1, 0), min_reduced(cols + 1);
  std::vector<size_t> column_row(cols + 1, 0), previous_column(cols + 1, 0);
  std::vector<uint8_t> visited(cols + 1);
  for (size_t row = 1; row <= rows; ++row) {
    column_row[0] = row;
    size_t column = 0;
    std::fill(min_reduced.begin(), min_reduced.end(), kInf);
    std::fill(visited.begin(), visited.end(), 0);
    do {
      visited[column] = 1;
      const size_t current_row = column_row[column];
      double delta = kInf;
      size_t next_column = 0;
      for (size_t j = 1; j <= cols; ++j) {
        if (visited[j]) continue;
        const double reduced = cost[(current_row - 1) * cols + (j - 1)] - u[current_row] - v[j];
        if (reduced < min_reduced[j]) {
          min_reduced[j] = reduced;
          previous_column[j] = column;
        }
        if (min_reduced[j] < delta) {
          delta = min_reduced[j];
          next_column = j;
        }
      }
      for (size_t j = 0; j <= cols; ++j) {
        if (visited[j]) {
          u[column_row[j]] += delta;
          v[j] -= delta;
        } else {
          min_reduced[j] -= delta;
        }
      }
      column = next_column;
    } while (column_row[column] != 0);
    do {  // augment along the path
      const size_t prior = previous_column[column];
      column_row[column] = column_row[prior];
      column = prior;
    } while (column != 0);
  }
  std::vector<int32_t> assignment(rows, -1);
  for (size_t j = 1; j <= cols; ++j) {
    if (column_row[j] != 0) assignment[column_row[j] - 1] = static_cast<int32_t>(j - 1);
  }
  return assignment;
}

int64_t TransitionMatrix::Count(int64_t from_id, int64_t to_id) const {
  auto row = std::lower_bound(from_ids.begin(), from_ids.end(), from_id);
  auto col = std::lower_bound(to_ids.begin(), to_ids.end(), to_id);
  if (row == from_ids.end() || *row != from_id || col == to_ids.end() || *col != to_id) return 0;
  return counts[static_cast<size_t>(row - from_ids.begin()) * to_ids.size() +
                static_cast<size_t>(col - to_ids.begin())];
}

TransitionMatrix CountTransitions(std::span<const int64_t> previous_ids,
                                  std::span<const int64_t> new_ids) {
  TransitionMatrix matrix;
  matrix.from_ids.assign(previous_ids.begin(), previous_ids.end());
  matrix.to_ids.assign(new_ids.begin(), new_ids.end());
  for (auto* ids : {&matrix.from_ids, &matrix.to_ids}) {
    std::sort(ids->begin(), ids->end());
    ids->erase(std::unique(ids->begin(), ids->end()), ids->end());
  }
  matrix.counts.assign(matrix.from_ids.size() * matrix.to_ids.size(), 0);
  for (size_t idx = 0; idx < previous_ids.size(); ++idx) {
    const size_t row = static_cast<size_t>(
        std::lower_bound(matrix.from_ids.begin(), matrix.from_ids.end(), previous_ids[idx]) -
        matrix.from_ids.begin());
    const size_t col = static_cast<size_t>(
        std::lower_bound(matrix.to_ids.begin(), matrix.to_ids.end(), new_ids[idx]) -
        matrix.to_ids.begin());
    ++matrix.counts[row * matrix.to_ids.size() + col];
  }
  return matrix;
}

namespace {

// Accumulates in double whatever the element types, so float and double inputs agree closely.
template <typename A, typename B>
double SquaredDistance(const A* a, const B* b, size_t dimensions) {
  double sum = 0;
  for (size_t dim = 0; dim < dimensions; ++dim) {
    const double diff = static_cast<double>(a[dim]) - static_cast<double>(b[dim]);
    sum += diff * diff;
  }
  return sum;
}

template <typename T>
bool AllFinite(std::span<const T> values) {
  return std::all_of(values.begin(), values.end(), [](double v) { return std::isfinite(v); });
}

template <typename T>
Result<StableClusters> Stabilise(std::span<const T> points, std::span<const T> centroids,
                                 size_t dimensions, std::span<const int64_t> previous_segment_ids,
                                 const PreviousClusters& previous, const StabilityOptions& options,
                                 const Context& context) {
  if (dimensions == 0 || points.size() % dimensions != 0 || centroids.size() % dimensions != 0 ||
      previous.centroids.size() % dimensions != 0) {
    return Status::InvalidArgument("stability: points and centroids must be multiples of the " +
                                   std::to_string(dimensions) + " dimensions");
  }
  const size_t n = points.size() / dimensions;
  const size_t k = centroids.size() / dimensions;
  const size_t k_prev = previous.centroids.size() / dimensions;
  if (k == 0) return Status::InvalidArgument("stability: no centroids");
  if (previous.segment_ids.size() != k_prev || previous.names.size() != k_prev) {
    return Status::InvalidArgument("stability: previous build has " + std::to_string(k_prev) +
                                   " centroids but " + std::to_string(previous.segment_ids.size()) +
                                   " ids and " + std::to_string(previous.names.size()) + " names");
  }
  if (!previous_segment_ids.empty() && previous_segment_ids.size() != n) {
    return Status::InvalidArgument("stability: previous_segment_ids must have one entry per point");
  }
  if (!(options.hysteresis >= 0)) {
    return Status::InvalidArgument("stability: hysteresis must be >= 0");
  }
  if (!AllFinite(points) || !AllFinite(centroids) ||
      !AllFinite(std::span<const double>(previous.centroids))) {
    return Status::InvalidArgument("stability: points and centroids must be finite");
  }

  StableClusters result;
  const double kInf = std::numeric_limits<double>::infinity();
  // The threshold: given, or half the median nearest-other-centroid distance of the previous build.
  double threshold = options.max_match_distance;
  if (threshold <= 0) {
    threshold = kInf;
    if (k_prev >= 2) {
      std::vector<double> nearest(k_prev, kInf);
      for (size_t a = 0; a < k_prev; ++a) {
        for (size_t b = 0; b < k_prev; ++b) {
          if (a == b) continue;
          nearest[a] =
              std::min(nearest[a],
                       std::sqrt(SquaredDistance(&previous.centroids[a * dimensions],
                                                 &previous.centroids[b * dimensions], dimensions)));
        }
      }
      std::sort(nearest.begin(), nearest.end());
      const double median = k_prev % 2 == 1 ? nearest[k_prev / 2]
                                            : 0.5 * (nearest[k_prev / 2 - 1] + nearest[k_prev / 2]);
      threshold = 0.5 * median;
    }
  }
  result.max_match_distance = threshold;

  // Match new centroids (rows) to previous ones on a square matrix padded with "unmatched" columns
  // and rows at cost T; real pairs cost min(d, T), so a pair farther than T never beats leaving
  // both unmatched.
  result.matched_previous.assign(k, -1);
  result.match_distance.assign(k, kInf);
  if (k_prev > 0) {
    std::vector<double> distance(k * k_prev);
    double largest = 0;
    for (size_t c = 0; c < k; ++c) {
      for (size_t p = 0; p < k_prev; ++p) {
        distance[c * k_prev + p] = std::sqrt(SquaredDistance(
            &centroids[c * dimensions], &previous.centroids[p * dimensions], dimensions));
        largest = std::max(largest, distance[c * k_prev + p]);
      }
    }
    const double cap = std::isinf(threshold) ? largest + 1 : threshold;
    const size_t size = std::max(k, k_prev);
    std::vector<double> cost(size * size, cap);
    for (size_t c = 0; c < k; ++c) {
      for (size_t p = 0; p < k_prev; ++p) {
        cost[c * size + p] = std::min(distance[c * k_prev + p], cap);
      }
    }
    std::vector<int32_t> assignment = SolveAssignment(cost, size, size);
    for (size_t c = 0; c < k; ++c) {
      const auto p = static_cast<size_t>(assignment[c]);
      if (p < k_prev && distance[c * k_prev + p] <= threshold) {
        result.matched_previous[c] = static_cast<int32_t>(p);
        result.match_distance[c] = distance[c * k_prev + p];
      }
    }
  }
  int64_t next_id = previous.next_segment_id;
  for (size_t p = 0; p < k_prev; ++p) next_id = std::max(next_id, previous.segment_ids[p] + 1);
  result.segment_ids.resize(k);
  result.names.resize(k);
  for (size_t c = 0; c < k; ++c) {
    const int32_t p = result.matched_previous[c];
    if (p >= 0) {
      result.segment_ids[c] = previous.segment_ids[p];
      result.names[c] = previous.names[p];
    } else {
      result.segment_ids[c] = next_id++;
    }
  }
  result.next_segment_id = next_id;

  // Surviving previous segment ids -> new centroid index, sorted for binary search in the loop.
  std::vector<std::pair<int64_t, int32_t>> surviving;
  for (size_t c = 0; c < k; ++c) {
    if (result.matched_previous[c] >= 0) {
      surviving.emplace_back(result.segment_ids[c], static_cast<int32_t>(c));
    }
  }
  std::sort(surviving.begin(), surviving.end());

  result.assignment.resize(n);
  result.customer_segment_ids.resize(n);
  result.kept_by_hysteresis.assign(n, 0);
  const double margin = 1 + options.hysteresis;
  ParallelFor(n, context.Threads(), [&](size_t begin, size_t end, int) {
    for (size_t idx = begin; idx < end; ++idx) {
      const T* point = &points[idx * dimensions];
      size_t nearest = 0;
      double nearest_sq = kInf;
      for (size_t c = 0; c < k; ++c) {
        const double sq = SquaredDistance(point, &centroids[c * dimensions], dimensions);
        if (sq < nearest_sq) {
          nearest_sq = sq;
          nearest = c;
        }
      }
      size_t chosen = nearest;
      if (!previous_segment_ids.empty() && previous_segment_ids[idx] >= 0) {
        auto it = std::lower_bound(surviving.begin(), surviving.end(),
                                   std::make_pair(previous_segment_ids[idx], int32_t{-1}));
        if (it != surviving.end() && it->first == previous_segment_ids[idx]) {
          const auto kept = static_cast<size_t>(it->second);
          if (kept != nearest) {
            const double d_prev =
                std::sqrt(SquaredDistance(point, &centroids[kept * dimensions], dimensions));
            if (d_prev <= margin * std::sqrt(nearest_sq)) {
              chosen = kept;
              result.kept_by_hysteresis[idx] = 1;
            }
          }
        }
      }
      result.assignment[idx] = static_cast<int32_t>(chosen);
      result.customer_segment_ids[idx] = result.segment_ids[chosen];
    }
  });

  std::vector<int64_t> from(n, -1);
  for (size_t idx = 0; idx < n; ++idx) {
    if (!previous_segment_ids.empty())
      from[idx] = previous_segment_ids[idx] < 0 ? -1 : previous_segment_ids[idx];
    if (from[idx] >= 0 && from[idx] != result.customer_segment_ids[idx]) ++result.moved;
  }
  result.transitions = CountTransitions(from, result.customer_segment_ids);
  return result;
}

}  // namespace

Result<StableClusters> StabiliseClusters(std::span<const double> points,
                                         std::span<const double> centroids, size_t dimensions,
                                         std::span<const int64_t> previous_segment_ids,
                                         const PreviousClusters& previous,
                                         const StabilityOptions& options, const Context& context) {
  return Stabilise<double>(points, centroids, dimensions, previous_segment_ids, previous, options,
                           context);
}

Result<StableClusters> StabiliseClusters(std::span<const float> points,
                                         std::span<const float> centroids, size_t dimensions,
                                         std::span<const int64_t> previous_segment_ids,
                                         const PreviousClusters& previous,
                                         const StabilityOptions& options, const Context& context) {
  return Stabilise<float>(points, centroids, dimensions, previous_segment_ids, previous, options,
                          context);
}

}  // namespace shoal::segment
