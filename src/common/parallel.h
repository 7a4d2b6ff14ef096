// ParallelFor: split [0, n) into contiguous chunks, one per worker, each writing disjoint outputs
// (STYLE habit 8). The split depends only on n and the worker count, and callers merge partials
// in worker order, so results do not depend on scheduling.
#pragma once

#include <cstddef>
#include <functional>
#include <thread>
#include <vector>

namespace shoal {

// Calls fn(begin, end, worker_idx) for `workers` contiguous ranges covering [0, n). Runs inline
// when workers <= 1 or n is smaller than `min_per_worker`. fn must not throw.
inline void ParallelFor(size_t n, int workers, const std::function<void(size_t, size_t, int)>& fn,
                        size_t min_per_worker = 1024) {
  if (n == 0) return;
  size_t w = workers < 1 ? 1 : static_cast<size_t>(workers);
  if (w > 1 && n / w < min_per_worker) w = std::max<size_t>(1, n / min_per_worker);
  if (w <= 1) {
    fn(0, n, 0);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(w - 1);
  size_t chunk = (n + w - 1) / w;
  for (size_t t = 1; t < w; ++t) {
    size_t b = t * chunk, e = std::min(n, b + chunk);
    if (b >= e) break;
    pool.emplace_back([&fn, b, e, t] { fn(b, e, static_cast<int>(t)); });
  }
  fn(0, std::min(n, chunk), 0);
  for (auto& th : pool) th.join();
}

// Number of ranges ParallelFor will actually use for (n, workers, min_per_worker).
inline int ParallelWorkers(size_t n, int workers, size_t min_per_worker = 1024) {
  size_t w = workers < 1 ? 1 : static_cast<size_t>(workers);
  if (w > 1 && n / w < min_per_worker) w = std::max<size_t>(1, n / min_per_worker);
  return static_cast<int>(w);
}

}  // namespace shoal
