// Batch scoring: every BTYD score for many customers at once, in parallel, as columns.
#pragma once

#include <span>
#include <vector>

#include "common/context.h"
#include "common/status.h"
#include "predict/bgnbd.h"
#include "predict/btyd_clv.h"
#include "predict/gamma_gamma.h"
#include "predict/pareto_nbd.h"

namespace shoal {

struct BtydScoreOptions {
  // Horizon of expected_purchases, in the model's time unit (default: a year, with weeks).
  double horizon = 52;
  // Horizon, margin and discounting of the CLV.
  ClvOptions clv;
  // Probability level of next_order_time (0.5 = median wait).
  double next_order_quantile = 0.5;
};

// One entry per customer, in input order.
struct BtydScores {
  std::vector<double> probability_alive;
  std::vector<double> expected_purchases;  // in (T, T + horizon]
  std::vector<double> expected_value;      // Gamma-Gamma conditional mean order value
  std::vector<double> clv;
  // Time after T of the next order at next_order_quantile (BgNbdNextPurchaseTime); +infinity
  // when none is expected. NaN for Pareto/NBD, which has no closed form for it.
  std::vector<double> next_order_time;
};

// Scores customers given per-customer columns (as CompressRfm takes them; mean_value may be
// empty, then the population mean order value is used for everyone). Uses up to ctx.Threads()
// threads, each writing its own customers, so results do not depend on the thread count.
// Returns InvalidArgument for mismatched lengths, invalid histories, or options out of range.
Result<BtydScores> ScoreBgNbd(const BgNbdParams& purchases, const GammaGammaParams& spend,
                              std::span<const double> x, std::span<const double> t_x,
                              std::span<const double> T, std::span<const double> mean_value,
                              const BtydScoreOptions& options = {}, const Context& ctx = {});
Result<BtydScores> ScoreParetoNbd(const ParetoNbdParams& purchases, const GammaGammaParams& spend,
                                  std::span<const double> x, std::span<const double> t_x,
                                  std::span<const double> T, std::span<const double> mean_value,
                                  const BtydScoreOptions& options = {}, const Context& ctx = {});

}  // namespace shoal
