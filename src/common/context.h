// Context: the threads, seed and clock a computation may use, passed explicitly (STYLE habit 7)
// so tests are deterministic and nothing reads globals.
#pragma once

#include <cstdint>
#include <functional>

namespace shoal {

// Microseconds since the Unix epoch, UTC. The one time type of the engine.
using TimeMicros = int64_t;

struct Context {
  // Worker threads for parallel loops; 0 = hardware concurrency.
  int threads = 0;
  // Seed for every random choice (k-means++ seeding, sampling, generators).
  uint64_t seed = 42;
  // The engine's "now"; unset = the wall clock. Tests and as-of computations fix it.
  std::function<TimeMicros()> clock;

  // Effective worker count (>= 1).
  int Threads() const;
  // Now, from `clock` or the wall clock.
  TimeMicros Now() const;
};

}  // namespace shoal
