// The build stage (`shoal build`): from the profiles' traits to RFM segments, behavioural
// clusters with generated names, rule audiences, BTYD predictions and cross-sell
// recommendations; persisted in the workspace so exports, `shoal segments`, `shoal models`,
// `shoal explain` and the server read them.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/engine.h"
#include "segment/rfm.h"

namespace shoal {

// Per-run overrides of the workspace config (docs/segments.md, docs/predictions.md).
struct BuildOptions {
  std::optional<TimeMicros> as_of;            // traits as of; default Engine::DefaultAsOf()
  std::optional<int64_t> calibration_end_day; // last UTC day (days since epoch) of the BTYD
                                              // calibration period; default: the day before as_of
  std::string time_unit;                      // "day" or "week"; "" = config, else "week"
  int k = -1;                                 // clusters; -1 = config ([segments] k, 0 = automatic)
  bool quiet = false;                         // no progress lines on stderr
};

// One behavioural segment of a build.
struct SegmentInfo {
  int64_t id = 0;
  std::string name;
  int64_t size = 0;
  double share_customers = 0, share_revenue = 0;
  std::vector<std::string> reasons;                          // why the name
  std::vector<std::pair<std::string, double>> key_traits;    // most distinguishing traits: robust z
  std::vector<std::pair<std::string, double>> trait_means;   // mean of each clustering trait
  std::vector<std::string> cross_sell;                       // over-indexed items (lift)
  std::vector<std::string> cross_sell_rules;                 // best rules within its baskets
};

// What a build computed, aligned by row with `profiles`.
struct BuildResult {
  std::vector<uint32_t> profiles;
  std::vector<std::string> customer_ids;
  segment::RfmResult rfm;
  std::vector<int64_t> segment_id;              // -1 for customers not clustered
  std::vector<SegmentInfo> segments;
  std::vector<std::string> audience_names;
  std::vector<std::vector<uint32_t>> audiences; // per row: audience indices it belongs to
  std::vector<double> p_alive, expected_orders_90d, expected_order_value, clv, next_order_time;
  // Propensities (engine/propensity_stage.h); NaN when the model was skipped or the row is
  // outside its population.
  std::vector<double> p_purchase_30d, p_churn_90d, p_upgrade, p_referral;
  std::vector<std::string> recommendations;     // per row: "item;item;item"
  std::string segments_json;                    // the segments report (also stored)
  std::string models_json;                      // parameters, diagnostics (also stored)
  std::string propensity_report;                // the propensity evaluation, readable (also stored)
  std::string affinity_summary;                 // one line for the CLI
  int64_t moved = 0;                            // customers whose segment id changed
  double seconds = 0;
};

// Runs every stage and stores the result in the workspace (column family `models`).
Result<BuildResult> RunBuild(Engine& engine, const BuildOptions& options);

// The stored result of the last build (per profile), or NotFound before the first build.
Result<BuildResult> LoadBuild(const Engine& engine);

// `shoal explain`: why a customer is in each of their segments -- RFM scores, the distance to
// every centroid of the last build (nearest first), and for each audience the clauses that held.
// NotFound for an unknown identifier; FailedPrecondition when the profile is newer than the build.
Result<std::string> ExplainProfile(const Engine& engine, std::string_view identifier);

// `shoal affinities`: association rules over the stored order baskets.
struct AffinityOptions {
  std::string level = "category";  // "category" or "product"
  double min_support = 0.01;       // fraction of baskets (count >= ceil(s * baskets)), or a count if >= 1
  double min_confidence = 0.5;     // rules below are dropped
  size_t top = 20;                 // rules printed, by lift (0 = all)
  bool json = false;               // one JSON object per rule and line
};
Result<std::string> AffinityReport(const Engine& engine, const AffinityOptions& options);

// Extra export columns from a build, in this order (docs/cli.md).
const std::vector<std::string>& BuildExportColumns();
// Appends the build's cells for `row` (comma-separated, leading comma) to *line.
void AppendBuildCells(const BuildResult& build, size_t row, std::string* line);

}  // namespace shoal
