// Internal machinery shared by the BTYD fits: a deterministic blocked sum over customer rows and
// a maximum-likelihood driver in log-parameter space (BFGS + Newton polish + standard errors).
// Not part of the public API.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/parallel.h"
#include "predict/btyd_data.h"

namespace shoal::btyd_internal {

// Rows per block of the deterministic sum. Fixed, so partial sums (and therefore the result to
// the last bit) do not depend on the thread count.
inline constexpr size_t kRowsPerBlock = 2048;

// Sums row_fn(row_idx, grad_acc) -> log-likelihood contribution over [0, n), where row_fn adds
// its gradient into grad_acc (K entries). Blocks run on up to `threads` workers; partials are
// merged in block order. Returns the total and writes the summed gradient to *grad if non-null.
template <size_t K, typename RowFn>
double BlockedSum(size_t n, int threads, const RowFn& row_fn, std::array<double, K>* grad) {
  const size_t blocks = (n + kRowsPerBlock - 1) / kRowsPerBlock;
  std::vector<double> block_value(blocks, 0.0);
  std::vector<std::array<double, K>> block_grad(blocks);
  ParallelFor(
      blocks, threads,
      [&](size_t begin, size_t end, int) {
        for (size_t block_idx = begin; block_idx < end; ++block_idx) {
          std::array<double, K> acc{};
          double value = 0;
          const size_t row_end = std::min(n, (block_idx + 1) * kRowsPerBlock);
          for (size_t row_idx = block_idx * kRowsPerBlock; row_idx < row_end; ++row_idx) {
            value += row_fn(row_idx, acc);
          }
          block_value[block_idx] = value;
          block_grad[block_idx] = acc;
        }
      },
      1);
  double total = 0;
  std::array<double, K> total_grad{};
  for (size_t block_idx = 0; block_idx < blocks; ++block_idx) {
    total += block_value[block_idx];
    for (size_t k = 0; k < K; ++k) total_grad[k] += block_grad[block_idx][k];
  }
  if (grad != nullptr) *grad = total_grad;
  return total;
}

// Total weighted log-likelihood at natural parameters `params`; writes dLL/dparams to `grad`.
// May return a non-finite value outside the model's domain.
using LogLikelihoodFn =
    std::function<double(std::span<const double> params, std::span<double> grad)>;

struct MleResult {
  std::vector<double> params;
  double log_likelihood = 0;
  int evaluations = 0;
  bool converged = false;
  std::vector<double> std_errors;  // NaN when the Hessian is not negative definite
  double max_abs_gradient = 0;     // of the mean LL w.r.t. log-parameters, at the end
  std::string message;
  std::vector<double> mean_hessian;  // of the mean LL in log-parameters (n x n), if computed
};

// Maximises `log_likelihood` over positive parameters, optimising u = log(params) with BFGS
// (Armijo backtracking) on the mean LL (divided by `total_weight`), then up to 8 damped Newton
// steps on a
// numerical Hessian (forward differences of the analytic gradient) to polish. Standard errors:
// sqrt of the diagonal of the inverse negative Hessian of the total LL in u, mapped to natural
// parameters by the delta method (se(theta) = theta * se(u)).
// `initial_inverse_hessian` (n x n, of the mean NEGATIVE LL in log-parameters; empty = identity)
// seeds BFGS, e.g. from a fit on a subsample.
// Guards: log-parameters stay within +-options.max_abs_log_parameter; options.max_evaluations
// and options.max_seconds are checked before every evaluation, and when one runs out the best
// point so far is returned with converged = false and the budget named in `message`.
MleResult MaximizeLogLikelihood(const LogLikelihoodFn& log_likelihood, std::vector<double> start,
                                double total_weight, const BtydFitOptions& options,
                                const std::vector<double>& initial_inverse_hessian = {});

// Inputs with more rows than this are fitted with a warm start (FitWithWarmStart) from a fit on
// about kWarmStartSampleRows of them.
inline constexpr size_t kWarmStartRows = 20000;
inline constexpr size_t kWarmStartSampleRows = 15000;

// Every k-th row (weights kept; deterministic): about min(kWarmStartSampleRows, rows / 4) rows.
template <typename Row>
std::vector<Row> StrideSubsample(std::span<const Row> rows) {
  const size_t target = std::max<size_t>(1, std::min(kWarmStartSampleRows, rows.size() / 4));
  const size_t stride = (rows.size() + target - 1) / target;
  std::vector<Row> sample;
  sample.reserve(rows.size() / stride + 1);
  for (size_t row_idx = 0; row_idx < rows.size(); row_idx += stride)
    sample.push_back(rows[row_idx]);
  return sample;
}

// -(mean_hessian)^{-1}: the BFGS seed from a subsample's MleResult; empty if not invertible.
std::vector<double> SeedInverseHessian(const MleResult& subsample_fit);

// Maximum likelihood over `rows`. make_log_likelihood(span<const Row>) returns a LogLikelihoodFn
// (owning whatever it prepared). With more than kWarmStartRows rows and no user start, a fit on
// a stride subsample first supplies the starting point and the BFGS inverse-Hessian seed (the
// mean-LL Hessian barely depends on the sample size), so the full data are evaluated only a few
// times; the optimum is still the full-data MLE.
template <typename Row, typename MakeLogLikelihood>
MleResult FitWithWarmStart(std::span<const Row> rows, std::vector<double> start,
                           const BtydFitOptions& options,
                           const MakeLogLikelihood& make_log_likelihood) {
  double total_weight = 0;
  for (const Row& row : rows) total_weight += row.weight;
  std::vector<double> seed;
  int subsample_evaluations = 0;
  BtydFitOptions full_options = options;
  if (rows.size() > kWarmStartRows && options.initial.empty()) {
    const std::vector<Row> sample = StrideSubsample<Row>(rows);
    double sample_weight = 0;
    for (const Row& row : sample) sample_weight += row.weight;
    BtydFitOptions sample_options = options;
    sample_options.compute_std_errors = true;  // its Hessian seeds the full fit
    const auto sample_started = std::chrono::steady_clock::now();
    const MleResult warm = MaximizeLogLikelihood(make_log_likelihood(std::span<const Row>(sample)),
                                                 start, sample_weight, sample_options);
    subsample_evaluations = warm.evaluations;
    // The budgets cover the whole fit: the full-data fit gets what the subsample left (at least
    // one evaluation, so the result is evaluated on the full data).
    if (options.max_evaluations > 0) {
      full_options.max_evaluations = std::max(1, options.max_evaluations - warm.evaluations);
    }
    if (options.max_seconds > 0) {
      const double spent =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - sample_started).count();
      full_options.max_seconds = std::max(1e-9, options.max_seconds - spent);
    }
    bool finite = std::isfinite(warm.log_likelihood);
    for (double value : warm.params) finite = finite && std::isfinite(value) && value > 0;
    if (finite) {
      start = warm.params;
      seed = SeedInverseHessian(warm);
    }
  }
  MleResult result =
      MaximizeLogLikelihood(make_log_likelihood(rows), start, total_weight, full_options, seed);
  if (subsample_evaluations > 0) {
    result.message += "; warm start from a " + std::to_string(StrideSubsample<Row>(rows).size()) +
                      "-row subsample (" + std::to_string(subsample_evaluations) +
                      " evaluations there)";
  }
  return result;
}

