// Prometheus counters and latency histograms of the server, lock-free (atomics), rendered in
// the text exposition format by GET /metrics.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace shoal {

// The routes the server counts separately.
enum class Route : int {
  kEvents, kProfile, kSegments, kMembers, kAudienceMembers, kExport, kForget, kRebuild,
  kHealth, kMetrics, kOpenApi, kOther, kNumRoutes
};
const char* RouteName(Route route);

// Cumulative latency buckets, Prometheus style.
class LatencyHistogram {
 public:
  static constexpr std::array<double, 15> kBounds = {0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.0025,
                                                     0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                     1, 5};
  void Observe(double seconds);
  // Appends `name_bucket{labels,le=..}` lines, _sum and _count (labels may be empty).
  void Render(std::string* out, const std::string& name, const std::string& labels) const;

 private:
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets_{};
  std::atomic<uint64_t> sum_micros_{0};
  std::atomic<uint64_t> count_{0};
};

struct ServerMetrics {
  // requests[route][0..2]: 2xx, 4xx, 5xx responses.
  std::array<std::array<std::atomic<uint64_t>, 3>, static_cast<size_t>(Route::kNumRoutes)> requests{};
  std::array<LatencyHistogram, static_cast<size_t>(Route::kNumRoutes)> latency;
  std::atomic<uint64_t> events_accepted{0}, events_rejected{0}, events_stored{0},
      events_duplicate{0}, group_commits{0}, membership_entered{0}, membership_exited{0},
      timer_evaluations{0}, consent_suppressed{0}, lookups_deferred{0};
  std::atomic<int64_t> writer_queue_depth{0}, timer_pending{0};
  LatencyHistogram engine_exclusive_hold;  // per exclusive hold of the engine lock
};

}  // namespace shoal
