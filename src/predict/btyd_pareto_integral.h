// The "died in (t_x, T]" term of the Pareto/NBD likelihood and its parameter derivatives,
// evaluated in bounded time for any parameters and data. Internal to the predict module (used by
// pareto_nbd.cc; declared here so the tests can compare the two evaluation methods).
#pragma once

namespace shoal::btyd_internal {

// log of D = s Int_{t_x}^{T} (alpha+tau)^-(r+x) (beta+tau)^-(s+1) dtau and d(log D)/d(r, alpha,
// s, beta). log_value = -inf (derivatives 0) when t_x >= T.
struct ParetoDeathTerm {
  double log_value;
  double d_r, d_alpha, d_s, d_beta;
};

enum class ParetoDeathMethod {
  kAuto,        // the series when it needs few terms, else quadrature (what the model uses)
  kSeries,      // the 2F1 series only (can need millions of terms; for tests)
  kQuadrature,  // Gauss-Legendre quadrature only
};

// Auto picks the series when its estimated length (b z + 40) / (1 - z) is at most
// kParetoSeriesTermBudget terms (z, b as in docs/predictions.md), and also falls back to
// quadrature if the series has not converged after 4x that many terms. Either way one call costs
// at most a few thousand elementary operations.
inline constexpr double kParetoSeriesTermBudget = 300;

// Running quadrature sums, so that consecutive rows with the same (x, t_x) and non-decreasing T
// (merged rows are sorted that way) continue the integral from where the previous row stopped
// instead of starting again at t_x. Valid for one parameter point; not shared between threads.
struct ParetoQuadratureCache {
  bool valid = false;
  double x = 0, t_x = 0, T = 0;  // the row that filled it
  double reached = 0;            // the sums cover [t_x, reached], reached <= T
  double sum = 0, sum_log_alpha = 0, sum_log_beta = 0, sum_inv_alpha = 0, sum_inv_beta = 0;
};

// `cache` (optional) is used and updated by the quadrature path only.
ParetoDeathTerm ComputeParetoDeathTerm(double r, double alpha, double s, double beta, double x,
                                       double t_x, double T,
                                       ParetoDeathMethod method = ParetoDeathMethod::kAuto,
                                       ParetoQuadratureCache* cache = nullptr);

}  // namespace shoal::btyd_internal
