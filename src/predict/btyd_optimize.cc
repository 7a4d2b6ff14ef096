#include "predict/btyd_optimize.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

namespace shoal::btyd_internal {
namespace {

// LL and gradient w.r.t. u = log(params) (total, not mean).
double LogSpaceValue(const LogLikelihoodFn& fn, std::span<const double> u,
                     std::vector<double>* grad_u, int* evaluations) {
  std::vector<double> params(u.size()), grad(u.size());
  for (size_t k = 0; k < u.size(); ++k) params[k] = std::exp(u[k]);
  const double ll = fn(params, grad);
  ++*evaluations;
  grad_u->resize(u.size());
  for (size_t k = 0; k < u.size(); ++k) (*grad_u)[k] = grad[k] * params[k];
  return ll;
}

// Hessian of the total LL in u by forward differences of the analytic gradient from `grad_u`
// (the gradient at u): n evaluations. The O(step) error (~1e-5 relative) is far below what
// standard errors or a Newton step need.
bool LogSpaceHessian(const LogLikelihoodFn& fn, std::span<const double> u,
                     std::span<const double> grad_u, std::vector<double>* hessian,
                     int* evaluations) {
  const size_t n = u.size();
  const double step = 1e-5;
  hessian->assign(n * n, 0.0);
  std::vector<double> probe(u.begin(), u.end()), grad_plus;
  for (size_t j = 0; j < n; ++j) {
    probe[j] = u[j] + step;
    LogSpaceValue(fn, probe, &grad_plus, evaluations);
    probe[j] = u[j];
    for (size_t i = 0; i < n; ++i) {
      const double value = (grad_plus[i] - grad_u[i]) / step;
      if (!std::isfinite(value)) return false;
      (*hessian)[i * n + j] = value;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = i + 1; j < n; ++j) {
      const double avg = 0.5 * ((*hessian)[i * n + j] + (*hessian)[j * n + i]);
      (*hessian)[i * n + j] = (*hessian)[j * n + i] = avg;
    }
  }
  return true;
}

// BFGS and the Newton polish stop once the mean-LL gradient (log-parameters) is this fraction of
// the convergence tolerance.
constexpr double kGradientStop = 1e-3;
// Relative change of the log-likelihood treated as rounding noise by the line searches.
constexpr double kRoundingAllowance = 1e-14;

double MaxAbs(std::span<const double> values, double scale) {
  double result = 0;
  for (double value : values) result = std::max(result, std::fabs(value) / scale);
  return result;
}

}  // namespace

bool InvertNegativeDefinite(std::vector<double> m, size_t n, std::vector<double>* inverse) {
  // Cholesky of A = -m: A = L L^T.
  std::vector<double> lower(n * n, 0.0);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j <= i; ++j) {
      double sum = -m[i * n + j];
      for (size_t k = 0; k < j; ++k) sum -= lower[i * n + k] * lower[j * n + k];
      if (i == j) {
        if (!(sum > 0)) return false;
        lower[i * n + i] = std::sqrt(sum);
      } else {
        lower[i * n + j] = sum / lower[j * n + j];
      }
    }
  }
  // A^{-1} column by column; m^{-1} = -A^{-1}.
  inverse->assign(n * n, 0.0);
  std::vector<double> column(n);
  for (size_t col = 0; col < n; ++col) {
    for (size_t i = 0; i < n; ++i) {  // forward: L y = e_col
      double sum = (i == col) ? 1.0 : 0.0;
      for (size_t k = 0; k < i; ++k) sum -= lower[i * n + k] * column[k];
      column[i] = sum / lower[i * n + i];
    }
    for (size_t i = n; i-- > 0;) {  // backward: L^T z = y
      double sum = column[i];
      for (size_t k = i + 1; k < n; ++k) sum -= lower[k * n + i] * column[k];
      column[i] = sum / lower[i * n + i];
    }
    for (size_t i = 0; i < n; ++i) (*inverse)[i * n + col] = -column[i];
  }
  return true;
}

