// Customer-level BTYD ("buy till you die") input: the (x, t_x, T) recency/frequency summary,
// compressed so that identical customers are evaluated once with an integer weight.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "common/context.h"
#include "common/status.h"

namespace shoal {

// One customer (or `weight` identical customers) of the purchase process.
//   x          repeat purchases in the calibration period (purchases after the first), an
//              integer >= 0;
//   t_x        time of the last repeat purchase, measured from the first purchase (0 if x = 0);
//   T          length of observation, from the first purchase to the end of calibration;
//   weight     number of identical customers this row stands for (> 0).
// Times are in one unit chosen by the caller (weeks in the literature); fitted scale
// parameters (alpha, beta) are in that unit.
struct RfmSummaryRow {
  double x = 0;
  double t_x = 0;
  double T = 0;
  double weight = 1;
};

// One repeat buyer (or `weight` identical ones) for the Gamma-Gamma spend model:
//   x          repeat purchases (> 0);
//   mean_value mean value of those x repeat purchases (must be > 0 to fit).
struct SpendRow {
  double x = 0;
  double mean_value = 0;
  double weight = 1;
};

// The input of the BTYD fits.
//   rows   purchase-process rows, sorted by (x, t_x, T), identical rows merged (CompressRfm);
//   spend  Gamma-Gamma rows of the repeat buyers. CompressRfm keeps one row per repeat buyer in
//          input order: mean values are continuous, so merging them rarely pays;
//   total_weight  number of customers (sum of rows' weights).
// Fitting functions accept rows in any order and merge duplicates themselves.
struct CompressedRfm {
  std::vector<RfmSummaryRow> rows;
  std::vector<SpendRow> spend;
  double total_weight = 0;
};

// Builds a CompressedRfm from per-customer columns in one pass. Customers with identical
// (x, t_x, T) are merged by hash grouping, then the distinct rows are sorted, so the output does
// not depend on the input order. Every customer with x > 0 gets a spend row with its mean_value
// (0 if `mean_value` is empty, which FitGammaGamma rejects), in input order. Uses up to
// ctx.Threads() threads on contiguous customer ranges merged in order, so the output does not
// depend on the thread count. Returns InvalidArgument if the spans differ in length or a value
// is invalid (see ValidateRfmRows), naming the first bad customer.
Result<CompressedRfm> CompressRfm(std::span<const double> x, std::span<const double> t_x,
                                  std::span<const double> T, std::span<const double> mean_value,
                                  const Context& ctx = {});

// Checks every row: finite values, x a non-negative integer, 0 <= t_x <= T, T > 0, weight > 0,
// t_x = 0 when x = 0 is NOT required (it is ignored). Returns InvalidArgument naming the first
// bad row and the number of bad rows.
Status ValidateRfmRows(const CompressedRfm& data);

// What went into a fit, for diagnostics.
struct BtydInputSummary {
  double customers = 0;         // sum of weights
  size_t distinct_rows = 0;     // rows actually evaluated per likelihood call
  double repeat_buyers = 0;     // customers with x > 0
  double repeat_purchases = 0;  // sum of x
  double max_x = 0;
  double max_T = 0;
  double mean_T = 0;
};

// Options shared by the BTYD maximum-likelihood fits.
struct BtydFitOptions {
  // Cap on BFGS iterations (each costs one or a few likelihood+gradient evaluations).
  int max_iterations = 500;
  // BFGS stops when the mean log-likelihood changes by less than this (relative) and the step is
  // below 1e-8 in log-parameters, or the gradient is below gradient_tolerance / 1000; up to 8
  // Newton steps on a numerical Hessian then polish the optimum.
  double relative_tolerance = 1e-12;
  // Converged means: no cap was hit and the largest gradient component of the mean
  // log-likelihood w.r.t. log-parameters is below this at the end.
  double gradient_tolerance = 1e-6;
  // Compute standard errors from the inverse of a numerical Hessian of the analytic gradient.
  bool compute_std_errors = true;
  // Starting point in natural parameters (model order); empty = a data-driven default.
  std::vector<double> initial;
  // Budget on likelihood+gradient evaluations over the whole fit (warm-start subsample, BFGS,
  // Newton polish, Hessian); 0 = no cap. When it runs out the fit returns its best point so far
  // with converged = false and optimizer_message saying "evaluation budget exhausted".
  int max_evaluations = 5000;
  // Wall-time budget in seconds (steady clock, checked between evaluations); 0 = none. When it
  // runs out: converged = false, optimizer_message says "time budget exhausted". Off by default
  // because a wall budget makes the result depend on the machine's load.
  double max_seconds = 0;
  // Every parameter is kept within [exp(-b), exp(b)] with b = max_abs_log_parameter (the
  // optimiser works in log-parameters). The default, 25, allows 1.4e-11 .. 7.2e10: any sane
  // scale in any time unit; a fit that ends on the bound is reported as not converged.
  double max_abs_log_parameter = 25;
};

}  // namespace shoal
