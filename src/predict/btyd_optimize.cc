#include "predict/btyd_optimize.h"

#include <nlopt.h>

#include <cmath>
#include <limits>

namespace shoal::btyd_internal {
namespace {

struct NloptState {
  const LogLikelihoodFn* log_likelihood;
  double total_weight;
  size_t dim;
  int evaluations = 0;
  std::vector<double> params;
  std::vector<double> grad;
};

// Negative mean LL in log-parameter space, for NLopt (which minimises).
double NegativeMeanLogLikelihood(unsigned n, const double* u, double* grad_u, void* data) {
  auto* state = static_cast<NloptState*>(data);
  ++state->evaluations;
  for (unsigned k = 0; k < n; ++k) state->params[k] = std::exp(u[k]);
  const double ll = (*state->log_likelihood)(state->params, state->grad);
  bool finite = std::isfinite(ll);
  for (unsigned k = 0; k < n && finite; ++k) finite = std::isfinite(state->grad[k]);
  if (!finite) {
    // Outside the numerically representable region: a large value makes the line search back off.
    if (grad_u != nullptr) {
      for (unsigned k = 0; k < n; ++k) grad_u[k] = 0;
    }
    return 1e300;
  }
  if (grad_u != nullptr) {
    for (unsigned k = 0; k < n; ++k) {
      grad_u[k] = -state->grad[k] * state->params[k] / state->total_weight;
    }
  }
  return -ll / state->total_weight;
}

// LL and gradient w.r.t. u = log(params) (total, not mean).
double LogSpaceValue(const LogLikelihoodFn& fn, std::span<const double> u, std::vector<double>* grad_u,
                     int* evaluations) {
  std::vector<double> params(u.size()), grad(u.size());
  for (size_t k = 0; k < u.size(); ++k) params[k] = std::exp(u[k]);
  const double ll = fn(params, grad);
  ++*evaluations;
  grad_u->resize(u.size());
  for (size_t k = 0; k < u.size(); ++k) (*grad_u)[k] = grad[k] * params[k];
  return ll;
}

// Hessian of the total LL in u by central differences of the analytic gradient.
bool LogSpaceHessian(const LogLikelihoodFn& fn, std::span<const double> u, std::vector<double>* hessian,
                     int* evaluations) {
  const size_t n = u.size();
  const double step = 1e-5;
  hessian->assign(n * n, 0.0);
  std::vector<double> probe(u.begin(), u.end()), grad_plus, grad_minus;
  for (size_t j = 0; j < n; ++j) {
    probe[j] = u[j] + step;
    LogSpaceValue(fn, probe, &grad_plus, evaluations);
    probe[j] = u[j] - step;
    LogSpaceValue(fn, probe, &grad_minus, evaluations);
    probe[j] = u[j];
    for (size_t i = 0; i < n; ++i) {
      const double value = (grad_plus[i] - grad_minus[i]) / (2 * step);
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
                                double total_weight, const BtydFitOptions& options) {
  const size_t n = start.size();
  MleResult result;
  std::vector<double> u(n);
  for (size_t k = 0; k < n; ++k) u[k] = std::log(start[k]);

  NloptState state{&log_likelihood, total_weight, n, 0, std::vector<double>(n),
                   std::vector<double>(n)};
  nlopt_opt opt = nlopt_create(NLOPT_LD_LBFGS, static_cast<unsigned>(n));
  std::vector<double> lower(n, -30.0), upper(n, 30.0);
  nlopt_set_lower_bounds(opt, lower.data());
  nlopt_set_upper_bounds(opt, upper.data());
  nlopt_set_min_objective(opt, &NegativeMeanLogLikelihood, &state);
  nlopt_set_ftol_rel(opt, options.relative_tolerance);
  nlopt_set_xtol_rel(opt, 1e-12);
  nlopt_set_maxeval(opt, options.max_evaluations);
  nlopt_set_vector_storage(opt, 20);
  double best = 0;
  const nlopt_result code = nlopt_optimize(opt, u.data(), &best);
  nlopt_destroy(opt);
  int evaluations = state.evaluations;
  const bool hit_cap = code == NLOPT_MAXEVAL_REACHED || code == NLOPT_MAXTIME_REACHED;
  result.message = "nlopt L-BFGS code " + std::to_string(static_cast<int>(code));

  // Newton polish in u: the optimum is smooth and low-dimensional, so a few exact-ish Newton
  // steps take L-BFGS's answer to machine precision of the gradient.
  std::vector<double> grad_u, hessian, inverse, trial(n), trial_grad;
  double ll = LogSpaceValue(log_likelihood, u, &grad_u, &evaluations);
  for (int newton_step = 0; newton_step < 8 && std::isfinite(ll); ++newton_step) {
    if (MaxAbs(grad_u, total_weight) < 1e-12) break;
    if (!LogSpaceHessian(log_likelihood, u, &hessian, &evaluations)) break;
    if (!InvertNegativeDefinite(hessian, n, &inverse)) break;
    std::vector<double> direction(n, 0.0);  // -H^{-1} g
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < n; ++j) direction[i] -= inverse[i * n + j] * grad_u[j];
    }
    bool improved = false;
    for (double damping = 1.0; damping > 1e-4; damping *= 0.5) {
      for (size_t k = 0; k < n; ++k) trial[k] = u[k] + damping * direction[k];
      const double trial_ll = LogSpaceValue(log_likelihood, trial, &trial_grad, &evaluations);
      if (std::isfinite(trial_ll) && trial_ll >= ll) {
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
  const bool nlopt_ok = code > 0 || code == NLOPT_ROUNDOFF_LIMITED;
  result.converged = std::isfinite(ll) && !hit_cap && nlopt_ok &&
                     result.max_abs_gradient < options.gradient_tolerance;
  result.std_errors.assign(n, std::numeric_limits<double>::quiet_NaN());
  if (options.compute_std_errors && std::isfinite(ll) &&
      LogSpaceHessian(log_likelihood, u, &hessian, &evaluations) &&
      InvertNegativeDefinite(hessian, n, &inverse)) {
    for (size_t k = 0; k < n; ++k) {
      result.std_errors[k] = result.params[k] * std::sqrt(-inverse[k * n + k]);
    }
  }
  result.evaluations = evaluations;
  return result;
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
      merged.back().mean_value = 0;
    }
  }
  return merged;
}

PreparedRows Prepare(std::span<const RfmSummaryRow> rows) {
  PreparedRows prepared;
  for (const RfmSummaryRow& row : rows) prepared.distinct_x.push_back(row.x);
  std::sort(prepared.distinct_x.begin(), prepared.distinct_x.end());
  prepared.distinct_x.erase(std::unique(prepared.distinct_x.begin(), prepared.distinct_x.end()),
                            prepared.distinct_x.end());
  prepared.x_group.reserve(rows.size());
  prepared.t_x.reserve(rows.size());
  prepared.T.reserve(rows.size());
  prepared.weight.reserve(rows.size());
  for (const RfmSummaryRow& row : rows) {
    const auto it = std::lower_bound(prepared.distinct_x.begin(), prepared.distinct_x.end(), row.x);
    prepared.x_group.push_back(static_cast<uint32_t>(it - prepared.distinct_x.begin()));
    prepared.t_x.push_back(row.t_x);
    prepared.T.push_back(row.T);
    prepared.weight.push_back(row.weight);
  }
  return prepared;
}

}  // namespace shoal::btyd_internal