MleResult MaximizeLogLikelihood(const LogLikelihoodFn& log_likelihood, std::vector<double> start,
                                double total_weight, const BtydFitOptions& options,
                                const std::vector<double>& initial_inverse_hessian) {
  const size_t n = start.size();
  MleResult result;
  const double bound = options.max_abs_log_parameter;
  auto clamp_log = [bound](double value) { return std::clamp(value, -bound, bound); };
  std::vector<double> u(n);
  for (size_t k = 0; k < n; ++k) u[k] = clamp_log(std::log(start[k]));
  int evaluations = 0;
  // The budget is checked before each evaluation (each takes bounded time), so a fit stops
  // within one evaluation of running out.
  const auto started = std::chrono::steady_clock::now();
  std::string budget_message;
  auto budget_exhausted = [&]() {
    if (!budget_message.empty()) return true;
    if (options.max_evaluations > 0 && evaluations >= options.max_evaluations) {
      budget_message = "evaluation budget exhausted (" + std::to_string(options.max_evaluations) +
                       " evaluations)";
    } else if (options.max_seconds > 0 &&
               std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() >=
                   options.max_seconds) {
      budget_message = "time budget exhausted (" + std::to_string(options.max_seconds) + " s)";
    }
    return !budget_message.empty();
  };

  // BFGS on f(u) = -LL(exp(u)) / total_weight with an Armijo backtracking line search and a
  // dense inverse-Hessian approximation (n <= 4, so dense is cheapest).
  auto objective = [&](std::span<const double> point, std::vector<double>* grad) {
    const double ll = LogSpaceValue(log_likelihood, point, grad, &evaluations);
    for (double& component : *grad) component = -component / total_weight;
    bool finite = std::isfinite(ll);
    for (double component : *grad) finite = finite && std::isfinite(component);
    return finite ? -ll / total_weight : std::numeric_limits<double>::infinity();
  };
  std::vector<double> grad, next(n), next_grad, direction(n), step(n), change(n);
  double value = objective(u, &grad);
  if (!std::isfinite(value)) {
    result.params = start;
    result.log_likelihood = -std::numeric_limits<double>::infinity();
    result.evaluations = evaluations;
    result.message = "likelihood not finite at the starting point";
    return result;
  }
  std::vector<double> inverse_hessian(n * n, 0.0);
  for (size_t k = 0; k < n; ++k) inverse_hessian[k * n + k] = 1.0;
  bool scaled = false, stalled = false;
  if (initial_inverse_hessian.size() == n * n) {
    inverse_hessian = initial_inverse_hessian;
    scaled = true;
  }
  int iteration = 0;
  for (; iteration < options.max_iterations; ++iteration) {
    if (MaxAbs(grad, 1.0) < kGradientStop * options.gradient_tolerance) break;
    if (budget_exhausted()) break;
    double slope = 0;
    for (size_t i = 0; i < n; ++i) {
      direction[i] = 0;
      for (size_t j = 0; j < n; ++j) direction[i] -= inverse_hessian[i * n + j] * grad[j];
      slope += direction[i] * grad[i];
    }
    if (!(slope < 0)) {  // not a descent direction: restart from steepest descent
      for (size_t k = 0; k < n; ++k) {
        direction[k] = -grad[k];
        for (size_t j = 0; j < n; ++j) inverse_hessian[k * n + j] = k == j ? 1.0 : 0.0;
      }
      slope = 0;
      for (size_t k = 0; k < n; ++k) slope -= grad[k] * grad[k];
      scaled = false;
    }
    // Keep a trial step within 5 log-units (a factor e^5) per parameter.
    double alpha = std::min(1.0, 5.0 / std::max(MaxAbs(direction, 1.0), 1e-300));
    double next_value = 0;
    bool accepted = false;
    for (int halving = 0; halving < 40 && !budget_exhausted(); ++halving) {
      for (size_t k = 0; k < n; ++k) next[k] = clamp_log(u[k] + alpha * direction[k]);
      next_value = objective(next, &next_grad);
      // Armijo, with a rounding allowance: near the optimum the mean LL changes below its own
      // rounding error and a strict test would reject every step.
      if (std::isfinite(next_value) &&
          next_value <= value + 1e-4 * alpha * slope + kRoundingAllowance * std::fabs(value)) {
        accepted = true;
        break;
      }
      alpha *= std::isfinite(next_value) ? 0.5 : 0.1;
    }
    if (!accepted) {
      stalled = budget_message.empty();
      break;
    }
    double curvature = 0, change_norm = 0;
    for (size_t k = 0; k < n; ++k) {
      step[k] = next[k] - u[k];
      change[k] = next_grad[k] - grad[k];
      curvature += step[k] * change[k];
      change_norm += change[k] * change[k];
    }
    const double previous_value = value;
    u = next;
    value = next_value;
    grad = next_grad;
    if (curvature > 1e-16 * change_norm && curvature > 0) {
      if (!scaled) {  // first update: scale the identity to the observed curvature
        for (size_t k = 0; k < n; ++k) {
          for (size_t j = 0; j < n; ++j)
            inverse_hessian[k * n + j] = k == j ? curvature / change_norm : 0;
        }
        scaled = true;
      }
      // H <- (I - rho s y^T) H (I - rho y s^T) + rho s s^T
      const double rho = 1 / curvature;
      std::vector<double> hy(n, 0.0);
      double yhy = 0;
      for (size_t i = 0; i < n; ++i) {
        for (size_t j = 0; j < n; ++j) hy[i] += inverse_hessian[i * n + j] * change[j];
        yhy += change[i] * hy[i];
      }
      for (size_t i = 0; i < n; ++i) {
        for (size_t j = 0; j < n; ++j) {
          inverse_hessian[i * n + j] += -rho * (hy[i] * step[j] + step[i] * hy[j]) +
                                        (rho * rho * yhy + rho) * step[i] * step[j];
        }
      }
    }
    if (std::fabs(previous_value - value) <= options.relative_tolerance * std::fabs(value) &&
        MaxAbs(step, 1.0) < 1e-8) {
      break;
    }
  }
  const bool hit_cap = iteration >= options.max_iterations;
  if (!budget_message.empty()) {
    // Out of budget: report the best point so far, unpolished and without standard errors.
    result.params.resize(n);
    for (size_t k = 0; k < n; ++k) result.params[k] = std::exp(u[k]);
    result.log_likelihood = -value * total_weight;
    result.evaluations = evaluations;
    result.max_abs_gradient = MaxAbs(grad, 1.0);
    result.converged = false;
    result.std_errors.assign(n, std::numeric_limits<double>::quiet_NaN());
    result.message = "BFGS " + std::to_string(iteration) + " iterations; " + budget_message;
    return result;
  }
  result.message = "BFGS " + std::to_string(iteration) + " iterations" +
                   (hit_cap ? " (iteration cap reached)" : "") +
                   (stalled ? " (line search stalled)" : "");

  // Newton polish in u: the optimum is smooth and low-dimensional, so a few exact-ish Newton
  // steps take L-BFGS's answer to machine precision of the gradient.
  std::vector<double> grad_u, hessian, inverse, trial(n), trial_grad;
  std::vector<double> last_hessian, last_hessian_at;
  double ll = LogSpaceValue(log_likelihood, u, &grad_u, &evaluations);
  for (int newton_step = 0; newton_step < 8 && std::isfinite(ll); ++newton_step) {
    if (MaxAbs(grad_u, total_weight) < kGradientStop * options.gradient_tolerance) break;
    if (budget_exhausted()) break;
    if (!LogSpaceHessian(log_likelihood, u, grad_u, &hessian, &evaluations)) break;
    last_hessian = hessian;
    last_hessian_at = u;
    if (!InvertNegativeDefinite(hessian, n, &inverse)) break;
    std::vector<double> direction(n, 0.0);  // -H^{-1} g
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < n; ++j) direction[i] -= inverse[i * n + j] * grad_u[j];
    }
    bool improved = false;
    for (double damping = 1.0; damping > 1e-4 && !budget_exhausted(); damping *= 0.5) {
      for (size_t k = 0; k < n; ++k) trial[k] = clamp_log(u[k] + damping * direction[k]);
      const double trial_ll = LogSpaceValue(log_likelihood, trial, &trial_grad, &evaluations);
      if (std::isfinite(trial_ll) && trial_ll >= ll - kRoundingAllowance * std::fabs(ll)) {
        u = trial;
        ll = trial_ll;
        grad_u = trial_grad;
        improved = true;
        break;
      }
    }
    if (!improved) break;
  }

  result.params.resize(n);
  for (size_t k = 0; k < n; ++k) result.params[k] = std::exp(u[k]);
  result.log_likelihood = ll;
  result.evaluations = evaluations;
  result.max_abs_gradient = MaxAbs(grad_u, total_weight);
  bool on_bound = false;
  // Within 1e-3 of the bound (0.1% of the parameter) counts: the optimum ran into it.
  for (size_t k = 0; k < n; ++k) on_bound = on_bound || std::fabs(u[k]) >= bound - 1e-3;
  if (on_bound) {
    char limit[32];
    std::snprintf(limit, sizeof limit, "%.3g", std::exp(bound));
    result.message += std::string("; a parameter is at its bound (") + limit +
                      " or its inverse): the data do not pin it down";
  }
  if (!budget_message.empty()) result.message += "; " + budget_message;
  result.converged = std::isfinite(ll) && !hit_cap && !on_bound && budget_message.empty() &&
                     result.max_abs_gradient < options.gradient_tolerance;
  result.std_errors.assign(n, std::numeric_limits<double>::quiet_NaN());
  // The last Newton Hessian serves when it was taken within 1e-3 (in log-parameters) of the
  // optimum: standard errors change by O(1e-3) relative at most; else compute it afresh.
  bool have_hessian = false;
  if (!last_hessian.empty()) {
    double moved = 0;
    for (size_t k = 0; k < n; ++k) moved = std::max(moved, std::fabs(u[k] - last_hessian_at[k]));
    if (moved < 1e-3) {
      hessian = last_hessian;
      have_hessian = true;
    }
  }
  if (options.compute_std_errors && std::isfinite(ll) && !have_hessian && !budget_exhausted()) {
    have_hessian = LogSpaceHessian(log_likelihood, u, grad_u, &hessian, &evaluations);
  }
  if (options.compute_std_errors && have_hessian && InvertNegativeDefinite(hessian, n, &inverse)) {
    for (size_t k = 0; k < n; ++k) {
      result.std_errors[k] = result.params[k] * std::sqrt(-inverse[k * n + k]);
    }
  }
  if (have_hessian) {
    result.mean_hessian = hessian;
    for (double& entry : result.mean_hessian) entry /= total_weight;
  }
  result.evaluations = evaluations;
  return result;
}

