// Pareto/NBD model (Schmittlein, Morrison & Colombo 1987; likelihood as in Fader & Hardie,
// "A Note on Deriving the Pareto/NBD Model and Related Expressions", 2005): while alive a
// customer buys at Poisson rate lambda ~ Gamma(r, alpha) and dies at an exponential time with
// rate mu ~ Gamma(s, beta). All functions are pure and thread-safe.
#pragma once

#include <array>
#include <span>
#include <string>

#include "common/context.h"
#include "common/status.h"
#include "predict/btyd_data.h"

namespace shoal {

struct ParetoNbdParams {
  double r = 0;
  double alpha = 0;  // in the data's time unit
  double s = 0;
  double beta = 0;  // in the data's time unit
};

struct ParetoNbdFit {
  ParetoNbdParams params;
  double log_likelihood = 0;
  int iterations = 0;  // likelihood+gradient evaluations (BFGS, Newton polish, Hessian)
  bool converged = false;
  std::array<double, 4> std_errors{};  // of r, alpha, s, beta
  double max_abs_gradient = 0;
  BtydInputSummary input;
  std::string optimizer_message;
};

// Total weighted log-likelihood with analytic gradient dLL/d(r, alpha, s, beta).
// Per customer, L = Gamma(r+x) alpha^r beta^s / Gamma(r) * [ (alpha+T)^-(r+x) (beta+T)^-s
//   + s Int_{t_x}^{T} (alpha+tau)^-(r+x) (beta+tau)^-(s+1) dtau ];
// the integral equals Fader-Hardie's 2F1 difference. Each row costs bounded time for any
// parameters and data (microseconds): Fader-Hardie's series (expanded around max(alpha, beta),
// positive terms, rescaled) where it is short, else composite Gauss-Legendre quadrature of the
// integral in log space (btyd_pareto_integral.h). The gradient is exact for the value computed
// (term-by-term derivative of the series / derivative under the integral sign).
double ParetoNbdLogLikelihood(const ParetoNbdParams& params, std::span<const RfmSummaryRow> rows,
                              std::array<double, 4>* gradient = nullptr, int threads = 1);

// Maximum-likelihood fit; see FitBgNbd. Bounded by options.max_evaluations (and
// options.max_seconds if set): when a budget runs out, the best point so far is returned with
// converged = false and optimizer_message naming the budget.
Result<ParetoNbdFit> FitParetoNbd(const CompressedRfm& data, const BtydFitOptions& options = {},
                                  const Context& ctx = {});

// P(alive at T | x, t_x, T): the share of the likelihood from "still alive at T".
double ParetoNbdProbabilityAlive(const ParetoNbdParams& params, double x, double t_x, double T);

// E[purchases in (T, T+t] | x, t_x, T]
//   = P(alive) (r+x)(beta+T) / ((alpha+T)(s-1)) [1 - ((beta+T)/(beta+T+t))^(s-1)]
// (the s = 1 limit, log((beta+T+t)/(beta+T)), is handled).
double ParetoNbdExpectedPurchases(const ParetoNbdParams& params, double x, double t_x, double T,
                                  double t);

// E[X(t)] for a new customer = r beta / (alpha (s-1)) [1 - (beta/(beta+t))^(s-1)].
double ParetoNbdExpectedPurchasesNewCustomer(const ParetoNbdParams& params, double t);

}  // namespace shoal
