#include "predict/btyd_data.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <thread>

namespace shoal {
namespace {

bool RowLess(const RfmSummaryRow& lhs, const RfmSummaryRow& rhs) {
  if (lhs.x != rhs.x) return lhs.x < rhs.x;
  if (lhs.t_x != rhs.t_x) return lhs.t_x < rhs.t_x;
  if (lhs.T != rhs.T) return lhs.T < rhs.T;
  return lhs.mean_value < rhs.mean_value;
}

bool SameKey(const RfmSummaryRow& lhs, const RfmSummaryRow& rhs) {
  return lhs.x == rhs.x && lhs.t_x == rhs.t_x && lhs.T == rhs.T &&
         lhs.mean_value == rhs.mean_value;
}

// Empty string when the row is valid, else the reason.
std::string RowProblem(const RfmSummaryRow& row) {
  if (!std::isfinite(row.x) || !std::isfinite(row.t_x) || !std::isfinite(row.T) ||
      !std::isfinite(row.weight) || !std::isfinite(row.mean_value)) {
    return "non-finite value";
  }
  if (row.x < 0 || row.x != std::floor(row.x)) return "x must be a non-negative integer";
  if (row.T <= 0) return "T must be > 0";
  if (row.t_x < 0 || row.t_x > row.T) return "t_x must satisfy 0 <= t_x <= T";
  if (row.weight <= 0) return "weight must be > 0";
  return "";
}

}  // namespace

Status ValidateRfmRows(const CompressedRfm& data) {
  size_t bad = 0;
  std::string first;
  for (size_t row_idx = 0; row_idx < data.rows.size(); ++row_idx) {
    std::string problem = RowProblem(data.rows[row_idx]);
    if (problem.empty()) continue;
    if (bad == 0) {
      const RfmSummaryRow& row = data.rows[row_idx];
      first = "row " + std::to_string(row_idx) + " (x=" + std::to_string(row.x) +
              ", t_x=" + std::to_string(row.t_x) + ", T=" + std::to_string(row.T) +
              ", weight=" + std::to_string(row.weight) + "): " + problem;
    }
    ++bad;
  }
  if (bad > 0) {
    return Status::InvalidArgument(std::to_string(bad) + " invalid RFM summary row(s); first: " +
                                   first);
  }
  if (data.rows.empty()) return Status::InvalidArgument("no customers in the RFM summary");
  return Status::OK();
}

Result<CompressedRfm> CompressRfm(std::span<const double> x, std::span<const double> t_x,
                                  std::span<const double> T, std::span<const double> mean_value,
                                  const Context& ctx) {
  const size_t n = x.size();
  if (t_x.size() != n || T.size() != n || (!mean_value.empty() && mean_value.size() != n)) {
    return Status::InvalidArgument("CompressRfm: x, t_x, T (and mean_value if given) must have "
                                   "the same length; got " + std::to_string(n) + ", " +
                                   std::to_string(t_x.size()) + ", " + std::to_string(T.size()) +
                                   ", " + std::to_string(mean_value.size()));
  }
  std::vector<RfmSummaryRow> rows(n);
  for (size_t customer_idx = 0; customer_idx < n; ++customer_idx) {
    rows[customer_idx] = RfmSummaryRow{x[customer_idx], t_x[customer_idx], T[customer_idx], 1.0,
                                       mean_value.empty() ? 0.0 : mean_value[customer_idx]};
  }
  CompressedRfm raw{std::move(rows), static_cast<double>(n)};
  SHOAL_RETURN_IF_ERROR(ValidateRfmRows(raw));
  // Sort (two halves in parallel, then merge): the sorted order is a total order on the key
  // and equal keys are identical rows, so the result does not depend on the thread count.
  auto& all = raw.rows;
  if (ctx.Threads() > 1 && n > 200000) {
    const auto middle = all.begin() + static_cast<std::ptrdiff_t>(n / 2);
    std::thread first_half([&] { std::sort(all.begin(), middle, RowLess); });
    std::sort(middle, all.end(), RowLess);
    first_half.join();
    std::inplace_merge(all.begin(), middle, all.end(), RowLess);
  } else {
    std::sort(all.begin(), all.end(), RowLess);
  }
  CompressedRfm out;
  out.total_weight = static_cast<double>(n);
  out.rows.reserve(std::min<size_t>(n, 1 << 20));
  for (const RfmSummaryRow& row : all) {
    if (!out.rows.empty() && SameKey(out.rows.back(), row)) {
      out.rows.back().weight += 1;
    } else {
      out.rows.push_back(row);
    }
  }
  out.rows.shrink_to_fit();
  return out;
}

}  // namespace shoal