std::vector<double> SeedInverseHessian(const MleResult& subsample_fit) {
  const size_t n = subsample_fit.params.size();
  std::vector<double> inverse;
  if (subsample_fit.mean_hessian.size() != n * n ||
      !InvertNegativeDefinite(subsample_fit.mean_hessian, n, &inverse)) {
    return {};
  }
  for (double& entry : inverse) entry = -entry;  // inverse Hessian of the mean NEGATIVE LL
  return inverse;
}

BtydInputSummary SummarizeRows(std::span<const RfmSummaryRow> rows, size_t distinct_rows) {
  BtydInputSummary summary;
  summary.distinct_rows = distinct_rows;
  double sum_T = 0;
  for (const RfmSummaryRow& row : rows) {
    summary.customers += row.weight;
    if (row.x > 0) summary.repeat_buyers += row.weight;
    summary.repeat_purchases += row.weight * row.x;
    summary.max_x = std::max(summary.max_x, row.x);
    summary.max_T = std::max(summary.max_T, row.T);
    sum_T += row.weight * row.T;
  }
  summary.mean_T = summary.customers > 0 ? sum_T / summary.customers : 0;
  return summary;
}

std::vector<RfmSummaryRow> MergeOnRecencyFrequency(std::span<const RfmSummaryRow> rows) {
  auto less = [](const RfmSummaryRow& lhs, const RfmSummaryRow& rhs) {
    if (lhs.x != rhs.x) return lhs.x < rhs.x;
    if (lhs.t_x != rhs.t_x) return lhs.t_x < rhs.t_x;
    return lhs.T < rhs.T;
  };
  std::vector<RfmSummaryRow> sorted(rows.begin(), rows.end());
  if (!std::is_sorted(sorted.begin(), sorted.end(), less)) {
    std::sort(sorted.begin(), sorted.end(), less);
  }
  std::vector<RfmSummaryRow> merged;
  merged.reserve(sorted.size());
  for (const RfmSummaryRow& row : sorted) {
    if (!merged.empty() && merged.back().x == row.x && merged.back().t_x == row.t_x &&
        merged.back().T == row.T) {
      merged.back().weight += row.weight;
    } else {
      merged.push_back(row);
    }
  }
  return merged;
}

