// Special functions for the BTYD models: thread-safe log-gamma, digamma, log-beta, a two-term
// log-sum-exp, and the Gauss hypergeometric 2F1 series on 0 <= z < 1.
#pragma once

#include <cmath>

namespace shoal::btyd_internal {

// log|Gamma(x)|, thread-safe (glibc lgamma_r; std::lgamma writes the global signgam).
inline double LogGamma(double x) {
  int sign = 0;
  return ::lgamma_r(x, &sign);
}

// psi(x) = d/dx log Gamma(x) for x > 0 (Boost.Math).
double Digamma(double x);

// log B(a, b) = log Gamma(a) + log Gamma(b) - log Gamma(a + b).
inline double LogBeta(double a, double b) { return LogGamma(a) + LogGamma(b) - LogGamma(a + b); }

// log(exp(u) + exp(v)) without overflow; -inf operands allowed.
inline double LogSumExp(double u, double v) {
  const double high = u > v ? u : v;
  if (high == -INFINITY) return -INFINITY;
  return high + std::log1p(std::exp(-std::fabs(u - v)));
}

// 2F1(a, b; c; z) by its power series for real a, b, c (c > 0) and 0 <= z < 1, summed until
// the terms are below 1e-17 of the sum and shrinking. Slow (many terms) only as z -> 1 with
// c - a - b small; capped at 5,000,000 terms. Returns NaN outside the domain.
double Hyp2F1(double a, double b, double c, double z);

// P(Y >= k) for Y ~ NegativeBinomial with P(Y = j) = Gamma(r+j)/(Gamma(r) j!) (1-q)^r q^j,
// i.e. the regularised incomplete beta I_q(k, r) (Boost.Math), precise in the far tail.
double NegBinomialUpperTail(double k, double r, double q);

}  // namespace shoal::btyd_internal