// FitWithWarmStart for a model with K parameters whose likelihood runs on prepared rows:
// `prepare(rows)` builds the model's precomputed rows once per row set (the full data and the
// warm-start subsample), and `log_likelihood(theta, prepared, gradient, threads)` evaluates it at
// natural parameters theta (K values), writing dLL/dtheta into *gradient.
template <size_t K, typename Row, typename Prepare, typename LogLikelihood>
MleResult FitPreparedModel(std::span<const Row> rows, std::vector<double> start,
                           const BtydFitOptions& options, int threads, const Prepare& prepare,
                           const LogLikelihood& log_likelihood) {
  auto make_log_likelihood = [&prepare, &log_likelihood, threads](std::span<const Row> subset) {
    auto prepared = std::make_shared<const decltype(prepare(subset))>(prepare(subset));
    return LogLikelihoodFn([prepared, log_likelihood, threads](std::span<const double> theta,
                                                               std::span<double> grad) {
      std::array<double, K> g{};
      const double ll = log_likelihood(theta, *prepared, &g, threads);
      std::copy(g.begin(), g.end(), grad.begin());
      return ll;
    });
  };
  return FitWithWarmStart<Row>(rows, std::move(start), options, make_log_likelihood);
}

// Copies an MleResult's diagnostics into a model's fit (BgNbdFit, ParetoNbdFit, GammaGammaFit;
// the caller sets `params`).
template <typename Fit>
void CopyDiagnostics(const MleResult& mle, Fit* fit) {
  fit->log_likelihood = mle.log_likelihood;
  fit->iterations = mle.evaluations;
  fit->converged = mle.converged;
  fit->max_abs_gradient = mle.max_abs_gradient;
  std::copy(mle.std_errors.begin(), mle.std_errors.end(), fit->std_errors.begin());
  fit->optimizer_message = mle.message;
}