PreparedRows Prepare(std::span<const RfmSummaryRow> rows) {
  PreparedRows prepared;
  GroupByX(
      rows.size(), [&](size_t idx) { return rows[idx].x; }, &prepared.distinct_x,
      &prepared.x_group);
  prepared.t_x.reserve(rows.size());
  prepared.T.reserve(rows.size());
  prepared.weight.reserve(rows.size());
  prepared.distinct_times.reserve(2 * rows.size());
  for (const RfmSummaryRow& row : rows) {
    prepared.distinct_times.push_back(row.t_x);
    prepared.distinct_times.push_back(row.T);
  }
  std::sort(prepared.distinct_times.begin(), prepared.distinct_times.end());
  prepared.distinct_times.erase(
      std::unique(prepared.distinct_times.begin(), prepared.distinct_times.end()),
      prepared.distinct_times.end());
  auto time_index = [&](double value) {
    return static_cast<uint32_t>(
        std::lower_bound(prepared.distinct_times.begin(), prepared.distinct_times.end(), value) -
        prepared.distinct_times.begin());
  };
  prepared.t_x_idx.reserve(rows.size());
  prepared.T_idx.reserve(rows.size());
  for (const RfmSummaryRow& row : rows) {
    prepared.t_x.push_back(row.t_x);
    prepared.T.push_back(row.T);
    prepared.weight.push_back(row.weight);
    prepared.t_x_idx.push_back(time_index(row.t_x));
    prepared.T_idx.push_back(time_index(row.T));
  }
  return prepared;
}

}  // namespace shoal::btyd_internal
