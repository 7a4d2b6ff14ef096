#include "predict/btyd_score.h"

#include <cmath>
#include <limits>
#include <string>

#include "common/parallel.h"

namespace shoal {
namespace {

Status CheckInput(std::span<const double> x, std::span<const double> t_x, std::span<const double> T,
                  std::span<const double> mean_value, const BtydScoreOptions& options) {
  const size_t n = x.size();
  if (t_x.size() != n || T.size() != n || (!mean_value.empty() && mean_value.size() != n)) {
    return Status::InvalidArgument(
        "BTYD scoring: x, t_x, T (and mean_value if given) differ in "
        "length");
  }
  if (!(options.horizon >= 0) || options.clv.periods < 0 || !(options.clv.period_length > 0) ||
      !(options.clv.discount_rate > -1) ||
      !(options.next_order_quantile > 0 && options.next_order_quantile < 1)) {
    return Status::InvalidArgument(
        "BTYD scoring: options out of range (horizon >= 0, periods "
        ">= 0, period_length > 0, discount_rate > -1, 0 < quantile "
        "< 1)");
  }
  for (size_t idx = 0; idx < n; ++idx) {
    const bool valid = x[idx] >= 0 && x[idx] == std::floor(x[idx]) && T[idx] > 0 &&
                       T[idx] < INFINITY && t_x[idx] >= 0 && t_x[idx] <= T[idx] &&
                       (mean_value.empty() || std::isfinite(mean_value[idx]));
    if (!valid) {
      return Status::InvalidArgument("BTYD scoring: customer " + std::to_string(idx) +
                                     " has an invalid history (x=" + std::to_string(x[idx]) +
                                     ", t_x=" + std::to_string(t_x[idx]) +
                                     ", T=" + std::to_string(T[idx]) + ")");
    }
  }
  return Status::OK();
}

template <typename ScoreOne>
BtydScores ScoreAll(size_t n, int threads, const ScoreOne& score_one) {
  BtydScores scores;
  scores.probability_alive.resize(n);
  scores.expected_purchases.resize(n);
  scores.expected_value.resize(n);
  scores.clv.resize(n);
  scores.next_order_time.resize(n);
  ParallelFor(
      n, threads,
      [&](size_t begin, size_t end, int) {
        for (size_t customer_idx = begin; customer_idx < end; ++customer_idx) {
          score_one(customer_idx, &scores);
        }
      },
      256);
  return scores;
}

}  // namespace

Result<BtydScores> ScoreBgNbd(const BgNbdParams& purchases, const GammaGammaParams& spend,
                              std::span<const double> x, std::span<const double> t_x,
                              std::span<const double> T, std::span<const double> mean_value,
                              const BtydScoreOptions& options, const Context& ctx) {
  SHOAL_RETURN_IF_ERROR(CheckInput(x, t_x, T, mean_value, options));
  return ScoreAll(x.size(), ctx.Threads(), [&](size_t idx, BtydScores* out) {
    const double value = mean_value.empty() ? 0.0 : mean_value[idx];
    const double spend_x = mean_value.empty() ? 0.0 : x[idx];  // no values: population mean
    out->probability_alive[idx] = BgNbdProbabilityAlive(purchases, x[idx], t_x[idx], T[idx]);
    out->expected_purchases[idx] =
        BgNbdExpectedPurchases(purchases, x[idx], t_x[idx], T[idx], options.horizon);
    out->expected_value[idx] = GammaGammaExpectedValue(spend, spend_x, value);
    out->clv[idx] = options.clv.margin * out->expected_value[idx] *
                    BgNbdDiscountedPurchases(purchases, x[idx], t_x[idx], T[idx], options.clv);
    out->next_order_time[idx] =
        BgNbdNextPurchaseTime(purchases, x[idx], t_x[idx], T[idx], options.next_order_quantile);
  });
}

Result<BtydScores> ScoreParetoNbd(const ParetoNbdParams& purchases, const GammaGammaParams& spend,
                                  std::span<const double> x, std::span<const double> t_x,
                                  std::span<const double> T, std::span<const double> mean_value,
                                  const BtydScoreOptions& options, const Context& ctx) {
  SHOAL_RETURN_IF_ERROR(CheckInput(x, t_x, T, mean_value, options));
  return ScoreAll(x.size(), ctx.Threads(), [&](size_t idx, BtydScores* out) {
    const double value = mean_value.empty() ? 0.0 : mean_value[idx];
    const double spend_x = mean_value.empty() ? 0.0 : x[idx];
    out->probability_alive[idx] = ParetoNbdProbabilityAlive(purchases, x[idx], t_x[idx], T[idx]);
    out->expected_purchases[idx] =
        ParetoNbdExpectedPurchases(purchases, x[idx], t_x[idx], T[idx], options.horizon);
    out->expected_value[idx] = GammaGammaExpectedValue(spend, spend_x, value);
    out->clv[idx] = options.clv.margin * out->expected_value[idx] *
                    ParetoNbdDiscountedPurchases(purchases, x[idx], t_x[idx], T[idx], options.clv);
    out->next_order_time[idx] = std::numeric_limits<double>::quiet_NaN();
  });
}

}  // namespace shoal
