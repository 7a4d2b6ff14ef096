// Customer lifetime value from a fitted purchase model (BG/NBD or Pareto/NBD) and the
// Gamma-Gamma spend model, by discounted cash flow over a finite horizon.
#pragma once

#include "predict/bgnbd.h"
#include "predict/gamma_gamma.h"
#include "predict/pareto_nbd.h"

namespace shoal {

struct ClvOptions {
  // Number of periods in the horizon.
  int periods = 12;
  // Length of one period in the model's time unit (default: a month, when time is in weeks).
  double period_length = 52.0 / 12.0;
  // Share of the order value kept as profit (1 = revenue CLV).
  double margin = 1.0;
  // Discount rate per period; cash of period k is divided by (1 + discount_rate)^k.
  double discount_rate = 0.01;
};

// CLV = sum_{k=1..periods} margin * V * (E[Y(k L)] - E[Y((k-1) L)]) / (1 + d)^k, where
// E[Y(t)] is the model's conditional expected purchases in (T, T+t], L = period_length,
// V = GammaGammaExpectedValue(spend, x, mean_value), and purchases of a period are valued at its
// end. Pure and thread-safe; returns NaN for periods < 0, period_length <= 0 or
// discount_rate <= -1.
// sum_{k=1..periods} (E[Y(k L)] - E[Y((k-1) L)]) / (1 + d)^k: the discounted expected number of
// purchases over the horizon (CLV = margin * V * this). NaN for invalid options (as above).
double BgNbdDiscountedPurchases(const BgNbdParams& purchases, double x, double t_x, double T,
                                const ClvOptions& options = {});
double ParetoNbdDiscountedPurchases(const ParetoNbdParams& purchases, double x, double t_x,
                                    double T, const ClvOptions& options = {});

double BgNbdClv(const BgNbdParams& purchases, const GammaGammaParams& spend, double x, double t_x,
                double T, double mean_value, const ClvOptions& options = {});
double ParetoNbdClv(const ParetoNbdParams& purchases, const GammaGammaParams& spend, double x,
                    double t_x, double T, double mean_value, const ClvOptions& options = {});

}  // namespace shoal
