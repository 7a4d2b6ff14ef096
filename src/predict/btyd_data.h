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

// One customer (or `weight` identical customers).
//   x          repeat purchases in the calibration period (purchases after the first), an
//              integer >= 0;
//   t_x        time of the last repeat purchase, measured from the first purchase (0 if x = 0);
//   T          length of observation, from the first purchase to the end of calibration;
//   weight     number of identical customers this row stands for (> 0);
//   mean_value mean value of the x repeat purchases (Gamma-Gamma input; 0 when unknown/x = 0).
// Times are in one unit chosen by the caller (weeks in the literature); fitted scale
// parameters (alpha, beta, gamma) are in that unit.
struct RfmSummaryRow {
  double x = 0;
  double t_x = 0;
  double T = 0;
  double weight = 1;
  double mean_value = 0;
};

// Rows sorted by (x, t_x, T, mean_value) with exact duplicates merged; total_weight is the
// number of customers. Fitting functions accept any row order; this order lets them merge
// rows that differ only in mean_value (which BG/NBD and Pareto/NBD ignore).
struct CompressedRfm {
  std::vector<RfmSummaryRow> rows;
  double total_weight = 0;
};

// Merges exactly identical (x, t_x, T, mean_value) customers. `mean_value` may be empty (all 0).
// Uses up to ctx.Threads() threads for the sort; the output does not depend on the thread count.
// Returns InvalidArgument if the spans differ in length or any value is invalid (see
// ValidateRfmRows).
Result<CompressedRfm> CompressRfm(std::span<const double> x, std::span<const double> t_x,
                                  std::span<const double> T, std::span<const double> mean_value,
                                  const Context& ctx = {});

// Checks every row: finite values, x a non-negative integer, 0 <= t_x <= T, T > 0, weight > 0,
// t_x = 0 when x = 0 is NOT required (it is ignored). Returns InvalidArgument naming the first
// bad row and the number of bad rows.
Status ValidateRfmRows(const CompressedRfm& data);

// What went into a fit, for diagnostics.
struct BtydInputSummary {
  double customers = 0;          // sum of weights
  size_t distinct_rows = 0;      // rows actually evaluated per likelihood call
  double repeat_buyers = 0;      // customers with x > 0
  double repeat_purchases = 0;   // sum of x
  double max_x = 0;
  double max_T = 0;
  double mean_T = 0;
};

// Options shared by the BTYD maximum-likelihood fits.
struct BtydFitOptions {
  // Cap on likelihood+gradient evaluations by the optimiser (NLopt L-BFGS).
  int max_evaluations = 3000;
  // Stop when the mean log-likelihood changes by less than this (relative) between iterations.
  double relative_tolerance = 1e-13;
  // Converged means: optimiser stopped on a tolerance (not on the evaluation cap) and the largest
  // gradient component of the mean log-likelihood w.r.t. log-parameters is below this.
  double gradient_tolerance = 1e-5;
  // Compute standard errors from the inverse of a numerical Hessian of the analytic gradient.
  bool compute_std_errors = true;
  // Starting point in natural parameters (model order); empty = a data-driven default.
  std::vector<double> initial;
};

}  // namespace shoal
