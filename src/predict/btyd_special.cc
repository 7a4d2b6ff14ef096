#include "predict/btyd_special.h"

#include <boost/math/special_functions/beta.hpp>
#include <boost/math/special_functions/digamma.hpp>
#include <limits>

namespace shoal::btyd_internal {

double Digamma(double x) { return boost::math::digamma(x); }

double Hyp2F1(double a, double b, double c, double z) {
  if (!(z >= 0 && z < 1) || !(c > 0)) return std::numeric_limits<double>::quiet_NaN();
  double term = 1.0;
  double sum = 1.0;
  for (int n = 0; n < 5'000'000; ++n) {
    const double ratio = (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z;
    term *= ratio;
    sum += term;
    if (term == 0.0) break;
    // Stop when the geometric bound on the remaining tail is negligible.
    if (std::fabs(ratio) < 1.0 &&
        std::fabs(term) < 1e-17 * (1.0 - std::fabs(ratio)) * std::fabs(sum)) {
      break;
    }
  }
  return sum;
}

double NegBinomialUpperTail(double k, double r, double q) {
  if (k <= 0) return 1.0;
  if (q <= 0) return 0.0;
  return boost::math::ibeta(k, r, q);
}

}  // namespace shoal::btyd_internal
