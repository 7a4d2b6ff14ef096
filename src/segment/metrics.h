// Clustering agreement metrics.
#pragma once

#include <cstdint>
#include <span>

namespace shoal {

// Adjusted Rand index (Hubert & Arabie 1985) between two labelings of the same points; label
// values are arbitrary integers (only equality matters). 1 for identical partitions (also when
// both put everything in one cluster or every point alone), about 0 for independent ones, can be
// negative. Precondition (assertion): equal lengths. Empty input scores 1.
double AdjustedRandIndex(std::span<const int32_t> a, std::span<const int32_t> b);

}  // namespace shoal
