// BG/NBD model (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way", Marketing
// Science 24(2)): while alive a customer buys at Poisson rate lambda ~ Gamma(r, alpha); after
// each purchase they drop out with probability p ~ Beta(a, b). Fitted by maximum likelihood on
// (x, t_x, T) summaries. All functions are pure and thread-safe.
#pragma once

#include <array>
#include <span>
#include <string>

#include "common/context.h"
#include "common/status.h"
#include "predict/btyd_data.h"

namespace shoal {

struct BgNbdParams {
  double r = 0;
  double alpha = 0;  // in the data's time unit
  double a = 0;
  double b = 0;
};

struct BgNbdFit {
  BgNbdParams params;
  double log_likelihood = 0;  // total over customers, in the data's time unit
  int iterations = 0;         // likelihood+gradient evaluations (BFGS, Newton polish, Hessian)
  bool converged = false;
  std::array<double, 4> std_errors{};  // of r, alpha, a, b (NaN if the Hessian is singular)
  double max_abs_gradient = 0;         // mean-LL gradient w.r.t. log-parameters at the optimum
  BtydInputSummary input;
  std::string optimizer_message;
};

// Total weighted log-likelihood (FHL 2005 eq. 6, evaluated as a log-sum-exp of its two terms);
// if gradient is non-null it receives dLL/d(r, alpha, a, b) (analytic). Rows must be valid
// (ValidateRfmRows); parameters must be > 0. Uses up to `threads` threads; the result does not
// depend on the thread count.
double BgNbdLogLikelihood(const BgNbdParams& params, std::span<const RfmSummaryRow> rows,
                          std::array<double, 4>* gradient = nullptr, int threads = 1);

// Maximum-likelihood fit (log-parameters, BFGS + Newton polish, analytic gradient). Rows with
// identical (x, t_x, T) are merged first. Returns InvalidArgument for invalid rows.
Result<BgNbdFit> FitBgNbd(const CompressedRfm& data, const BtydFitOptions& options = {},
                          const Context& ctx = {});

// P(alive at T | x, t_x, T) = 1 / (1 + [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)).
double BgNbdProbabilityAlive(const BgNbdParams& params, double x, double t_x, double T);

// E[number of purchases in (T, T+t] | x, t_x, T] (FHL 2005 eq. 10), with the 2F1 taken through
// Euler's transformation so that large x does not overflow.
double BgNbdExpectedPurchases(const BgNbdParams& params, double x, double t_x, double T, double t);

// E[X(t)] for a customer who made a first purchase at time 0 (FHL 2005 eq. 9).
double BgNbdExpectedPurchasesNewCustomer(const BgNbdParams& params, double t);

// P(X(t) = n) for a new customer (FHL 2005 eq. 8); the NBD tail is a regularised incomplete beta.
double BgNbdProbabilityOfPurchases(const BgNbdParams& params, double t, int n);

// P(at least one purchase in (T, T+t] | x, t_x, T)
//   = P(alive) * (1 - ((alpha+T)/(alpha+T+t))^(r+x)),
// because a customer alive at T buys next after an Exp(lambda) wait, and lambda given "alive"
// and the history is Gamma(r+x, alpha+T).
double BgNbdProbabilityPurchaseWithin(const BgNbdParams& params, double x, double t_x, double T,
                                      double t);

// The time after T by which the customer has made their next purchase with probability
// `quantile` (0.5 = median waiting time): solves BgNbdProbabilityPurchaseWithin = quantile.
// +infinity when P(alive) <= quantile (the customer more likely than not never buys again).
double BgNbdNextPurchaseTime(const BgNbdParams& params, double x, double t_x, double T,
                             double quantile = 0.5);

}  // namespace shoal
