#include "segment/metrics.h"

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <unordered_map>
#include <utility>
#include <vector>

namespace shoal {
namespace {

double PairsOf(double count) { return count * (count - 1) / 2; }

// Maps arbitrary label values to 0..m-1 in order of first appearance.
std::vector<uint32_t> Densify(std::span<const int32_t> labels, size_t* distinct) {
  std::unordered_map<int32_t, uint32_t> ids;
  std::vector<uint32_t> dense(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) {
    auto [it, inserted] = ids.emplace(labels[i], static_cast<uint32_t>(ids.size()));
    dense[i] = it->second;
  }
  *distinct = ids.size();
  return dense;
}

}  // namespace

double AdjustedRandIndex(std::span<const int32_t> a, std::span<const int32_t> b) {
  assert(a.size() == b.size());
  const size_t n = a.size();
  size_t classes_a = 0, classes_b = 0;
  std::vector<uint32_t> dense_a = Densify(a, &classes_a);
  std::vector<uint32_t> dense_b = Densify(b, &classes_b);
  // Identical trivial partitions carry no chance correction (scikit-learn's convention).
  if (n == 0 || (classes_a == classes_b && (classes_a == 1 || classes_a == n))) return 1.0;

  std::vector<double> row(classes_a, 0.0), column(classes_b, 0.0);
  std::unordered_map<uint64_t, double> cells;
  cells.reserve(std::min(n, classes_a * classes_b));
  for (size_t i = 0; i < n; ++i) {
    row[dense_a[i]] += 1;
    column[dense_b[i]] += 1;
    cells[(static_cast<uint64_t>(dense_a[i]) << 32) | dense_b[i]] += 1;
  }
  double index = 0, sum_rows = 0, sum_columns = 0;
  for (const auto& [cell, count] : cells) index += PairsOf(count);
  for (double count : row) sum_rows += PairsOf(count);
  for (double count : column) sum_columns += PairsOf(count);
  const double expected = sum_rows * sum_columns / PairsOf(static_cast<double>(n));
  const double maximum = 0.5 * (sum_rows + sum_columns);
  if (maximum == expected) return 1.0;  // e.g. one side all singletons, the other one cluster
  return (index - expected) / (maximum - expected);
}

}  // namespace shoal
