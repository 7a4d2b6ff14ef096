// RFM segmentation: recency, frequency and monetary scores 1..B from tie-aware quantile cut points
// (or user-fixed cut points) and named segments from an R x FM grid. docs/segments.md is the prose
// contract: the scoring method, the default segment table and the TOML keys.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/context.h"
#include "common/status.h"

namespace shoal::segment {

// An inclusive score range [lo, hi]; the default {0, 255} matches any score.
struct ScoreRange {
  int lo = 0;
  int hi = 255;
  bool Contains(int score) const { return score >= lo && score <= hi; }
};

// One row of the segment table. A customer matches when every range holds; the FM score is
// (F + M + 1) / 2 in integer arithmetic (the mean of F and M rounded half up).
struct RfmSegmentRule {
  std::string name;
  ScoreRange r;
  ScoreRange f;
  ScoreRange m;
  ScoreRange fm;
};

struct RfmOptions {
  // Number of score levels B per dimension: 3, 4 or 5.
  int bins = 5;
  // Fixed cut points per dimension: exactly bins - 1 strictly ascending values. Empty = derive
  // them from the data (tie-aware quantiles). Score = 1 + #(cuts below the value) for frequency
  // and monetary; recency is reversed (value <= cuts[0] days scores B).
  std::vector<double> recency_cuts;
  std::vector<double> frequency_cuts;
  std::vector<double> monetary_cuts;
  // The segment table, first match wins. Empty = DefaultRfmSegments() (defined on the 1..5 scale;
  // with bins 3 or 4 scores are rescaled to 1..5 before that table is matched).
  std::vector<RfmSegmentRule> segments;
};

// The built-in 11-segment table on the 1..5 scale (Champions ... Lost); covers all 25 R x FM cells.
const std::vector<RfmSegmentRule>& DefaultRfmSegments();

// Names given outside the table.
inline constexpr std::string_view kNoOrdersSegment = "No Orders";
inline constexpr std::string_view kUnscoredSegment = "Unscored";
inline constexpr std::string_view kOtherSegment = "Other";

struct RfmResult {
  int bins = 5;
  // Per customer, scores 1..bins; 0 for customers without orders (frequency NaN or <= 0) and for a
  // NaN recency / monetary value of a customer with orders.
  std::vector<uint8_t> r, f, m;
  // Per customer, an index into segment_names.
  std::vector<int32_t> segment;
  // The table's names, then "No Orders", "Unscored" and "Other" (no rule matched).
  std::vector<std::string> segment_names;
  // The cut points used (bins - 1 each, ascending), derived or fixed. A derived dimension may have
  // fewer cuts than bins - 1 when the data has fewer than `bins` distinct values.
  std::vector<double> recency_cuts, frequency_cuts, monetary_cuts;
};

// Tie-aware equal-count cut points over the defined (non-NaN) values: every distinct value lands
// in exactly one bin and, when there are at least `bins` distinct values, every bin is non-empty.
// Returns bins - 1 ascending thresholds t (value <= t_k goes to bin <= k), or fewer thresholds when
// there are fewer distinct values (then each distinct value is its own bin). O(n log n).
std::vector<double> TieAwareQuantileCuts(std::span<const double> values, int bins);

// Score 1..bins of `value` given ascending cuts. With a full set of bins - 1 cuts this is
// 1 + #(cuts < value). With c < bins - 1 cuts (few distinct values) the c + 1 levels are spread
// over 1..bins: level j scores 1 + round(j * (bins - 1) / c); a single level scores (bins + 1) / 2.
int ScoreFromCuts(double value, std::span<const double> cuts, int bins);

// One customer's R, F, M scores and segment index (ComputeRfm's rule for one row, given its cut
// points and bins): a customer without orders (frequency NaN or <= 0) scores 0/0/0 in segment
// table.size() ("No Orders"); a NaN recency or monetary value gives table.size() + 1
// ("Unscored"); otherwise the first rule of `table` that holds (scores rescaled to 1..5 first when
// `default_table`), or table.size() + 2 ("Other").
struct RfmRowScore {
  uint8_t r = 0, f = 0, m = 0;
  int32_t segment = 0;
};
RfmRowScore ScoreRfmRow(double recency_days, double frequency, double monetary, int bins,
                        std::span<const double> recency_cuts, std::span<const double> frequency_cuts,
                        std::span<const double> monetary_cuts, std::span<const RfmSegmentRule> table,
                        bool default_table);

// Scores every customer and names its segment. Columns are aligned per customer: recency in days
// since the last order, frequency = number of orders, monetary = total spend. Validates options
// (bins, cut counts and order, segment ranges) once; InvalidArgument on bad options or mismatched
// column lengths. Thread-safe; uses context.Threads() for the scoring pass.
Result<RfmResult> ComputeRfm(std::span<const double> recency_days,
                             std::span<const double> frequency, std::span<const double> monetary,
                             const RfmOptions& options, const Context& context);

// Reads the [rfm] table of a TOML document: bins, recency_cuts, frequency_cuts, monetary_cuts and
// [[rfm.segments]] entries {name, r, f, m, fm} where each range is [lo, hi] or a single integer.
// A document without [rfm] yields the defaults. ParseError names the key on a malformed value.
Result<RfmOptions> ParseRfmOptions(std::string_view toml_text);

}  // namespace shoal::segment
