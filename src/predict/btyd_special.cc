#include "predict/btyd_special.h"

#include <boost/math/special_functions/beta.hpp>
#include <boost/math/special_functions/digamma.hpp>
#include <boost/math/special_functions/gamma.hpp>
#include <algorithm>
#include <cmath>
#include <limits>

namespace shoal::btyd_internal {

double Digamma(double x) { return boost::math::digamma(x); }

namespace {

// Hard cap on the terms of any one power series: reaching it returns NaN instead of hanging.
constexpr int kMaxSeriesTerms = 2'000'000;
// c - a - b closer than this to an integer is the logarithmic (limiting) case of the connection
// formula (ConnectionNearInteger).
constexpr double kNearIntegerWidth = 5e-3;
// The power series is used for z at most this, and above it when all its terms have one sign
// and it needs at most kDirectSeriesMaxTerms terms (about 0.3 ms); else the connection formula.
constexpr double kSeriesMaxZ = 0.5;
constexpr double kDirectSeriesMaxTerms = 100'000;
constexpr double kRescaleAt = 1e200;
constexpr double kLogRescale = 460.517018598809136804;  // ln(1e200)

// value = sign * exp(log_abs), sign in {-1, 0, +1}; a NaN log_abs marks a failure.
struct Scaled {
  double log_abs = 0;
  double sign = 1;
};

constexpr Scaled kZero{-INFINITY, 0};

Scaled Failure() { return {std::numeric_limits<double>::quiet_NaN(), 1}; }

bool IsNonPositiveInteger(double x) { return x <= 0 && x == std::floor(x); }

// log|Gamma(x)| with the sign of Gamma(x) in *sign; x not a nonpositive integer.
double LogAbsGamma(double x, double* sign) {
  int s = 1;
  const double value = ::lgamma_r(x, &s);
  *sign = s < 0 ? -1.0 : 1.0;
  return value;
}

// log|Gamma(x) / Gamma(y)| with the sign of the ratio in *sign; neither a nonpositive integer.
// For x, y > 0 Boost's tgamma_ratio keeps ~1e-15 relative where the difference of two lgamma
// values near 1e3 (each ~6e3 with an absolute error ~1e-12) would not; lgamma otherwise.
double LogAbsGammaRatio(double x, double y, double* sign) {
  using Policy = boost::math::policies::policy<
      boost::math::policies::overflow_error<boost::math::policies::ignore_error>,
      boost::math::policies::underflow_error<boost::math::policies::ignore_error>,
      boost::math::policies::domain_error<boost::math::policies::ignore_error>,
      boost::math::policies::evaluation_error<boost::math::policies::ignore_error>,
      boost::math::policies::pole_error<boost::math::policies::ignore_error>>;
  // Gamma(x) = Gamma(x + k) / (x (x+1) ... (x+k-1)): shift negative arguments above 0.
  double shift_log = 0, shift_sign = 1;
  for (int k = 0; x <= 0 && k < 64; ++k) {
    shift_log -= std::log(std::fabs(x));
    shift_sign *= x < 0 ? -1 : 1;
    x += 1;
  }
  for (int k = 0; y <= 0 && k < 64; ++k) {
    shift_log += std::log(std::fabs(y));
    shift_sign *= y < 0 ? -1 : 1;
    y += 1;
  }
  if (x > 0 && y > 0) {
    const double ratio = boost::math::tgamma_ratio(x, y, Policy());
    if (std::isfinite(ratio) && ratio > 1e-300 && ratio < 1e300) {
      *sign = shift_sign;
      return shift_log + std::log(ratio);
    }
  }
  double s_x = 1, s_y = 1;
  const double value = LogAbsGamma(x, &s_x) - LogAbsGamma(y, &s_y);
  *sign = shift_sign * s_x * s_y;
  return shift_log + value;
}

Scaled Add(Scaled u, Scaled v) {
  if (std::isnan(u.log_abs) || std::isnan(v.log_abs)) return Failure();
  if (u.sign == 0) return v;
  if (v.sign == 0) return u;
  const double high = std::max(u.log_abs, v.log_abs);
  const double sum = u.sign * std::exp(u.log_abs - high) + v.sign * std::exp(v.log_abs - high);
  if (sum == 0) return kZero;
  return {high + std::log(std::fabs(sum)), sum > 0 ? 1.0 : -1.0};
}

// sum_n (a)_n (b)_n / ((c)_n n!) z^n for |z| < 1, c not a nonpositive integer, rescaled as it
// grows. Stops when past every sign change of the factors the geometric bound on the tail
// (ratio max(|term ratio|, |z|)) is below 1e-17 of the sum, or when a term is exactly 0
// (terminating series); NaN after kMaxSeriesTerms terms.
Scaled PowerSeries(double a, double b, double c, double z) {
  double term = 1, sum = 1, log_scale = 0;
  const double last_sign_change = std::max({-a, -b, -c, 0.0});
  for (int n = 0; n < kMaxSeriesTerms; ++n) {
    const double ratio = (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z;
    term *= ratio;
    sum += term;
    if (term == 0.0) break;
    if (std::fabs(sum) > kRescaleAt || std::fabs(term) > kRescaleAt) {
      term /= kRescaleAt;
      sum /= kRescaleAt;
      log_scale += kLogRescale;
    }
    const double q = std::max(std::fabs(ratio), std::fabs(z));
    if (n > last_sign_change && q < 1 &&
        std::fabs(term) * q < 1e-17 * (1 - q) * std::fabs(sum)) {
      break;
    }
    if (n + 1 == kMaxSeriesTerms) return Failure();
  }
  if (!std::isfinite(sum)) return Failure();
  if (sum == 0) return kZero;
  return {log_scale + std::log(std::fabs(sum)), sum > 0 ? 1.0 : -1.0};
}

// Gauss connection formula to w = 1 - z (DLMF 15.8.4 / 15.10.21) for c - a - b not an integer:
//   F = G(c)G(d)/(G(c-a)G(c-b)) F(a, b; 1-d; w) + w^d G(c)G(-d)/(G(a)G(b)) F(c-a, c-b; 1+d; w)
// with d = c - a - b and the gamma ratios in log space (1/G at a pole is 0). The two parts are
// returned separately: *regular = first, *singular = second without its factor w^(d - m), m an
// integer given by the caller (0 for the plain formula).
void ConnectionParts(double a, double b, double c, double z, double m, Scaled* regular,
                     Scaled* singular) {
  const double w = 1 - z;
  const double d = c - a - b;
  *regular = kZero;
  *singular = kZero;
  double s_1 = 1, s_2 = 1;
  if (!IsNonPositiveInteger(c - a) && !IsNonPositiveInteger(c - b)) {
    // Pair Gamma(c) with the nearer denominator argument: that ratio stays moderate.
    const double near = std::fabs(a) <= std::fabs(b) ? c - a : c - b;
    const double far = std::fabs(a) <= std::fabs(b) ? c - b : c - a;
    const double log_g = LogAbsGammaRatio(c, near, &s_1) + LogAbsGammaRatio(d, far, &s_2);
    const Scaled series = PowerSeries(a, b, 1 - d, w);
    *regular = {log_g + series.log_abs, s_1 * s_2 * series.sign};
  }
  if (!IsNonPositiveInteger(a) && !IsNonPositiveInteger(b)) {
    const double near = std::fabs(c - a) <= std::fabs(c - b) ? a : b;
    const double far = std::fabs(c - a) <= std::fabs(c - b) ? b : a;
    const double log_g = LogAbsGammaRatio(c, near, &s_1) + LogAbsGammaRatio(-d, far, &s_2);
    const Scaled series = PowerSeries(c - a, c - b, 1 + d, w);
    *singular = {log_g + m * std::log(w) + series.log_abs, s_1 * s_2 * series.sign};
  }
}

Scaled Connection(double a, double b, double c, double z) {
  Scaled regular, singular;
  const double d = c - a - b;
  ConnectionParts(a, b, c, z, d, &regular, &singular);
  return Add(regular, singular);
}

// Connection formula for d = c - a - b = m + eps, |eps| small (the logarithmic case, where
// both parts have poles at eps = 0 that cancel). With R(e), S(e) the parts at c = a+b+m+e,
//   F = R + w^e S = U(e) + V(e) expm1(e ln w) / e,   U = R + S,   V = e S,
// and U, V are analytic in e with derivatives free of ln w; both are interpolated (degree 5)
// from e = -/+ h, -/+ 2h, -/+ 3h, where the pole cancellation costs ~log10(1/h) digits.
Scaled ConnectionNearInteger(double a, double b, double z, double m, double eps) {
  constexpr int kNodes = 6;
  constexpr double h = 2e-3;
  const double nodes[kNodes] = {-3 * h, -2 * h, -h, h, 2 * h, 3 * h};
  Scaled regular[kNodes], singular[kNodes];
  double high = -INFINITY;
  for (int k = 0; k < kNodes; ++k) {
    ConnectionParts(a, b, a + b + m + nodes[k], z, m, &regular[k], &singular[k]);
    if (std::isnan(regular[k].log_abs) || std::isnan(singular[k].log_abs)) return Failure();
    if (regular[k].sign != 0) high = std::max(high, regular[k].log_abs);
    if (singular[k].sign != 0) high = std::max(high, singular[k].log_abs);
  }
  if (high == -INFINITY) return kZero;
  double u = 0, v = 0;
  for (int k = 0; k < kNodes; ++k) {
    double weight = 1;
    for (int j = 0; j < kNodes; ++j) {
      if (j != k) weight *= (eps - nodes[j]) / (nodes[k] - nodes[j]);
    }
    const double r = regular[k].sign * std::exp(regular[k].log_abs - high);
    const double s = singular[k].sign * std::exp(singular[k].log_abs - high);
    u += weight * (r + s);
    v += weight * nodes[k] * s;
  }
  const double log_w = std::log(1 - z);
  const double e_factor = eps == 0 ? log_w : std::expm1(eps * log_w) / eps;
  const double sum = u + v * e_factor;
  if (sum == 0) return kZero;
  return {high + std::log(std::fabs(sum)), sum > 0 ? 1.0 : -1.0};
}

// Terms the power series needs at z for parameters p, q, c > 0: the growth phase (ratio above
// 1, about (p+q-c-1) z/(1-z) terms) plus the geometric tail to 1e-17 (about 40/(1-z) terms).
double EstimatedSeriesTerms(double p, double q, double c, double z) {
  return std::max(0.0, p + q - c - 1) * z / (1 - z) + 40 / (1 - z);
}

Scaled LogHyp2F1(double a, double b, double c, double z) {
  if (!(z >= 0 && z < 1) || !(c > 0) || !std::isfinite(a) || !std::isfinite(b) ||
      !std::isfinite(c)) {
    return Failure();
  }
  if (z == 0 || a == 0 || b == 0) return {0, 1};
  const double d = c - a - b;
  const double log_euler = d * std::log1p(-z);  // F = (1-z)^d F(c-a, c-b; c; z) (Euler)
  // Prefer a form whose terms all have one sign: no cancellation in the series.
  const bool original_positive = a > 0 && b > 0;
  const bool euler_positive = c - a > 0 && c - b > 0;
  const bool use_euler = !original_positive && euler_positive;
  const double p = use_euler ? c - a : a, q = use_euler ? c - b : b;
  if (z <= kSeriesMaxZ ||
      ((original_positive || euler_positive) &&
       EstimatedSeriesTerms(p, q, c, z) <= kDirectSeriesMaxTerms)) {
    Scaled s = PowerSeries(p, q, c, z);
    if (use_euler) s.log_abs += log_euler;
    return s;
  }
  // z near 1: connection formula on the form with c - a - b >= 0 (its regular part dominates).
  if (d < 0) {
    Scaled s = LogHyp2F1(c - a, c - b, c, z);
    s.log_abs += log_euler;
    return s;
  }
  const double m = std::round(d);
  const double eps = d - m;
  if (std::fabs(eps) >= kNearIntegerWidth) return Connection(a, b, c, z);
  return ConnectionNearInteger(a, b, z, m, eps);
}

}  // namespace

double Hyp2F1(double a, double b, double c, double z) { return Hyp2F1Scaled(0.0, a, b, c, z); }

double Hyp2F1Scaled(double log_prefactor, double a, double b, double c, double z) {
  const Scaled value = LogHyp2F1(a, b, c, z);
  if (std::isnan(value.log_abs) || std::isnan(log_prefactor)) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  if (value.sign == 0) return 0.0;
  return value.sign * std::exp(value.log_abs + log_prefactor);
}

double NegBinomialUpperTail(double k, double r, double q) {
  if (k <= 0) return 1.0;
  if (q <= 0) return 0.0;
  return boost::math::ibeta(k, r, q);
}

}  // namespace shoal::btyd_internal
