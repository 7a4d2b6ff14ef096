#include "predict/pareto_nbd.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "predict/btyd_optimize.h"
#include "predict/btyd_pareto_integral.h"
#include "predict/btyd_special.h"

namespace shoal {
namespace {

using btyd_internal::Digamma;
using btyd_internal::LogGamma;
using btyd_internal::LogSumExp;
using btyd_internal::PreparedRows;

using btyd_internal::ParetoDeathTerm;

ParetoDeathTerm ComputeDeathTerm(const ParetoNbdParams& p, double x, double t_x, double T,
                                 btyd_internal::ParetoQuadratureCache* cache = nullptr) {
  return btyd_internal::ComputeParetoDeathTerm(p.r, p.alpha, p.s, p.beta, x, t_x, T,
                                               btyd_internal::ParetoDeathMethod::kAuto, cache);
}

double LogLikelihoodPrepared(const ParetoNbdParams& p, const PreparedRows& rows,
                             std::array<double, 4>* gradient, int threads) {
  const double log_alpha = std::log(p.alpha), log_beta = std::log(p.beta);
  const double lg_r = LogGamma(p.r), psi_r = Digamma(p.r);
  std::vector<double> lg_ratio(rows.distinct_x.size()), psi_ratio(rows.distinct_x.size());
  for (size_t group_idx = 0; group_idx < rows.distinct_x.size(); ++group_idx) {
    const double x = rows.distinct_x[group_idx];
    lg_ratio[group_idx] = LogGamma(p.r + x) - lg_r;
    psi_ratio[group_idx] = Digamma(p.r + x) - psi_r;
  }
  // One quadrature cache per fixed block of rows (a block runs on one thread, in row order), so
  // sorted rows sharing (x, t_x) extend one integral and the result is thread-count independent.
  std::vector<btyd_internal::ParetoQuadratureCache> caches(
      (rows.weight.size() + btyd_internal::kRowsPerBlock - 1) / btyd_internal::kRowsPerBlock);
  auto row_fn = [&](size_t row_idx, std::array<double, 4>& acc) -> double {
    const uint32_t group_idx = rows.x_group[row_idx];
    const double x = rows.distinct_x[group_idx];
    const double t_x = rows.t_x[row_idx], T = rows.T[row_idx], weight = rows.weight[row_idx];
    const double log_alpha_T = std::log(p.alpha + T), log_beta_T = std::log(p.beta + T);
    const double alive = -(p.r + x) * log_alpha_T - p.s * log_beta_T;
    const ParetoDeathTerm death =
        ComputeDeathTerm(p, x, t_x, T, &caches[row_idx / btyd_internal::kRowsPerBlock]);
    const double total = LogSumExp(alive, death.log_value);
    const double w_alive = std::exp(alive - total), w_death = std::exp(death.log_value - total);
    acc[0] +=
        weight * (psi_ratio[group_idx] + log_alpha - w_alive * log_alpha_T + w_death * death.d_r);
    acc[1] +=
        weight * (p.r / p.alpha - w_alive * (p.r + x) / (p.alpha + T) + w_death * death.d_alpha);
    acc[2] += weight * (log_beta - w_alive * log_beta_T + w_death * death.d_s);
    acc[3] += weight * (p.s / p.beta - w_alive * p.s / (p.beta + T) + w_death * death.d_beta);
    return weight * (lg_ratio[group_idx] + p.r * log_alpha + p.s * log_beta + total);
  };
  return btyd_internal::BlockedSum<4>(rows.weight.size(), threads, row_fn, gradient);
}

// [1 - q^(s-1)] / (s-1) with q = (beta+T)/(beta+T+t); the s -> 1 limit is -log q.
double RemainingLifeFactor(double s, double beta_T, double t) {
  const double log_q = -std::log1p(t / beta_T);
  if (std::fabs(s - 1) < 1e-10) return -log_q;
  return -std::expm1((s - 1) * log_q) / (s - 1);
}

}  // namespace

double ParetoNbdLogLikelihood(const ParetoNbdParams& params, std::span<const RfmSummaryRow> rows,
                              std::array<double, 4>* gradient, int threads) {
  return LogLikelihoodPrepared(params, btyd_internal::Prepare(rows), gradient, threads);
}

Result<ParetoNbdFit> FitParetoNbd(const CompressedRfm& data, const BtydFitOptions& options,
                                  const Context& ctx) {
  SHOAL_RETURN_IF_ERROR(ValidateRfmRows(data).WithContext("FitParetoNbd"));
  if (!options.initial.empty() && options.initial.size() != 4) {
    return Status::InvalidArgument(
        "FitParetoNbd: options.initial must hold 4 values (r, alpha, s, beta)");
  }
  const std::vector<RfmSummaryRow> merged = btyd_internal::MergeOnRecencyFrequency(data.rows);
  ParetoNbdFit fit;
  fit.input = btyd_internal::SummarizeRows(merged, merged.size());
  std::vector<double> start = options.initial;
  if (start.empty()) {
    const double rate = std::max(fit.input.repeat_purchases, 0.1 * fit.input.customers) /
                        (fit.input.mean_T * fit.input.customers);
    start = {1.0, 1.0 / rate, 1.0, fit.input.mean_T};
  }
  const btyd_internal::MleResult mle = btyd_internal::FitPreparedModel<4, RfmSummaryRow>(
      merged, start, options, ctx.Threads(),
      [](std::span<const RfmSummaryRow> rows) { return btyd_internal::Prepare(rows); },
      [](std::span<const double> theta, const PreparedRows& prepared, std::array<double, 4>* g,
         int threads) {
        return LogLikelihoodPrepared(ParetoNbdParams{theta[0], theta[1], theta[2], theta[3]},
                                     prepared, g, threads);
      });
  if (!std::isfinite(mle.log_likelihood)) {
    return Status::FailedPrecondition(
        "FitParetoNbd: the likelihood is not finite at the optimum (" + mle.message + ")");
  }
  fit.params = ParetoNbdParams{mle.params[0], mle.params[1], mle.params[2], mle.params[3]};
  btyd_internal::CopyDiagnostics(mle, &fit);
  return fit;
}

double ParetoNbdProbabilityAlive(const ParetoNbdParams& p, double x, double t_x, double T) {
  const double alive = -(p.r + x) * std::log(p.alpha + T) - p.s * std::log(p.beta + T);
  const ParetoDeathTerm death = ComputeDeathTerm(p, x, t_x, T);
  return std::exp(alive - LogSumExp(alive, death.log_value));
}

double ParetoNbdExpectedPurchases(const ParetoNbdParams& p, double x, double t_x, double T,
                                  double t) {
  if (t <= 0) return 0;
  return ParetoNbdProbabilityAlive(p, x, t_x, T) * (p.r + x) * (p.beta + T) / (p.alpha + T) *
         RemainingLifeFactor(p.s, p.beta + T, t);
}

double ParetoNbdExpectedPurchasesNewCustomer(const ParetoNbdParams& p, double t) {
  if (t <= 0) return 0;
  return p.r * p.beta / p.alpha * RemainingLifeFactor(p.s, p.beta, t);
}

}  // namespace shoal
