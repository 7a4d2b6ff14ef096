#include "predict/gamma_gamma.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "predict/btyd_optimize.h"
#include "predict/btyd_special.h"

namespace shoal {
namespace {

using btyd_internal::Digamma;
using btyd_internal::LogGamma;

// Repeat buyers only, structure of arrays; log(mean_value) is data, so it is computed once.
struct SpendRows {
  std::vector<double> distinct_x;
  std::vector<uint32_t> x_group;
  std::vector<double> total_value, log_mean_value, weight;  // total_value = x * mean_value
};

// Rows must have x > 0 and mean_value > 0 (checked by FitGammaGamma; the public likelihood
// skips other rows).
SpendRows PrepareSpend(std::span<const SpendRow> all_rows) {
  std::vector<SpendRow> kept;
  std::span<const SpendRow> rows = all_rows;
  if (!std::all_of(all_rows.begin(), all_rows.end(),
                   [](const SpendRow& row) { return row.x > 0; })) {
    for (const SpendRow& row : all_rows) {
      if (row.x > 0) kept.push_back(row);
    }
    rows = kept;
  }
  SpendRows spend;
  btyd_internal::GroupByX(
      rows.size(), [&](size_t idx) { return rows[idx].x; }, &spend.distinct_x, &spend.x_group);
  spend.total_value.resize(rows.size());
  spend.log_mean_value.resize(rows.size());
  spend.weight.resize(rows.size());
  for (size_t row_idx = 0; row_idx < rows.size(); ++row_idx) {
    const SpendRow& row = rows[row_idx];
    spend.total_value[row_idx] = row.x * row.mean_value;
    spend.log_mean_value[row_idx] = std::log(row.mean_value);
    spend.weight[row_idx] = row.weight;
  }
  return spend;
}

struct XTerms {
  double x, px, log_x, c0, d_c0_dp, d_c0_dq;
};

double LogLikelihoodPrepared(const GammaGammaParams& prm, const SpendRows& rows,
                             std::array<double, 3>* gradient, int threads) {
  const double log_gamma = std::log(prm.gamma);
  const double lg_q = LogGamma(prm.q), psi_q = Digamma(prm.q);
  std::vector<XTerms> terms(rows.distinct_x.size());
  for (size_t group_idx = 0; group_idx < terms.size(); ++group_idx) {
    const double x = rows.distinct_x[group_idx];
    XTerms& t = terms[group_idx];
    t.x = x;
    t.px = prm.p * x;
    t.log_x = std::log(x);
    const double psi_pxq = Digamma(t.px + prm.q);
    t.c0 = LogGamma(t.px + prm.q) - LogGamma(t.px) - lg_q + prm.q * log_gamma + t.px * t.log_x;
    t.d_c0_dp = x * (psi_pxq - Digamma(t.px) + t.log_x);
    t.d_c0_dq = psi_pxq - psi_q + log_gamma;
  }
  const double q_over_gamma = prm.q / prm.gamma;
  auto row_fn = [&](size_t row_idx, std::array<double, 3>& acc) -> double {
    const XTerms& t = terms[rows.x_group[row_idx]];
    const double weight = rows.weight[row_idx];
    const double log_mean = rows.log_mean_value[row_idx];
    const double denominator = prm.gamma + rows.total_value[row_idx];
    const double log_denominator = std::log(denominator);
    const double pxq = t.px + prm.q;
    acc[0] += weight * (t.d_c0_dp + t.x * (log_mean - log_denominator));
    acc[1] += weight * (t.d_c0_dq - log_denominator);
    acc[2] += weight * (q_over_gamma - pxq / denominator);
    return weight * (t.c0 + (t.px - 1) * log_mean - pxq * log_denominator);
  };
  return btyd_internal::BlockedSum<3>(rows.weight.size(), threads, row_fn, gradient);
}

}  // namespace

double GammaGammaLogLikelihood(const GammaGammaParams& params, std::span<const SpendRow> rows,
                               std::array<double, 3>* gradient, int threads) {
  return LogLikelihoodPrepared(params, PrepareSpend(rows), gradient, threads);
}

Result<GammaGammaFit> FitGammaGamma(const CompressedRfm& data, const BtydFitOptions& options,
                                    const Context& ctx) {
  if (!options.initial.empty() && options.initial.size() != 3) {
    return Status::InvalidArgument(
        "FitGammaGamma: options.initial must hold 3 values (p, q, gamma)");
  }
  double bad_customers = 0, repeat_customers = 0, value_sum = 0, invalid_rows = 0;
  size_t used_rows = 0;
  GammaGammaFit fit;
  for (const SpendRow& row : data.spend) {
    if (!std::isfinite(row.x) || !std::isfinite(row.mean_value) || !(row.weight > 0) ||
        !std::isfinite(row.weight) || row.x != std::floor(row.x)) {
      ++invalid_rows;
      continue;
    }
    if (!(row.x > 0)) continue;
    repeat_customers += row.weight;
    if (!(row.mean_value > 0)) {
      bad_customers += row.weight;
      continue;
    }
    value_sum += row.weight * row.mean_value;
    fit.input.repeat_purchases += row.weight * row.x;
    fit.input.max_x = std::max(fit.input.max_x, row.x);
    ++used_rows;
  }
  if (invalid_rows > 0) {
    return Status::InvalidArgument("FitGammaGamma: " + std::to_string(invalid_rows) +
                                   " spend row(s) with a non-finite value, a non-integer x or "
                                   "a weight <= 0");
  }
  if (bad_customers > 0) {
    return Status::InvalidArgument(
        "FitGammaGamma: " + std::to_string(static_cast<long long>(bad_customers)) + " of " +
        std::to_string(static_cast<long long>(repeat_customers)) +
        " repeat customers (x > 0) have a zero or negative mean spend; the Gamma-Gamma model "
        "needs a positive mean transaction value (filter refunds/free orders or drop them)");
  }
  if (used_rows == 0) {
    return Status::InvalidArgument("FitGammaGamma: no repeat customers (x > 0) to fit on");
  }
  fit.input.customers = fit.input.repeat_buyers = repeat_customers;
  fit.input.distinct_rows = used_rows;
  // Rows with x = 0 (allowed in hand-built input) are dropped by PrepareSpend; the warm-start
  // subsample may then hold slightly fewer rows, which only affects the starting point.
  const std::span<const SpendRow> repeat_rows = data.spend;
  std::vector<double> start = options.initial;
  if (start.empty()) {
    // p = 1, q = 2 gives a population mean of gamma: start gamma at the observed mean.
    start = {1.0, 2.0, value_sum / repeat_customers};
  }
  const btyd_internal::MleResult mle = btyd_internal::FitPreparedModel<3, SpendRow>(
      repeat_rows, start, options, ctx.Threads(),
      [](std::span<const SpendRow> rows) { return PrepareSpend(rows); },
      [](std::span<const double> theta, const SpendRows& prepared, std::array<double, 3>* g,
         int threads) {
        return LogLikelihoodPrepared(GammaGammaParams{theta[0], theta[1], theta[2]}, prepared, g,
                                     threads);
      });
  if (!std::isfinite(mle.log_likelihood)) {
    return Status::FailedPrecondition(
        "FitGammaGamma: the likelihood is not finite at the optimum (" + mle.message + ")");
  }
  fit.params = GammaGammaParams{mle.params[0], mle.params[1], mle.params[2]};
  btyd_internal::CopyDiagnostics(mle, &fit);
  return fit;
}

double GammaGammaExpectedValue(const GammaGammaParams& prm, double x, double mean_value) {
  const double denominator = prm.p * x + prm.q - 1;
  if (!(denominator > 0)) return std::numeric_limits<double>::infinity();
  return prm.p * (prm.gamma + x * mean_value) / denominator;
}

}  // namespace shoal
