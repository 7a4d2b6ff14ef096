#include "common/parallel.h"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

namespace shoal {
namespace {

TEST(ParallelTest, CoversRangeOnceWithDisjointWorkers) {
  for (size_t n : {0UL, 1UL, 1000UL, 5000UL, 100001UL}) {
    std::vector<int> hits(n, 0);
    std::vector<size_t> per_worker(8, 0);
    ParallelFor(n, 4, [&](size_t b, size_t e, int w) {
      for (size_t i = b; i < e; ++i) hits[i]++;
      per_worker[w] = e - b;
    });
    for (int h : hits) ASSERT_EQ(h, 1);
    EXPECT_EQ(std::accumulate(per_worker.begin(), per_worker.end(), size_t{0}), n);
  }
  EXPECT_EQ(ParallelWorkers(100, 4), 1);
  EXPECT_EQ(ParallelWorkers(100000, 2), 2);
}

}  // namespace
}  // namespace shoal
