// Special functions for the BTYD models: thread-safe log-gamma, digamma, log-beta, a two-term
// log-sum-exp, and the Gauss hypergeometric 2F1 on 0 <= z < 1.
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

// 2F1(a, b; c; z) for real a, b, c (c > 0) and 0 <= z < 1, to about 1e-12 relative, in
// bounded time for every z in [0, 1):
//  - z <= 0.5, or z <= 0.999 with c - a - b within 5e-4 of an integer: the power series (on the
//    Euler-transformed 2F1(c-a, c-b; c; z) (1-z)^(c-a-b) when that removes sign changes);
//  - otherwise (after Euler's transform so that c - a - b >= 0) the Gauss connection formula
//    to 1 - z with the gamma factors in log space; when c - a - b is within 5e-4 of an integer
//    m (the limiting, logarithmic case) the value is the cubic interpolation, in c, of the
//    connection formula at c - a - b = m -/+ 5e-4, m -/+ 1e-3 (F is analytic in c).
// Every series is summed with a running rescale (no overflow) and a hard cap of 2,000,000
// terms; hitting the cap returns NaN (never a hang). Returns NaN outside the domain, +-inf when
// the value itself overflows a double (use Hyp2F1Scaled then).
double Hyp2F1(double a, double b, double c, double z);

// exp(log_prefactor) * 2F1(a, b; c; z), formed in log space so that a tiny prefactor times a
// huge 2F1 (e.g. (1-z)^(a-1) 2F1 with large a and z near 1) neither overflows nor gives 0*inf.
double Hyp2F1Scaled(double log_prefactor, double a, double b, double c, double z);

// P(Y >= k) for Y ~ NegativeBinomial with P(Y = j) = Gamma(r+j)/(Gamma(r) j!) (1-q)^r q^j,
// i.e. the regularised incomplete beta I_q(k, r) (Boost.Math), precise in the far tail.
double NegBinomialUpperTail(double k, double r, double q);

}  // namespace shoal::btyd_internal
