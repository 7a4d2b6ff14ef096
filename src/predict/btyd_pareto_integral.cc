#include "predict/btyd_pareto_integral.h"

#include <algorithm>
#include <array>
#include <cmath>

namespace shoal::btyd_internal {
namespace {

// --- Series --------------------------------------------------------------------------------------

// S = sum_n (b)_n/n! z^n / (a+n) * (1 - rho^(a+n)) and its partial derivatives in a, b, z, rho,
// all multiplied by exp(-log_scale) (the series can exceed double range for large x).
struct SeriesSums {
  double value = 0, d_a = 0, d_b = 0, d_z = 0, d_rho = 0;
  double log_scale = 0;
  bool converged = false;
};

SeriesSums SumSeries(double a, double b, double z, double rho, double max_terms) {
  SeriesSums sums;
  const double log_rho = std::log(rho);
  double coefficient = 1.0 / a;          // (b)_n/n! z^n / (a+n), rescaled
  double power = std::exp(a * log_rho);  // rho^(a+n)
  double harmonic = 0;                   // sum_{k<n} 1/(b+k) = psi(b+n) - psi(b)
  for (double n = 0; n < max_terms; ++n) {
    const double a_n = a + n;
    const double one_minus_power = power > 0.5 ? -std::expm1(a_n * log_rho) : 1 - power;
    const double term = coefficient * one_minus_power;
    sums.value += term;
    sums.d_a += -term / a_n - coefficient * power * log_rho;
    sums.d_b += term * harmonic;
    sums.d_z += n * term;
    sums.d_rho += -coefficient * a_n * power / rho;
    if (z == 0) {
      sums.converged = true;
      break;
    }
    const double ratio = (b + n) / (n + 1.0) * z * a_n / (a_n + 1);
    if (ratio < 1 && (n + 1.0) * term < 1e-17 * (1 - ratio) * sums.value) {
      sums.converged = true;
      break;
    }
    coefficient *= ratio;
    power *= rho;
    harmonic += 1 / (b + n);
    if (coefficient > 1e250) {
      constexpr double kShrink = 1e-250;
      coefficient *= kShrink;
      sums.value *= kShrink;
      sums.d_a *= kShrink;
      sums.d_b *= kShrink;
      sums.d_z *= kShrink;
      sums.d_rho *= kShrink;
      sums.log_scale += 250 * std::log(10.0);
    }
  }
  if (z == 0) {
    sums.d_z = b / (a + 1) * -std::expm1((a + 1) * log_rho);
  } else {
    sums.d_z /= z;
  }
  return sums;
}

// The a-b branch of Fader & Hardie's note: expansion around m = max(alpha, beta), so that the
// series argument z = |alpha - beta| / (m + t_x) is in [0, 1). Returns false (death untouched)
// if the series did not converge within max_terms.
struct SeriesSetup {
  bool alpha_major;
  double a, b, z, rho, major, minor;
};

SeriesSetup SetUpSeries(double r, double alpha, double s, double beta, double x, double t_x,
                        double T) {
  SeriesSetup setup;
  setup.alpha_major = alpha >= beta;
  setup.major = setup.alpha_major ? alpha : beta;
  setup.minor = setup.alpha_major ? beta : alpha;
  setup.a = r + s + x;
  setup.b = setup.alpha_major ? s + 1 : r + x;
  setup.z = (setup.major - setup.minor) / (setup.major + t_x);
  setup.rho = (setup.major + t_x) / (setup.major + T);
  return setup;
}

bool SeriesDeathTerm(const SeriesSetup& setup, double s, double t_x, double T, double max_terms,
                     ParetoDeathTerm* death) {
  const SeriesSums sums = SumSeries(setup.a, setup.b, setup.z, setup.rho, max_terms);
  if (!sums.converged) return false;
  const double major_tx = setup.major + t_x, major_T = setup.major + T;
  const double log_major_tx = std::log(major_tx);
  death->log_value = std::log(s) - setup.a * log_major_tx + std::log(sums.value) + sums.log_scale;
  const double s_a = sums.d_a / sums.value, s_b = sums.d_b / sums.value;
  const double s_z = sums.d_z / sums.value, s_rho = sums.d_rho / sums.value;
  // a = r + s + x; b = s + 1 (alpha major) or r + x (beta major).
  death->d_r = -log_major_tx + s_a + (setup.alpha_major ? 0 : s_b);
  death->d_s = 1 / s - log_major_tx + s_a + (setup.alpha_major ? s_b : 0);
  const double d_major = -setup.a / major_tx + s_z * (setup.minor + t_x) / (major_tx * major_tx) +
                         s_rho * (T - t_x) / (major_T * major_T);
  const double d_minor = -s_z / major_tx;
  death->d_alpha = setup.alpha_major ? d_major : d_minor;
  death->d_beta = setup.alpha_major ? d_minor : d_major;
  return true;
}

// --- Quadrature ----------------------------------------------------------------------------------

constexpr int kGaussNodes = 12;

struct GaussLegendreRule {
  std::array<double, kGaussNodes> node{}, weight{};  // on [-1, 1]
};

// Nodes are the roots of P_n, found by Newton's method from Tricomi's initial guesses; weights
// 2 / ((1 - x^2) P_n'(x)^2).
GaussLegendreRule MakeGaussLegendreRule() {
  GaussLegendreRule rule;
  const double pi = std::acos(-1.0);
  for (int i = 0; i < kGaussNodes; ++i) {
    double root = std::cos(pi * (i + 0.75) / (kGaussNodes + 0.5));
    double derivative = 0;
    for (int newton = 0; newton < 100; ++newton) {
      double p_prev = 1, p = root;  // P_0, P_1
      for (int degree = 2; degree <= kGaussNodes; ++degree) {
        const double p_next = ((2 * degree - 1) * root * p - (degree - 1) * p_prev) / degree;
        p_prev = p;
        p = p_next;
      }
      derivative = kGaussNodes * (root * p - p_prev) / (root * root - 1);
      const double step = p / derivative;
      root -= step;
      if (std::fabs(step) < 1e-16) break;
    }
    rule.node[i] = root;
    rule.weight[i] = 2 / ((1 - root * root) * derivative * derivative);
  }
  return rule;
}

const GaussLegendreRule& Rule() {
  static const GaussLegendreRule rule = MakeGaussLegendreRule();
  return rule;
}

// Each panel is at most this long in units of the integrand's local decay length, so log f
// changes by at most this much across it (log f is convex and decreasing: the decay rate only
// falls along the panel).
constexpr double kMaxPanelLogDecay = 2;
// Safety cap; the panel rules below need well under 200 panels for any double-range input.
constexpr int kMaxPanels = 2000;

// Composite 12-point Gauss-Legendre on panels [t_j, t_j + L_j] of f(tau) = (alpha+tau)^-a1
// (beta+tau)^-b1, a1 = r + x, b1 = s + 1, with
//   L_j <= min(alpha, beta) + t_j   (the poles at -alpha, -beta are >= 3 half-panels away, so
//                                    the rule's error is below 1e-16 relative to the panel), and
//   L_j <= 2 / (a1/(alpha+t_j) + b1/(beta+t_j))  (f changes by at most e^2 on the panel).
// Panels grow geometrically where f is flat and stop once the monotone tail bound
// f(t_j) (T - t_j) is below 1e-17 of the sum. Values are relative to f(t_x) (no overflow); the
// derivatives are integrals of f times d log f, the derivative under the integral sign.
ParetoDeathTerm QuadratureDeathTerm(double r, double alpha, double s, double beta, double x,
                                    double t_x, double T, ParetoQuadratureCache* cache) {
  const GaussLegendreRule& rule = Rule();
  const double a1 = r + x, b1 = s + 1;
  const double alpha_tx = alpha + t_x, beta_tx = beta + t_x;
  const double log_alpha_tx = std::log(alpha_tx), log_beta_tx = std::log(beta_tx);
  const double log_f0 = -a1 * log_alpha_tx - b1 * log_beta_tx;
  auto log_f_ratio = [&](double tau) {  // log f(tau) - log f(t_x)
    return -a1 * std::log1p((tau - t_x) / alpha_tx) - b1 * std::log1p((tau - t_x) / beta_tx);
  };
  const double nearest_pole = std::min(alpha, beta);
  double sum = 0, sum_log_alpha = 0, sum_log_beta = 0, sum_inv_alpha = 0, sum_inv_beta = 0;
  double start = t_x;
  if (cache != nullptr && cache->valid && cache->x == x && cache->t_x == t_x && T >= cache->T) {
    start = cache->reached;
    sum = cache->sum;
    sum_log_alpha = cache->sum_log_alpha;
    sum_log_beta = cache->sum_log_beta;
    sum_inv_alpha = cache->sum_inv_alpha;
    sum_inv_beta = cache->sum_inv_beta;
  }
  for (int panel = 0; panel < kMaxPanels && start < T; ++panel) {
    if (sum > 0 && std::exp(log_f_ratio(start)) * (T - start) < 1e-17 * sum) break;
    const double rate = a1 / (alpha + start) + b1 / (beta + start);
    const double length = std::min({T - start, kMaxPanelLogDecay / rate, nearest_pole + start});
    const double half = 0.5 * length, mid = start + half;
    for (int k = 0; k < kGaussNodes; ++k) {
      const double tau = mid + half * rule.node[k];
      const double alpha_tau = alpha + tau, beta_tau = beta + tau;
      // log f(tau) - log f(t_x) from log1p: no cancellation when |log f| is large (big x).
      const double log1p_alpha = std::log1p((tau - t_x) / alpha_tx);
      const double log1p_beta = std::log1p((tau - t_x) / beta_tx);
      const double log_alpha_tau = log_alpha_tx + log1p_alpha;
      const double log_beta_tau = log_beta_tx + log1p_beta;
      const double f = half * rule.weight[k] * std::exp(-a1 * log1p_alpha - b1 * log1p_beta);
      sum += f;
      sum_log_alpha += f * log_alpha_tau;
      sum_log_beta += f * log_beta_tau;
      sum_inv_alpha += f / alpha_tau;
      sum_inv_beta += f / beta_tau;
    }
    const double end = start + length;
    if (!(end > start)) break;  // the panel vanished in rounding (cannot happen for T > t_x)
    start = end;
  }
  if (cache != nullptr) {
    *cache = ParetoQuadratureCache{
        true, x, t_x, T, start, sum, sum_log_alpha, sum_log_beta, sum_inv_alpha, sum_inv_beta};
  }
  ParetoDeathTerm death;
  death.log_value = std::log(s) + log_f0 + std::log(sum);
  death.d_r = -sum_log_alpha / sum;
  death.d_alpha = -a1 * sum_inv_alpha / sum;
  death.d_s = 1 / s - sum_log_beta / sum;
  death.d_beta = -b1 * sum_inv_beta / sum;
  return death;
}

}  // namespace

ParetoDeathTerm ComputeParetoDeathTerm(double r, double alpha, double s, double beta, double x,
                                       double t_x, double T, ParetoDeathMethod method,
                                       ParetoQuadratureCache* cache) {
  ParetoDeathTerm death{-INFINITY, 0, 0, 0, 0};
  if (!(T > t_x)) return death;
  if (method == ParetoDeathMethod::kQuadrature) {
    return QuadratureDeathTerm(r, alpha, s, beta, x, t_x, T, cache);
  }
  const SeriesSetup setup = SetUpSeries(r, alpha, s, beta, x, t_x, T);
  if (method == ParetoDeathMethod::kSeries) {
    SeriesDeathTerm(setup, s, t_x, T, 1e9, &death);
    return death;
  }
  // Terms grow while (b+n) z / (n+1) > 1, i.e. up to n ~ (b z - 1) / (1 - z), then shrink
  // like z^n: about (b z + 40) / (1 - z) terms reach 1e-17.
  const double estimated_terms = (setup.b * setup.z + 40) / (1 - setup.z);
  if (estimated_terms <= kParetoSeriesTermBudget &&
      SeriesDeathTerm(setup, s, t_x, T, 4 * kParetoSeriesTermBudget, &death)) {
    return death;
  }
  return QuadratureDeathTerm(r, alpha, s, beta, x, t_x, T, cache);
}

}  // namespace shoal::btyd_internal
