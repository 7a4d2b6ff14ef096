// Hyp2F1 (btyd_special.h) against independent references: a long-double power series summed to
// convergence (with rescaling), closed forms, and the BG/NBD conditional expectation shapes that
// used to hang; plus a time bound per evaluation.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <vector>

#include "predict/bgnbd.h"
#include "predict/btyd_special.h"

namespace shoal {
namespace {

using btyd_internal::Hyp2F1;
using btyd_internal::Hyp2F1Scaled;

// log 2F1(a, b; c; z) for a, b, c > 0 and 0 <= z < 1: every term is positive, so the plain
// series in long double is accurate; rescaled so that huge values do not overflow.
long double ReferenceLog2F1(long double a, long double b, long double c, long double z) {
  long double term = 1, sum = 1, log_scale = 0;
  for (long n = 0; n < 100'000'000L; ++n) {
    const long double ratio = (a + n) * (b + n) / ((c + n) * (n + 1)) * z;
    term *= ratio;
    sum += term;
    if (sum > 1e300L) {
      term /= 1e300L;
      sum /= 1e300L;
      log_scale += std::log(1e300L);
    }
    const long double q = std::max(ratio, z);
    if (q < 1 && term * q < 1e-22L * (1 - q) * sum) break;
  }
  return log_scale + std::log(sum);
}

// Relative error of Hyp2F1 against exp(log_reference), compared in log space.
double RelativeError(double a, double b, double c, double z, long double log_reference) {
  const double ratio = Hyp2F1Scaled(-static_cast<double>(log_reference), a, b, c, z);
  return std::fabs(ratio - 1);
}

// Tolerance: 1e-12, widened by the rounding of a large log reference to a double.
double Tolerance(long double log_reference) {
  return 1e-12 + 4e-16 * std::fabs(static_cast<double>(log_reference));
}

TEST(Hyp2F1Test, ClosedFormLogarithm) {
  // 2F1(1, 1; 2; z) = -ln(1 - z) / z: c - a - b = 0, the logarithmic case.
  for (double z : {0.0, 1e-8, 0.3, 0.5, 0.7, 0.9, 0.99, 0.999, 0.9999, 1 - 1e-6, 1 - 1e-10}) {
    const double expected = z == 0 ? 1.0 : -std::log1p(-z) / z;
    EXPECT_NEAR(Hyp2F1(1, 1, 2, z) / expected, 1.0, 1e-12) << "z=" << z;
  }
}

TEST(Hyp2F1Test, ClosedFormPower) {
  // 2F1(a, b; b; z) = (1 - z)^-a: c - a - b = -a, integer for integer a.
  for (double a : {0.3, 1.0, 2.5, 7.0, 40.2, 1000.0}) {
    for (double b : {0.7, 3.0, 50.5, 999.9}) {
      for (double z : {0.2, 0.6, 0.9, 0.99, 0.999, 1 - 1e-6}) {
        const double scaled = Hyp2F1Scaled(a * std::log1p(-z), a, b, b, z);
        EXPECT_NEAR(scaled, 1.0, 1e-12 + 1e-15 * a * std::fabs(std::log1p(-z)))
            << "a=" << a << " b=" << b << " z=" << z;
      }
    }
  }
}

TEST(Hyp2F1Test, ClosedFormArcsine) {
  // 2F1(1/2, 1/2; 3/2; x^2) = asin(x) / x.
  for (double x : {0.1, 0.5, 0.8, 0.9, 0.99, 0.999, 0.9999999}) {
    EXPECT_NEAR(Hyp2F1(0.5, 0.5, 1.5, x * x) / (std::asin(x) / x), 1.0, 1e-12) << "x=" << x;
  }
}

TEST(Hyp2F1Test, MatchesLongDoubleSeriesOnGrid) {
  const double params[] = {0.05, 0.7, 1.0, 3.2, 45.0, 1000.0};
  const double lowers[] = {0.3, 1.5, 2.0, 20.1, 1000.7};
  int checked = 0;
  for (double a : params) {
    for (double b : params) {
      if (b < a) continue;  // symmetric in a, b
      for (double c : lowers) {
        for (double z : {0.1, 0.5, 0.7, 0.9, 0.99, 0.999, 0.9999}) {
          if (a * b / c > (z > 0.999 ? 30 : 1e4) && z > 0.99) continue;  // keep the reference series affordable
          const long double reference = ReferenceLog2F1(a, b, c, z);
          // Known weak spot: c - a - b within 5e-3 of an integer with a parameter near 1e3 and
          // z > 0.9999 (the interpolated logarithmic case) is good to ~2e-10 only.
          const double d = c - a - b;
          const bool weak = std::fabs(d - std::round(d)) < 5e-3 && std::max(a, b) >= 100 &&
                            z > 0.999;
          EXPECT_LT(RelativeError(a, b, c, z, reference), weak ? 3e-10 : Tolerance(reference))
              << "a=" << a << " b=" << b << " c=" << c << " z=" << z;
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 500);
}

TEST(Hyp2F1Test, EulerTransformedNegativeParameters) {
  // Negative (non-integer) a or b: the reference is Euler's transform to positive parameters,
  // 2F1(a, b; c; z) = (1-z)^(c-a-b) 2F1(c-a, c-b; c; z) with c - a, c - b > 0; the c - a - b
  // of the last case is 3.0 (the logarithmic case of the connection formula).
  struct Case {
    double a, b, c;
  };
  for (Case k : {Case{-0.4, 1.0, 1.5}, Case{-3.7, 0.5, 2.2}, Case{-40.5, 10.0, 12.5},
                 Case{-0.9, -0.2, 0.6}, Case{-999.5, 20.0, 25.2}, Case{-2.5, 7.0, 7.5}}) {
    for (double z : {0.3, 0.6, 0.9, 0.99, 0.999}) {
      const long double reference = (k.c - k.a - k.b) * std::log1p(-static_cast<long double>(z)) +
                                    ReferenceLog2F1(k.c - k.a, k.c - k.b, k.c, z);
      const double value = Hyp2F1Scaled(-static_cast<double>(reference), k.a, k.b, k.c, z);
      // The sign of 2F1 equals the sign of the positive-parameter form times (1-z)^d > 0.
      EXPECT_NEAR(value, 1.0, Tolerance(reference) * 10)
          << "a=" << k.a << " b=" << k.b << " c=" << k.c << " z=" << z;
    }
  }
}

TEST(Hyp2F1Test, NearIntegerBandOfTheConnectionFormula) {
  // c - a - b = m + eps around the logarithmic case, z so close to 1 that the connection
  // formula is used; the reference series has up to ~4 million positive terms.
  const double a = 1.3, b = 0.6;
  for (double m : {0.0, 1.0, 3.0}) {
    for (double eps : {0.0, 1e-9, -1e-6, 1e-4, -1e-3, 4.9e-3, -4.9e-3, 5.1e-3, 0.2}) {
      const double c = a + b + m + eps;
      for (double z : {0.9999, 0.99999}) {
        const long double reference = ReferenceLog2F1(a, b, c, z);
        EXPECT_LT(RelativeError(a, b, c, z, reference), 1e-12)
            << "m=" << m << " eps=" << eps << " z=" << z;
      }
    }
  }
}

TEST(Hyp2F1Test, TerminatingSeries) {
  // 2F1(-2, b; c; z) = 1 - 2bz/c + b(b+1)z^2/(c(c+1)).
  for (double z : {0.5, 0.9, 0.999}) {
    const double b = 3.5, c = 1.25;
    const double expected = 1 - 2 * b * z / c + b * (b + 1) * z * z / (c * (c + 1));
    EXPECT_NEAR(Hyp2F1(-2, b, c, z), expected, 1e-13 * std::fabs(expected) + 1e-15);
  }
}

TEST(Hyp2F1Test, BgNbdShapesMatchReference) {
  // BG/NBD: (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z) = (1-z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z).
  struct Params {
    double r, a, b;
  };
  for (Params p : {Params{0.243, 0.793, 2.426}, Params{0.05, 0.02, 400.0}, Params{5.0, 0.3, 900.0},
                   Params{30.0, 2.0, 3.0}, Params{0.5, 12.0, 0.8}, Params{1.0, 1.0 + 1e-5, 5.0},
                   Params{2.0, 3.0, 1.0}}) {
    for (double x : {0.0, 1.0, 2.0, 7.0, 40.0}) {
      if (p.a + p.b + x - 1 <= 0) continue;
      for (double z : {0.2, 0.6, 0.9, 0.99, 0.999, 0.9999, 0.99999}) {
        const long double reference =
            (p.r + x) * std::log1p(-static_cast<long double>(z)) +
            ReferenceLog2F1(p.r + x, p.b + x, p.a + p.b + x - 1, z);
        const double value =
            Hyp2F1Scaled((p.a - 1) * std::log1p(-z), p.a + p.b - 1 - p.r, p.a - 1,
                         p.a + p.b + x - 1, z);
        EXPECT_NEAR(value / std::exp(static_cast<double>(reference)), 1.0, 1e-11)
            << "r=" << p.r << " a=" << p.a << " b=" << p.b << " x=" << x << " z=" << z;
      }
    }
  }
}

TEST(Hyp2F1Test, BgNbdExtremeParametersAreFastAndBounded) {
  // Shapes that made the old series hang: alpha small against t, z -> 1, a small, b large.
  const std::vector<BgNbdParams> params = {{0.05, 0.01, 0.02, 400.0}, {5.0, 0.001, 0.3, 900.0},
                                           {0.2, 1e-4, 0.01, 50.0},   {40.0, 0.5, 60.0, 0.4},
                                           {0.243, 4.414, 0.793, 2.426}};
  const auto start = std::chrono::steady_clock::now();
  int evaluations = 0;
  for (const BgNbdParams& p : params) {
    for (double x : {0.0, 1.0, 3.0, 20.0}) {
      for (double t : {1.0, 12.86, 39.0, 52.0, 90.0 / 7}) {
        const double T = 10.0 + x, t_x = x > 0 ? 0.5 * T : 0.0;
        const double expected = BgNbdExpectedPurchases(p, x, t_x, T, t);
        ++evaluations;
        EXPECT_TRUE(std::isfinite(expected)) << p.r << " " << p.alpha << " " << p.a << " " << p.b;
        EXPECT_GE(expected, 0.0);
        // E[X(t)] is at most the expectation with no dropout, (r+x) t / (alpha+T).
        EXPECT_LE(expected, (p.r + x) * t / (p.alpha + T) * (1 + 1e-9));
      }
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds / evaluations, 1e-3);
}

TEST(Hyp2F1Test, TimePerEvaluationIsBounded) {
  const double params[] = {0.02, 0.5, 1.0, 2.7, 30.0, 400.0, 1000.0};
  const double zs[] = {0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1 - 1e-6, 1 - 1e-10};
  const auto start = std::chrono::steady_clock::now();
  int evaluations = 0;
  double checksum = 0;
  for (double a : params) {
    for (double b : params) {
      for (double c : {0.5, 2.0, 3.3, 100.0, 1000.5}) {
        for (double z : zs) {
          const double value = Hyp2F1Scaled(-(c - a - b > 0 ? 0 : (c - a - b)) * 0, a, b, c, z);
          checksum += std::isnan(value) ? 1 : 0;
          ++evaluations;
        }
      }
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("Hyp2F1: %d evaluations, %.2f us each on average\n", evaluations,
              1e6 * seconds / evaluations);
  EXPECT_EQ(checksum, 0.0);  // no evaluation hit the term cap
  EXPECT_LT(seconds / evaluations, 1e-3);
}

}  // namespace
}  // namespace shoal
