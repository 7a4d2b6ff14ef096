#include "predict/btyd_clv.h"

#include <cmath>
#include <limits>

namespace shoal {
namespace {

template <typename ExpectedFn>
double DiscountedPurchases(const ExpectedFn& expected_purchases, const ClvOptions& options) {
  if (options.periods < 0 || !(options.period_length > 0) || !(options.discount_rate > -1)) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  double value = 0, previous = 0, discount = 1;
  for (int period = 1; period <= options.periods; ++period) {
    const double cumulative = expected_purchases(period * options.period_length);
    discount /= 1 + options.discount_rate;
    value += (cumulative - previous) * discount;
    previous = cumulative;
  }
  return value;
}

}  // namespace

double BgNbdDiscountedPurchases(const BgNbdParams& purchases, double x, double t_x, double T,
                                const ClvOptions& options) {
  return DiscountedPurchases(
      [&](double t) { return BgNbdExpectedPurchases(purchases, x, t_x, T, t); }, options);
}

double ParetoNbdDiscountedPurchases(const ParetoNbdParams& purchases, double x, double t_x,
                                    double T, const ClvOptions& options) {
  return DiscountedPurchases(
      [&](double t) { return ParetoNbdExpectedPurchases(purchases, x, t_x, T, t); }, options);
}

double BgNbdClv(const BgNbdParams& purchases, const GammaGammaParams& spend, double x, double t_x,
                double T, double mean_value, const ClvOptions& options) {
  return options.margin * GammaGammaExpectedValue(spend, x, mean_value) *
         BgNbdDiscountedPurchases(purchases, x, t_x, T, options);
}

double ParetoNbdClv(const ParetoNbdParams& purchases, const GammaGammaParams& spend, double x,
                    double t_x, double T, double mean_value, const ClvOptions& options) {
  return options.margin * GammaGammaExpectedValue(spend, x, mean_value) *
         ParetoNbdDiscountedPurchases(purchases, x, t_x, T, options);
}

}  // namespace shoal