// Inverse of a symmetric negative-definite matrix (row-major, n x n) via Cholesky of -m.
// Returns false if -m is not positive definite.
bool InvertNegativeDefinite(std::vector<double> m, size_t n, std::vector<double>* inverse);

// Summary of the input rows for fit diagnostics.
BtydInputSummary SummarizeRows(std::span<const RfmSummaryRow> rows, size_t distinct_rows);

// Rows sorted by (x, t_x, T) with equal rows merged (weights summed).
std::vector<RfmSummaryRow> MergeOnRecencyFrequency(std::span<const RfmSummaryRow> rows);

// Distinct values of the (integer-valued, validated) repeat counts x_of(0..n-1), sorted, and each
// row's index into them. Small counts (the usual case) use a direct table: O(n), no sort.
template <typename XOf>
void GroupByX(size_t n, const XOf& x_of, std::vector<double>* distinct,
              std::vector<uint32_t>* group) {
  constexpr double kDirectLimit = 1 << 20;
  double max_x = 0;
  for (size_t idx = 0; idx < n; ++idx) max_x = std::max(max_x, x_of(idx));
  distinct->clear();
  group->resize(n);
  if (max_x < kDirectLimit) {
    std::vector<uint32_t> index_of(static_cast<size_t>(max_x) + 1, 0);  // 0 = unseen, else idx+1
    for (size_t idx = 0; idx < n; ++idx) index_of[static_cast<size_t>(x_of(idx))] = 1;
    for (size_t value = 0; value < index_of.size(); ++value) {
      if (index_of[value] != 0) {
        distinct->push_back(static_cast<double>(value));
        index_of[value] = static_cast<uint32_t>(distinct->size());
      }
    }
    for (size_t idx = 0; idx < n; ++idx) {
      (*group)[idx] = index_of[static_cast<size_t>(x_of(idx))] - 1;
    }
    return;
  }
  for (size_t idx = 0; idx < n; ++idx) distinct->push_back(x_of(idx));
  std::sort(distinct->begin(), distinct->end());
  distinct->erase(std::unique(distinct->begin(), distinct->end()), distinct->end());
  for (size_t idx = 0; idx < n; ++idx) {
    (*group)[idx] = static_cast<uint32_t>(
        std::lower_bound(distinct->begin(), distinct->end(), x_of(idx)) - distinct->begin());
  }
}

// Rows in structure-of-arrays form with each row's index into the sorted table of distinct x
// values, so x-only special functions are evaluated once per distinct x per likelihood call,
// and into the sorted table of distinct time values (t_x and T), so log(alpha + time) is
// evaluated once per distinct time (order logs have day-resolution times: a few hundred values).
struct PreparedRows {
  std::vector<double> distinct_x;
  std::vector<uint32_t> x_group;
  std::vector<double> t_x, T, weight;
  std::vector<double> distinct_times;
  std::vector<uint32_t> t_x_idx, T_idx;
};
PreparedRows Prepare(std::span<const RfmSummaryRow> rows);

}  // namespace shoal::btyd_internal
