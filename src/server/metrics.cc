#include "server/metrics.h"

#include <cstdio>

namespace shoal {

const char* RouteName(Route route) {
  switch (route) {
    case Route::kEvents: return "events";
    case Route::kProfile: return "profile";
    case Route::kSegments: return "segments";
    case Route::kMembers: return "segment_members";
    case Route::kAudienceMembers: return "audience_members";
    case Route::kExport: return "audience_export";
    case Route::kForget: return "forget";
    case Route::kRebuild: return "rebuild";
    case Route::kHealth: return "healthz";
    case Route::kMetrics: return "metrics";
    case Route::kOpenApi: return "openapi";
    default: return "other";
  }
}

void LatencyHistogram::Observe(double seconds) {
  size_t b = 0;
  while (b < kBounds.size() && seconds > kBounds[b]) ++b;
  buckets_[b].fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(static_cast<uint64_t>(seconds * 1e6), std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

void LatencyHistogram::Render(std::string* out, const std::string& name,
                              const std::string& labels) const {
  uint64_t cumulative = 0;
  char line[256];
  // No labels: `name_bucket{le=..}` and a bare `name_sum`.
  const std::string bucket_labels = labels.empty() ? "" : labels + ",";
  const std::string other_labels = labels.empty() ? "" : "{" + labels + "}";
  for (size_t b = 0; b <= kBounds.size(); ++b) {
    cumulative += buckets_[b].load(std::memory_order_relaxed);
    if (b < kBounds.size()) {
      std::snprintf(line, sizeof line, "%s_bucket{%sle=\"%g\"} %llu\n", name.c_str(),
                    bucket_labels.c_str(), kBounds[b], static_cast<unsigned long long>(cumulative));
    } else {
      std::snprintf(line, sizeof line, "%s_bucket{%sle=\"+Inf\"} %llu\n", name.c_str(),
                    bucket_labels.c_str(), static_cast<unsigned long long>(cumulative));
    }
    out->append(line);
  }
  std::snprintf(line, sizeof line, "%s_sum%s %.6f\n%s_count%s %llu\n", name.c_str(),
                other_labels.c_str(), static_cast<double>(sum_micros_.load()) / 1e6, name.c_str(),
                other_labels.c_str(), static_cast<unsigned long long>(count_.load()));
  out->append(line);
}

}  // namespace shoal
