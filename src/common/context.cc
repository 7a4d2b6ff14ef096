#include "common/context.h"

#include <chrono>
#include <thread>

namespace shoal {

int Context::Threads() const {
  if (threads > 0) return threads;
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

TimeMicros Context::Now() const {
  if (clock) return clock();
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace shoal
