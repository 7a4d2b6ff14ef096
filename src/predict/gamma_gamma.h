// Gamma-Gamma model of monetary value (Fader, Hardie & Lee 2005b "RFM and CLV", JMR 42(4);
// Fader & Hardie 2013, "The Gamma-Gamma Model of Monetary Value"): transaction values of a
// customer are Gamma(p, nu) with nu ~ Gamma(q, gamma) across customers, independent of the
// purchase process. Fitted on repeat buyers (x > 0) with their mean repeat-transaction value.
#pragma once

#include <array>
#include <span>
#include <string>

#include "common/context.h"
#include "common/status.h"
#include "predict/btyd_data.h"

namespace shoal {

struct GammaGammaParams {
  double p = 0;
  double q = 0;
  double gamma = 0;  // in the currency unit
};

struct GammaGammaFit {
  GammaGammaParams params;
  double log_likelihood = 0;  // over repeat buyers only
  int iterations = 0;         // likelihood+gradient evaluations (BFGS, Newton polish, Hessian)
  bool converged = false;
  std::array<double, 3> std_errors{};  // of p, q, gamma
  double max_abs_gradient = 0;
  BtydInputSummary input;  // of the repeat buyers used
  std::string optimizer_message;
};

// Total weighted log-likelihood over spend rows with x > 0 (rows with x = 0 are skipped):
//   log f(mbar | x) = lgG(px+q) - lgG(px) - lgG(q) + q log(gamma) + (px-1) log(mbar)
//                     + px log(x) - (px+q) log(gamma + x mbar),
// and dLL/d(p, q, gamma) if gradient is non-null. Every used row needs mean_value > 0.
double GammaGammaLogLikelihood(const GammaGammaParams& params, std::span<const SpendRow> rows,
                               std::array<double, 3>* gradient = nullptr, int threads = 1);

// Maximum-likelihood fit on data.spend (rows with x > 0). Returns InvalidArgument when there is
// no repeat buyer, or when some repeat buyers have mean_value <= 0 (the message gives their
// count). input.customers etc. describe the repeat buyers used.
Result<GammaGammaFit> FitGammaGamma(const CompressedRfm& data, const BtydFitOptions& options = {},
                                    const Context& ctx = {});

// E[mean transaction value | x, mean_value] = p (gamma + x mean_value) / (p x + q - 1); for
// x = 0 this is the population mean p gamma / (q - 1). Requires q > 1 (else +infinity).
double GammaGammaExpectedValue(const GammaGammaParams& params, double x, double mean_value);

}  // namespace shoal
