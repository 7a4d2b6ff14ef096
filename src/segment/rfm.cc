#include "segment/rfm.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "common/parallel.h"

namespace shoal::segment {

const std::vector<RfmSegmentRule>& DefaultRfmSegments() {
  // R on 1..5 (5 = most recent) against FM = round-half-up mean of F and M. First match wins; the
  // table covers every one of the 25 cells (rfm_test checks it).
  static const std::vector<RfmSegmentRule> kTable = {
      {"Champions", {4, 5}, {}, {}, {4, 5}},      {"Can't Lose Them", {1, 1}, {}, {}, {4, 5}},
      {"At Risk", {1, 2}, {}, {}, {3, 5}},        {"Need Attention", {3, 3}, {}, {}, {3, 3}},
      {"Loyal", {3, 5}, {}, {}, {3, 5}},          {"New", {5, 5}, {}, {}, {1, 1}},
      {"Promising", {4, 4}, {}, {}, {1, 1}},      {"Potential Loyalist", {4, 5}, {}, {}, {2, 2}},
      {"About to Sleep", {3, 3}, {}, {}, {1, 2}}, {"Lost", {1, 1}, {}, {}, {1, 1}},
      {"Hibernating", {1, 2}, {}, {}, {1, 2}},
  };
  return kTable;
}

std::vector<double> TieAwareQuantileCuts(std::span<const double> values, int bins) {
  std::vector<double> sorted;
  sorted.reserve(values.size());
  for (double v : values)
    if (!std::isnan(v)) sorted.push_back(v);
  std::sort(sorted.begin(), sorted.end());
  // Distinct values and the count of values <= each of them.
  std::vector<double> distinct;
  std::vector<size_t> cumulative;
  for (size_t idx = 0; idx < sorted.size(); ++idx) {
    if (distinct.empty() || sorted[idx] != distinct.back()) {
      distinct.push_back(sorted[idx]);
      cumulative.push_back(0);
    }
    cumulative.back() = idx + 1;
  }
  std::vector<double> cuts;
  const size_t distinct_count = distinct.size();
  if (distinct_count == 0) return cuts;
  if (distinct_count <= static_cast<size_t>(bins)) {
    // Each distinct value is its own level.
    cuts.assign(distinct.begin(), distinct.end() - 1);
    return cuts;
  }
  // Greedy left to right: cut k goes to the gap whose cumulative count is nearest to k * n / bins,
  // after the previous cut and leaving one distinct value for each later bin.
  const double n = static_cast<double>(sorted.size());
  size_t first_allowed = 0;  // gap g lies after distinct[g]; gaps are 0 .. distinct_count - 2
  for (int cut_idx = 1; cut_idx < bins; ++cut_idx) {
    const size_t last_allowed = distinct_count - 1 - static_cast<size_t>(bins - cut_idx);
    const double target = n * cut_idx / bins;
    auto begin = cumulative.begin() + static_cast<std::ptrdiff_t>(first_allowed);
    auto end = cumulative.begin() + static_cast<std::ptrdiff_t>(last_allowed) + 1;
    auto it = std::lower_bound(begin, end, target,
                               [](size_t c, double t) { return static_cast<double>(c) < t; });
    size_t gap = it == end ? last_allowed : static_cast<size_t>(it - cumulative.begin());
    if (gap > first_allowed && std::abs(static_cast<double>(cumulative[gap - 1]) - target) <=
                                   std::abs(static_cast<double>(cumulative[gap]) - target)) {
      --gap;
    }
    cuts.push_back(distinct[gap]);
    first_allowed = gap + 1;
  }
  return cuts;
}

int ScoreFromCuts(double value, std::span<const double> cuts, int bins) {
  const int levels = static_cast<int>(cuts.size());
  const int level =
      static_cast<int>(std::lower_bound(cuts.begin(), cuts.end(), value) - cuts.begin());
  if (levels >= bins - 1) return level + 1;
  if (levels == 0) return (bins + 1) / 2;
  return 1 + static_cast<int>(std::lround(static_cast<double>(level) * (bins - 1) / levels));
}

namespace {

Status ValidateCuts(const std::vector<double>& cuts, int bins, std::string_view dimension) {
  if (cuts.empty()) return Status::OK();
  if (static_cast<int>(cuts.size()) != bins - 1) {
    return Status::InvalidArgument(
        "rfm: " + std::string(dimension) + "_cuts needs " + std::to_string(bins - 1) +
        " values for " + std::to_string(bins) + " bins, got " + std::to_string(cuts.size()));
  }
  for (size_t idx = 0; idx < cuts.size(); ++idx) {
    if (!std::isfinite(cuts[idx]) || (idx > 0 && cuts[idx] <= cuts[idx - 1])) {
      return Status::InvalidArgument("rfm: " + std::string(dimension) +
                                     "_cuts must be finite and strictly ascending");
    }
  }
  return Status::OK();
}

int RescaleToFive(int score, int bins) {
  if (bins == 5 || score == 0) return score;
  return 1 + static_cast<int>(std::lround(static_cast<double>(score - 1) * 4.0 / (bins - 1)));
}

}  // namespace

RfmRowScore ScoreRfmRow(double recency_days, double frequency, double monetary, int bins,
                        std::span<const double> recency_cuts, std::span<const double> frequency_cuts,
                        std::span<const double> monetary_cuts, std::span<const RfmSegmentRule> table,
                        bool default_table) {
  const auto no_orders_idx = static_cast<int32_t>(table.size());
  RfmRowScore out;
  if (std::isnan(frequency) || !(frequency > 0)) {
    out.segment = no_orders_idx;
    return out;
  }
  const int f_score = ScoreFromCuts(frequency, frequency_cuts, bins);
  const int r_score =
      std::isnan(recency_days) ? 0 : bins + 1 - ScoreFromCuts(recency_days, recency_cuts, bins);
  const int m_score = std::isnan(monetary) ? 0 : ScoreFromCuts(monetary, monetary_cuts, bins);
  out.r = static_cast<uint8_t>(r_score);
  out.f = static_cast<uint8_t>(f_score);
  out.m = static_cast<uint8_t>(m_score);
  if (r_score == 0 || m_score == 0) {
    out.segment = no_orders_idx + 1;
    return out;
  }
  int r = r_score, f = f_score, m = m_score;
  if (default_table) {
    r = RescaleToFive(r, bins);
    f = RescaleToFive(f, bins);
    m = RescaleToFive(m, bins);
  }
  const int fm = (f + m + 1) / 2;
  out.segment = no_orders_idx + 2;
  for (size_t rule_idx = 0; rule_idx < table.size(); ++rule_idx) {
    const RfmSegmentRule& rule = table[rule_idx];
    if (rule.r.Contains(r) && rule.f.Contains(f) && rule.m.Contains(m) && rule.fm.Contains(fm)) {
      out.segment = static_cast<int32_t>(rule_idx);
      break;
    }
  }
  return out;
}

Result<RfmResult> ComputeRfm(std::span<const double> recency_days,
                             std::span<const double> frequency, std::span<const double> monetary,
                             const RfmOptions& options, const Context& context) {
  const int bins = options.bins;
  if (bins < 3 || bins > 5) {
    return Status::InvalidArgument("rfm: bins must be 3, 4 or 5, got " + std::to_string(bins));
  }
  const size_t n = frequency.size();
  if (recency_days.size() != n || monetary.size() != n) {
    return Status::InvalidArgument("rfm: recency, frequency and monetary columns differ in length");
  }
  SHOAL_RETURN_IF_ERROR(ValidateCuts(options.recency_cuts, bins, "recency"));
  SHOAL_RETURN_IF_ERROR(ValidateCuts(options.frequency_cuts, bins, "frequency"));
  SHOAL_RETURN_IF_ERROR(ValidateCuts(options.monetary_cuts, bins, "monetary"));
  const bool default_table = options.segments.empty();
  const std::vector<RfmSegmentRule>& table =
      default_table ? DefaultRfmSegments() : options.segments;
  for (const RfmSegmentRule& rule : table) {
    if (rule.name.empty()) return Status::InvalidArgument("rfm: a segment has an empty name");
    for (const ScoreRange* range : {&rule.r, &rule.f, &rule.m, &rule.fm}) {
      if (range->lo > range->hi) {
        return Status::InvalidArgument("rfm: segment '" + rule.name + "' has a range with lo > hi");
      }
    }
  }

  RfmResult result;
  result.bins = bins;
  auto has_orders = [&](size_t idx) { return !std::isnan(frequency[idx]) && frequency[idx] > 0; };
  // Cut points come from customers with orders only: the no-order mass would otherwise skew them.
  auto derive = [&](std::span<const double> column, const std::vector<double>& fixed) {
    if (!fixed.empty()) return fixed;
    std::vector<double> with_orders;
    with_orders.reserve(n);
    for (size_t idx = 0; idx < n; ++idx)
      if (has_orders(idx)) with_orders.push_back(column[idx]);
    return TieAwareQuantileCuts(with_orders, bins);
  };
  // The three dimensions are independent: one task each (each writes only its own cuts).
  ParallelFor(
      3, context.Threads(),
      [&](size_t begin, size_t end, int) {
        for (size_t dimension = begin; dimension < end; ++dimension) {
          if (dimension == 0) result.recency_cuts = derive(recency_days, options.recency_cuts);
          if (dimension == 1) result.frequency_cuts = derive(frequency, options.frequency_cuts);
          if (dimension == 2) result.monetary_cuts = derive(monetary, options.monetary_cuts);
        }
      },
      1);

  for (const RfmSegmentRule& rule : table) result.segment_names.push_back(rule.name);
  result.segment_names.emplace_back(kNoOrdersSegment);  // index table.size(), as ScoreRfmRow
  result.segment_names.emplace_back(kUnscoredSegment);
  result.segment_names.emplace_back(kOtherSegment);

  result.r.resize(n);
  result.f.resize(n);
  result.m.resize(n);
  result.segment.resize(n);
  ParallelFor(n, context.Threads(), [&](size_t begin, size_t end, int) {
    for (size_t idx = begin; idx < end; ++idx) {
      const RfmRowScore row =
          ScoreRfmRow(recency_days[idx], frequency[idx], monetary[idx], bins, result.recency_cuts,
                      result.frequency_cuts, result.monetary_cuts, table, default_table);
      result.r[idx] = row.r;
      result.f[idx] = row.f;
      result.m[idx] = row.m;
      result.segment[idx] = row.segment;
    }
  });
  return result;
}

namespace {

Result<std::vector<double>> ReadNumberArray(const toml::table& rfm, std::string_view key) {
  std::vector<double> out;
  const toml::node* node = rfm.get(key);
  if (node == nullptr) return out;
  const toml::array* array = node->as_array();
  if (array == nullptr) {
    return Status::ParseError("[rfm] " + std::string(key) + " must be an array of numbers");
  }
  for (const toml::node& element : *array) {
    std::optional<double> value = element.value<double>();
    if (!value) {
      return Status::ParseError("[rfm] " + std::string(key) + " must be an array of numbers");
    }
    out.push_back(*value);
  }
  return out;
}

Result<ScoreRange> ReadRange(const toml::table& segment, std::string_view key,
                             const std::string& name) {
  ScoreRange range;
  const toml::node* node = segment.get(key);
  if (node == nullptr) return range;
  if (std::optional<int64_t> single = node->value<int64_t>()) {
    range.lo = range.hi = static_cast<int>(*single);
    return range;
  }
  const toml::array* array = node->as_array();
  std::optional<int64_t> lo, hi;
  if (array != nullptr && array->size() == 2) {
    lo = (*array)[0].value<int64_t>();
    hi = (*array)[1].value<int64_t>();
  }
  if (!lo || !hi || *lo > *hi || *lo < 0 || *hi > 255) {
    return Status::ParseError("[[rfm.segments]] '" + name + "': " + std::string(key) +
                              " must be an integer or [lo, hi] with 0 <= lo <= hi");
  }
  range.lo = static_cast<int>(*lo);
  range.hi = static_cast<int>(*hi);
  return range;
}

}  // namespace

Result<RfmOptions> ParseRfmOptions(std::string_view toml_text) {
  toml::table document;
  try {
    document = toml::parse(toml_text);
  } catch (const toml::parse_error& error) {
    return Status::ParseError("TOML " + std::to_string(error.source().begin.line) + ":" +
                              std::to_string(error.source().begin.column) + ": " +
                              std::string(error.description()));
  }
  RfmOptions options;
  const toml::table* rfm = document["rfm"].as_table();
  if (rfm == nullptr) return options;
  if (const toml::node* bins = rfm->get("bins")) {
    std::optional<int64_t> value = bins->value<int64_t>();
    if (!value || *value < 3 || *value > 5) {
      return Status::ParseError("[rfm] bins must be 3, 4 or 5");
    }
    options.bins = static_cast<int>(*value);
  }
  SHOAL_ASSIGN_OR_RETURN(options.recency_cuts, ReadNumberArray(*rfm, "recency_cuts"));
  SHOAL_ASSIGN_OR_RETURN(options.frequency_cuts, ReadNumberArray(*rfm, "frequency_cuts"));
  SHOAL_ASSIGN_OR_RETURN(options.monetary_cuts, ReadNumberArray(*rfm, "monetary_cuts"));
  if (const toml::node* segments = rfm->get("segments")) {
    const toml::array* array = segments->as_array();
    if (array == nullptr)
      return Status::ParseError("[rfm] segments must be [[rfm.segments]] tables");
    for (const toml::node& element : *array) {
      const toml::table* segment = element.as_table();
      if (segment == nullptr) {
        return Status::ParseError("[rfm] segments must be [[rfm.segments]] tables");
      }
      RfmSegmentRule rule;
      std::optional<std::string> name = (*segment)["name"].value<std::string>();
      if (!name || name->empty()) {
        return Status::ParseError("[[rfm.segments]] entry without a name");
      }
      rule.name = *name;
      SHOAL_ASSIGN_OR_RETURN(rule.r, ReadRange(*segment, "r", rule.name));
      SHOAL_ASSIGN_OR_RETURN(rule.f, ReadRange(*segment, "f", rule.name));
      SHOAL_ASSIGN_OR_RETURN(rule.m, ReadRange(*segment, "m", rule.name));
      SHOAL_ASSIGN_OR_RETURN(rule.fm, ReadRange(*segment, "fm", rule.name));
      options.segments.push_back(std::move(rule));
    }
  }
  return options;
}

}  // namespace shoal::segment
