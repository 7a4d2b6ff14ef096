#include "predict/bgnbd.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/parallel.h"
#include "predict/btyd_optimize.h"
#include "predict/btyd_special.h"

namespace shoal {
namespace {

using btyd_internal::Digamma;
using btyd_internal::LogBeta;
using btyd_internal::LogGamma;

using btyd_internal::Prepare;
using btyd_internal::PreparedRows;

// Terms of the per-customer log-likelihood that depend only on x (and the parameters).
struct XTerms {
  double x, r_plus_x;
  double c0;                // lgG(r+x) - lgG(r) + r log(alpha) - lgB(a, b)
  double log_beta_alive;    // lgB(a, b+x)
  double log_beta_dropped;  // lgB(a+1, b+x-1)  (x > 0)
  double dc0_dr, dc0_da, dc0_db;
  double d_alive_da, d_alive_db, d_dropped_da, d_dropped_db;
};

double LogLikelihoodPrepared(const BgNbdParams& p, const PreparedRows& rows,
                             std::array<double, 4>* gradient, int threads) {
  const double log_alpha = std::log(p.alpha);
  const double psi_r = Digamma(p.r), psi_a = Digamma(p.a), psi_b = Digamma(p.b);
  const double psi_ab = Digamma(p.a + p.b), psi_a1 = Digamma(p.a + 1);
  const double log_beta_ab = LogBeta(p.a, p.b);
  const double lg_r = LogGamma(p.r);
  std::vector<XTerms> terms(rows.distinct_x.size());
  for (size_t group_idx = 0; group_idx < terms.size(); ++group_idx) {
    const double x = rows.distinct_x[group_idx];
    XTerms& t = terms[group_idx];
    t.x = x;
    t.r_plus_x = p.r + x;
    t.c0 = LogGamma(p.r + x) - lg_r + p.r * log_alpha - log_beta_ab;
    t.log_beta_alive = LogBeta(p.a, p.b + x);
    t.dc0_dr = Digamma(p.r + x) - psi_r + log_alpha;
    t.dc0_da = -(psi_a - psi_ab);
    t.dc0_db = -(psi_b - psi_ab);
    const double psi_abx = Digamma(p.a + p.b + x);
    t.d_alive_da = psi_a - psi_abx;
    t.d_alive_db = Digamma(p.b + x) - psi_abx;
    if (x > 0) {
      t.log_beta_dropped = LogBeta(p.a + 1, p.b + x - 1);
      t.d_dropped_da = psi_a1 - psi_abx;
      t.d_dropped_db = Digamma(p.b + x - 1) - psi_abx;
    } else {
      t.log_beta_dropped = -INFINITY;
      t.d_dropped_da = t.d_dropped_db = 0;
    }
  }
  const double r_over_alpha = p.r / p.alpha;
  // log(alpha + time) and 1/(alpha + time) once per distinct time value.
  const size_t time_count = rows.distinct_times.size();
  std::vector<double> log_alpha_time(time_count), inv_alpha_time(time_count);
  ParallelFor(
      time_count, threads,
      [&](size_t begin, size_t end, int) {
        for (size_t time_idx = begin; time_idx < end; ++time_idx) {
          const double shifted = p.alpha + rows.distinct_times[time_idx];
          log_alpha_time[time_idx] = std::log(shifted);
          inv_alpha_time[time_idx] = 1 / shifted;
        }
      },
      16384);
  auto row_fn = [&](size_t row_idx, std::array<double, 4>& acc) -> double {
    const XTerms& t = terms[rows.x_group[row_idx]];
    const double weight = rows.weight[row_idx];
    const uint32_t T_idx = rows.T_idx[row_idx];
    const double log_alpha_T = log_alpha_time[T_idx];
    const double alive = t.log_beta_alive - t.r_plus_x * log_alpha_T;
    if (t.x == 0) {
      acc[0] += weight * (t.dc0_dr - log_alpha_T);
      acc[1] += weight * (r_over_alpha - t.r_plus_x * inv_alpha_time[T_idx]);
      acc[2] += weight * (t.dc0_da + t.d_alive_da);
      acc[3] += weight * (t.dc0_db + t.d_alive_db);
      return weight * (t.c0 + alive);
    }
    const uint32_t t_x_idx = rows.t_x_idx[row_idx];
    const double log_alpha_tx = log_alpha_time[t_x_idx];
    const double dropped = t.log_beta_dropped - t.r_plus_x * log_alpha_tx;
    // log-sum-exp of the two terms with a single exp: e = exp(-|difference|).
    const double difference = dropped - alive;
    const double e = std::exp(-std::fabs(difference));
    const double total = (difference <= 0 ? alive : dropped) + std::log1p(e);
    const double w_big = 1 / (1 + e), w_small = e * w_big;
    const double w_alive = difference <= 0 ? w_big : w_small;
    const double w_dropped = difference <= 0 ? w_small : w_big;
    acc[0] += weight * (t.dc0_dr - w_alive * log_alpha_T - w_dropped * log_alpha_tx);
    acc[1] += weight * (r_over_alpha - t.r_plus_x * (w_alive * inv_alpha_time[T_idx] +
                                                     w_dropped * inv_alpha_time[t_x_idx]));
    acc[2] += weight * (t.dc0_da + w_alive * t.d_alive_da + w_dropped * t.d_dropped_da);
    acc[3] += weight * (t.dc0_db + w_alive * t.d_alive_db + w_dropped * t.d_dropped_db);
    return weight * (t.c0 + total);
  };
  return btyd_internal::BlockedSum<4>(rows.weight.size(), threads, row_fn, gradient);
}

// (1 - z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z) with z = t/(alpha+T+t): Euler's transform of
// ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z), bounded for every x.
double DecayTerm(const BgNbdParams& p, double a, double x, double T, double t) {
  const double z = t / (p.alpha + T + t);
  // Log-space product: with large a and z near 1 the prefactor underflows while 2F1 overflows.
  // Hyp2F1 is bounded in time (NaN, never a hang, if its hard term cap were ever reached).
  return btyd_internal::Hyp2F1Scaled((a - 1) * std::log1p(-z), a + p.b - 1 - p.r, a - 1,
                                     a + p.b + x - 1, z);
}

// (a+b+x-1)/(a-1) * (1 - DecayTerm): the expected purchases of a customer alive at T. The
// a = 1 singularity is removable; it is bridged by averaging a = 1 -/+ 1e-6.
double ExpectedIfAlive(const BgNbdParams& p, double x, double T, double t) {
  if (t <= 0) return 0;
  auto at = [&](double a) { return (a + p.b + x - 1) / (a - 1) * (1 - DecayTerm(p, a, x, T, t)); };
  if (std::fabs(p.a - 1) < 1e-6) return 0.5 * (at(1 - 1e-6) + at(1 + 1e-6));
  return at(p.a);
}

}  // namespace

double BgNbdLogLikelihood(const BgNbdParams& params, std::span<const RfmSummaryRow> rows,
                          std::array<double, 4>* gradient, int threads) {
  return LogLikelihoodPrepared(params, Prepare(rows), gradient, threads);
}

Result<BgNbdFit> FitBgNbd(const CompressedRfm& data, const BtydFitOptions& options,
                          const Context& ctx) {
  SHOAL_RETURN_IF_ERROR(ValidateRfmRows(data).WithContext("FitBgNbd"));
  if (!options.initial.empty() && options.initial.size() != 4) {
    return Status::InvalidArgument("FitBgNbd: options.initial must hold 4 values (r, alpha, a, b)");
  }
  const std::vector<RfmSummaryRow> merged = btyd_internal::MergeOnRecencyFrequency(data.rows);
  BgNbdFit fit;
  fit.input = btyd_internal::SummarizeRows(merged, merged.size());
  std::vector<double> start = options.initial;
  if (start.empty()) {
    // r = 1 and alpha matching the observed repeat rate; a = 1, b = 1 (dropout mean 1/2).
    const double rate = std::max(fit.input.repeat_purchases, 0.1 * fit.input.customers) /
                        (fit.input.mean_T * fit.input.customers);
    start = {1.0, 1.0 / rate, 1.0, 1.0};
  }
  const btyd_internal::MleResult mle = btyd_internal::FitPreparedModel<4, RfmSummaryRow>(
      merged, start, options, ctx.Threads(),
      [](std::span<const RfmSummaryRow> rows) { return Prepare(rows); },
      [](std::span<const double> theta, const PreparedRows& prepared, std::array<double, 4>* g,
         int threads) {
        return LogLikelihoodPrepared(BgNbdParams{theta[0], theta[1], theta[2], theta[3]},
                                     prepared, g, threads);
      });
  if (!std::isfinite(mle.log_likelihood)) {
    return Status::FailedPrecondition("FitBgNbd: the likelihood is not finite at the optimum (" +
                                      mle.message + ")");
  }
  fit.params = BgNbdParams{mle.params[0], mle.params[1], mle.params[2], mle.params[3]};
  btyd_internal::CopyDiagnostics(mle, &fit);
  return fit;
}

double BgNbdProbabilityAlive(const BgNbdParams& p, double x, double t_x, double T) {
  if (x <= 0) return 1.0;
  // log of a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x); P = 1/(1+e^v) computed stably.
  const double v =
      std::log(p.a / (p.b + x - 1)) + (p.r + x) * (std::log(p.alpha + T) - std::log(p.alpha + t_x));
  return v > 0 ? std::exp(-v) / (1 + std::exp(-v)) : 1 / (1 + std::exp(v));
}

double BgNbdExpectedPurchases(const BgNbdParams& p, double x, double t_x, double T, double t) {
  return BgNbdProbabilityAlive(p, x, t_x, T) * ExpectedIfAlive(p, x, T, t);
}

double BgNbdExpectedPurchasesNewCustomer(const BgNbdParams& p, double t) {
  return ExpectedIfAlive(p, 0, 0, t);
}

double BgNbdProbabilityOfPurchases(const BgNbdParams& p, double t, int n) {
  if (n < 0) return 0;
  const double log_beta_ab = LogBeta(p.a, p.b);
  const double q = t / (p.alpha + t);
  const double log_nbd = LogGamma(p.r + n) - LogGamma(p.r) - LogGamma(n + 1.0) +
                         p.r * std::log(p.alpha / (p.alpha + t)) + (n > 0 ? n * std::log(q) : 0.0);
  double prob = std::exp(LogBeta(p.a, p.b + n) - log_beta_ab + log_nbd);
  if (n > 0) {
    prob += std::exp(LogBeta(p.a + 1, p.b + n - 1) - log_beta_ab) *
            btyd_internal::NegBinomialUpperTail(n, p.r, q);
  }
  return prob;
}

double BgNbdProbabilityPurchaseWithin(const BgNbdParams& p, double x, double t_x, double T,
                                      double t) {
  if (t <= 0) return 0;
  const double no_purchase_if_alive =
      std::exp((p.r + x) * (std::log(p.alpha + T) - std::log(p.alpha + T + t)));
  return BgNbdProbabilityAlive(p, x, t_x, T) * (1 - no_purchase_if_alive);
}

double BgNbdNextPurchaseTime(const BgNbdParams& p, double x, double t_x, double T,
                             double quantile) {
  const double alive = BgNbdProbabilityAlive(p, x, t_x, T);
  if (!(quantile > 0) || alive <= quantile) return std::numeric_limits<double>::infinity();
  // alive * (1 - ((alpha+T)/(alpha+T+t))^(r+x)) = quantile
  const double keep = 1 - quantile / alive;  // = ((alpha+T)/(alpha+T+t))^(r+x)
  return (p.alpha + T) * std::expm1(-std::log(keep) / (p.r + x));
}

}  // namespace shoal
