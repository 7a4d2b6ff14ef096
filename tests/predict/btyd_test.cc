// BTYD models against the literature (CDNOW 1/10th sample) and against brute-force references.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "cdnow_data.h"
#include "predict/bgnbd.h"
#include "predict/btyd_clv.h"
#include "predict/btyd_data.h"
#include "predict/btyd_fit.h"
#include "predict/btyd_score.h"
#include "predict/gamma_gamma.h"
#include "predict/pareto_nbd.h"

namespace shoal {
namespace {

using testing_cdnow::CdnowCustomer;

CompressedRfm ToRfm(const std::vector<CdnowCustomer>& customers) {
  std::vector<double> x, t_x, T, value;
  for (const CdnowCustomer& c : customers) {
    x.push_back(c.x);
    t_x.push_back(c.t_x);
    T.push_back(c.T);
    value.push_back(c.mean_value);
  }
  Result<CompressedRfm> rfm = CompressRfm(x, t_x, T, value);
  EXPECT_TRUE(rfm.ok()) << rfm.status().ToString();
  return std::move(rfm).value();
}

// Uncompressed: one row per customer, in file order.
std::vector<RfmSummaryRow> ToRows(const std::vector<CdnowCustomer>& customers) {
  std::vector<RfmSummaryRow> rows;
  for (const CdnowCustomer& c : customers) rows.push_back({c.x, c.t_x, c.T, 1.0});
  return rows;
}

void ExpectRelativeNear(double actual, double expected, double relative, const std::string& what) {
  EXPECT_NEAR(actual, expected, relative * std::fabs(expected)) << what;
}

// --- data ------------------------------------------------------------------------------------

TEST(CdnowSummary, BuiltFromElogEqualsPublishedSummary) {
  const std::vector<CdnowCustomer> built = testing_cdnow::BuildFromElog();
  const std::vector<CdnowCustomer> published = testing_cdnow::ReadPublishedSummary();
  const std::vector<CdnowCustomer> with_values = testing_cdnow::ReadPublishedSummaryWithValues();
  ASSERT_EQ(built.size(), 2357u);
  ASSERT_EQ(published.size(), 2357u);
  ASSERT_EQ(with_values.size(), 2357u);
  double zero_repeaters = 0, sum_x = 0, holdout = 0, holdout_zero = 0;
  for (size_t idx = 0; idx < built.size(); ++idx) {
    const CdnowCustomer& b = built[idx];
    const CdnowCustomer& p = published[idx];
    ASSERT_EQ(b.sample_id, p.sample_id);
    EXPECT_EQ(b.x, p.x) << "customer " << p.sample_id;
    EXPECT_NEAR(b.t_x, p.t_x, 0.005 + 1e-9) << "customer " << p.sample_id;
    EXPECT_NEAR(b.T, p.T, 0.005 + 1e-9) << "customer " << p.sample_id;
    EXPECT_NEAR(b.mean_value, with_values[idx].mean_value, 0.005 + 1e-9)
        << "customer " << p.sample_id;
    zero_repeaters += b.x == 0;
    sum_x += b.x;
    holdout += b.holdout_purchases;
    if (b.x == 0) holdout_zero += b.holdout_purchases;
  }
  EXPECT_EQ(zero_repeaters, 1411);
  EXPECT_EQ(sum_x, 2457);
  // README, "Checked here from CDNOW_sample.txt".
  EXPECT_EQ(holdout, 1882);
  EXPECT_EQ(holdout_zero, 334);
  // Customer 1: x=2, t_x=213/7, T=272/7, zbar=(29.73+14.96)/2.
  EXPECT_EQ(built[0].x, 2);
  EXPECT_DOUBLE_EQ(built[0].t_x, 213.0 / 7.0);
  EXPECT_DOUBLE_EQ(built[0].T, 272.0 / 7.0);
  EXPECT_NEAR(built[0].mean_value, (29.73 + 14.96) / 2, 1e-9);
}

TEST(CompressRfm, MergesIdenticalRowsAndValidates) {
  const std::vector<double> x = {0, 1, 0, 1, 0}, t_x = {0, 2, 0, 2, 0}, T = {5, 6, 5, 6, 7};
  Result<CompressedRfm> rfm = CompressRfm(x, t_x, T, {});
  ASSERT_TRUE(rfm.ok());
  ASSERT_EQ(rfm->rows.size(), 3u);
  EXPECT_EQ(rfm->total_weight, 5);
  EXPECT_EQ(rfm->rows[0].weight, 2);  // (0, 0, 5)
  EXPECT_EQ(rfm->spend.size(), 2u);   // one per repeat buyer
  EXPECT_EQ(rfm->rows[1].T, 7);
  EXPECT_EQ(rfm->rows[2].weight, 2);  // (1, 2, 6)
  const std::vector<double> bad_tx = {0, 9, 0, 1, 0};
  Result<CompressedRfm> bad = CompressRfm(x, bad_tx, T, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("t_x"), std::string::npos) << bad.status().message();
  const std::vector<double> short_T = {5, 6};
  EXPECT_FALSE(CompressRfm(x, t_x, short_T, {}).ok());
  const std::vector<double> fractional_x = {0.5, 1, 0, 1, 0};
  EXPECT_FALSE(CompressRfm(fractional_x, t_x, T, {}).ok());
}

// --- BG/NBD -------------------------------------------------------------------------------------

constexpr BgNbdParams kPublishedBgNbd{0.243, 4.414, 0.793, 2.426};

TEST(BgNbd, LogLikelihoodAtPublishedParameters) {
  const CompressedRfm rfm = ToRfm(testing_cdnow::ReadPublishedSummary());
  EXPECT_NEAR(BgNbdLogLikelihood(kPublishedBgNbd, rfm.rows), -9582.427, 0.001);
}

TEST(BgNbd, FitReproducesFaderHardieLee2005) {
  const CompressedRfm rfm = ToRfm(testing_cdnow::ReadPublishedSummary());
  Result<BgNbdFit> fit = FitBgNbd(rfm);
  ASSERT_TRUE(fit.ok()) << fit.status().ToString();
  EXPECT_TRUE(fit->converged) << fit->optimizer_message << " grad " << fit->max_abs_gradient;
  ExpectRelativeNear(fit->params.r, 0.243, 0.005, "r");
  ExpectRelativeNear(fit->params.alpha, 4.414, 0.005, "alpha");
  ExpectRelativeNear(fit->params.a, 0.793, 0.005, "a");
  ExpectRelativeNear(fit->params.b, 2.426, 0.005, "b");
  // Full-precision MLE (BTYD walkthrough): 0.2425982, 4.4136842, 0.7929899, 2.4261667; -9582.429.
  EXPECT_NEAR(fit->params.r, 0.2425982, 2e-4);
  EXPECT_NEAR(fit->params.alpha, 4.4136842, 2e-3);
  EXPECT_NEAR(fit->log_likelihood, -9582.429, 0.01);
  EXPECT_EQ(fit->input.customers, 2357);
  EXPECT_EQ(fit->input.repeat_buyers, 946);
  for (double se : fit->std_errors) {
    EXPECT_TRUE(std::isfinite(se) && se > 0);
  }
  // Standard errors are a small fraction of the estimates on 2,357 customers.
  EXPECT_LT(fit->std_errors[0] / fit->params.r, 0.2);
  std::printf(
      "BG/NBD CDNOW (%s): r=%.7f alpha=%.7f a=%.7f b=%.7f LL=%.4f evals=%d\n"
      "  se: %.4f %.4f %.4f %.4f\n",
      fit->optimizer_message.c_str(), fit->params.r, fit->params.alpha, fit->params.a,
      fit->params.b, fit->log_likelihood, fit->iterations, fit->std_errors[0], fit->std_errors[1],
      fit->std_errors[2], fit->std_errors[3]);
}

TEST(BgNbd, PublishedPointValues) {
  const CompressedRfm rfm = ToRfm(testing_cdnow::ReadPublishedSummary());
  Result<BgNbdFit> fit = FitBgNbd(rfm);
  ASSERT_TRUE(fit.ok());
  const BgNbdParams& p = fit->params;
  // lifetimes test_estimation.py (from Hardie's spreadsheets).
  EXPECT_NEAR(BgNbdExpectedPurchases(p, 2, 30.43, 38.86, 39), 1.226, 0.001);
  const std::array<double, 6> times = {0.1429, 1, 3, 31.8571, 32, 78};
  const std::array<double, 6> expected = {0.0078, 0.0532, 0.1506, 1.0405, 1.0437, 1.8576};
  for (size_t idx = 0; idx < times.size(); ++idx) {
    // lifetimes asserts 3 decimals; the 4-decimal figures agree except t = 78 (1.8579).
    EXPECT_NEAR(BgNbdExpectedPurchasesNewCustomer(p, times[idx]), expected[idx], 5e-4)
        << "t=" << times[idx];
  }
  // Brute-force reference: scipy.special.hyp2f1 in FHL eq. 9 at the BTYD full-precision MLE
  // (0.2425982, 4.4136842, 0.7929899, 2.4261667) gives 1.0437296572 (t=32), 1.8579418800 (t=78).
  const BgNbdParams btyd_mle{0.2425982, 4.4136842, 0.7929899, 2.4261667};
  EXPECT_NEAR(BgNbdExpectedPurchasesNewCustomer(btyd_mle, 32), 1.0437296572485564, 1e-10);
  EXPECT_NEAR(BgNbdExpectedPurchasesNewCustomer(btyd_mle, 78), 1.8579418800025462, 1e-10);
  ExpectRelativeNear(BgNbdProbabilityOfPurchases(kPublishedBgNbd, 2, 10), 1.07869e-07, 1e-4,
                     "P(X(2)=10)");
  // The pmf sums to one over n and its mean is E[X(t)].
  double total = 0, mean = 0;
  for (int n = 0; n < 400; ++n) {
    const double prob = BgNbdProbabilityOfPurchases(p, 20, n);
    total += prob;
    mean += n * prob;
  }
  EXPECT_NEAR(total, 1.0, 1e-9);
  EXPECT_NEAR(mean, BgNbdExpectedPurchasesNewCustomer(p, 20), 1e-7);
  // P(alive) is 1 for zero repeaters and falls with time since the last purchase.
  EXPECT_EQ(BgNbdProbabilityAlive(p, 0, 0, 30), 1.0);
  EXPECT_GT(BgNbdProbabilityAlive(p, 3, 30, 38), BgNbdProbabilityAlive(p, 3, 10, 38));
}

// Finite-difference check of an analytic gradient, relative to the gradient's scale.
template <size_t K>
void ExpectGradientMatches(
    const std::function<double(const std::array<double, K>&, std::array<double, K>*)>& ll,
    const std::array<double, K>& at, const std::string& what) {
  std::array<double, K> analytic{};
  const double value = ll(at, &analytic);
  ASSERT_TRUE(std::isfinite(value)) << what;
  for (size_t k = 0; k < K; ++k) {
    ASSERT_TRUE(std::isfinite(analytic[k])) << what << " component " << k;
    // Central difference in log-parameter space, step 1e-6.
    const double step = 1e-6;
    std::array<double, K> plus = at, minus = at;
    plus[k] = at[k] * std::exp(step);
    minus[k] = at[k] * std::exp(-step);
    const double numeric = (ll(plus, nullptr) - ll(minus, nullptr)) / (2 * step);
    const double analytic_log = analytic[k] * at[k];
    EXPECT_NEAR(analytic_log, numeric, 1e-5 * (1 + std::fabs(numeric)) + 1e-7 * std::fabs(value))
        << what << " component " << k;
  }
}

std::vector<RfmSummaryRow> GradientCheckRows() {
  return {{0, 0, 38.86, 1},    {1, 1.71, 38.86, 2},  {2, 30.43, 38.86, 1},
          {12, 35.0, 36.0, 3}, {500, 4000, 5000, 1}, {500, 4999.5, 5000, 1},
          {0, 0, 5000, 1},     {37, 0.5, 5000, 1},   {5, 27, 27, 1}};
}

TEST(BgNbd, AnalyticGradientMatchesFiniteDifferences) {
  const std::vector<RfmSummaryRow> rows = GradientCheckRows();
  const std::vector<std::array<double, 4>> points = {{0.243, 4.414, 0.793, 2.426},
                                                     {1, 1, 1, 1},
                                                     {5, 0.01, 0.05, 20},
                                                     {0.01, 300, 3, 0.2},
                                                     {50, 2000, 0.5, 0.5}};
  for (const auto& point : points) {
    for (const RfmSummaryRow& row : rows) {
      const std::vector<RfmSummaryRow> one = {row};
      ExpectGradientMatches<4>(
          [&](const std::array<double, 4>& q, std::array<double, 4>* g) {
            return BgNbdLogLikelihood({q[0], q[1], q[2], q[3]}, one, g);
          },
          point, "BG/NBD x=" + std::to_string(row.x) + " T=" + std::to_string(row.T));
    }
  }
}

TEST(BgNbd, CompressedFitEqualsUncompressedFit) {
  const std::vector<CdnowCustomer> customers = testing_cdnow::ReadPublishedSummary();
  const CompressedRfm compressed = ToRfm(customers);
  EXPECT_LT(compressed.rows.size(), customers.size());
  CompressedRfm uncompressed{ToRows(customers), {}, static_cast<double>(customers.size())};
  const BgNbdParams p{0.3, 5, 0.9, 2};
  // Same likelihood and gradient up to rounding of the summation order.
  std::array<double, 4> g1{}, g2{};
  const double ll1 = BgNbdLogLikelihood(p, compressed.rows, &g1);
  const double ll2 = BgNbdLogLikelihood(p, uncompressed.rows, &g2);
  EXPECT_NEAR(ll1, ll2, 1e-9 * std::fabs(ll2));
  for (size_t k = 0; k < 4; ++k) EXPECT_NEAR(g1[k], g2[k], 1e-8 * (1 + std::fabs(g2[k])));
  Result<BgNbdFit> fit1 = FitBgNbd(compressed);
  Result<BgNbdFit> fit2 = FitBgNbd(uncompressed);
  ASSERT_TRUE(fit1.ok() && fit2.ok());
  EXPECT_NEAR(fit1->log_likelihood, fit2->log_likelihood, 1e-8 * std::fabs(fit2->log_likelihood));
  EXPECT_NEAR(fit1->params.r, fit2->params.r, 1e-6 * fit2->params.r);
  EXPECT_NEAR(fit1->params.alpha, fit2->params.alpha, 1e-6 * fit2->params.alpha);
  EXPECT_NEAR(fit1->params.a, fit2->params.a, 1e-6 * fit2->params.a);
  EXPECT_NEAR(fit1->params.b, fit2->params.b, 1e-6 * fit2->params.b);
  Result<ParetoNbdFit> pareto1 = FitParetoNbd(compressed);
  Result<ParetoNbdFit> pareto2 = FitParetoNbd(uncompressed);
  ASSERT_TRUE(pareto1.ok() && pareto2.ok());
  EXPECT_NEAR(pareto1->log_likelihood, pareto2->log_likelihood,
              1e-8 * std::fabs(pareto2->log_likelihood));
  EXPECT_NEAR(pareto1->params.s, pareto2->params.s, 1e-6 * pareto2->params.s);
  EXPECT_NEAR(pareto1->params.beta, pareto2->params.beta, 1e-6 * pareto2->params.beta);
}

TEST(BgNbd, ResultDoesNotDependOnThreadCount) {
  std::vector<RfmSummaryRow> rows;
  for (int idx = 0; idx < 20000; ++idx) {
    const double T = 27 + (idx % 97) * 0.125;
    const double x = idx % 13;
    rows.push_back({x, x > 0 ? T * ((idx % 7) + 1) / 8.0 : 0, T, 1.0 + idx % 3});
  }
  std::array<double, 4> g1{}, g2{};
  const double ll1 = BgNbdLogLikelihood(kPublishedBgNbd, rows, &g1, 1);
  const double ll2 = BgNbdLogLikelihood(kPublishedBgNbd, rows, &g2, 2);
  EXPECT_EQ(ll1, ll2);
  EXPECT_EQ(g1, g2);
}

TEST(BgNbd, NextPurchaseTimeIsTheMedianWait) {
  const BgNbdParams p = kPublishedBgNbd;
  const double wait = BgNbdNextPurchaseTime(p, 5, 37, 38.86);
  ASSERT_TRUE(std::isfinite(wait));
  EXPECT_NEAR(BgNbdProbabilityPurchaseWithin(p, 5, 37, 38.86, wait), 0.5, 1e-12);
  // A customer unlikely to be alive has no median next purchase.
  EXPECT_TRUE(std::isinf(BgNbdNextPurchaseTime(p, 5, 2, 38.86)));
  // Cross-check P(no purchase in (T, T+t]) against E[Y]: as t -> 0 both are ~ rate * t.
  const double t = 1e-4;
  EXPECT_NEAR(BgNbdProbabilityPurchaseWithin(p, 5, 37, 38.86, t) / t,
              BgNbdExpectedPurchases(p, 5, 37, 38.86, t) / t, 1e-3);
}

TEST(BgNbd, ExtremeHistoriesStayFinite) {
  const BgNbdParams p = kPublishedBgNbd;
  for (double x : {0.0, 1.0, 50.0, 500.0, 5000.0}) {
    for (double T : {1.0, 38.86, 5000.0}) {
      for (double share : {0.0, 0.5, 1.0}) {
        const double t_x = x > 0 ? share * T : 0;
        const double alive = BgNbdProbabilityAlive(p, x, t_x, T);
        const double expected = BgNbdExpectedPurchases(p, x, t_x, T, 52);
        EXPECT_TRUE(alive >= 0 && alive <= 1) << x << " " << T;
        EXPECT_TRUE(std::isfinite(expected) && expected >= 0) << x << " " << T << " " << share;
      }
    }
  }
  // A very frequent, recent customer keeps buying at about (r+x)/(alpha+T) per week.
  const double expected = BgNbdExpectedPurchases(p, 500, 4999, 5000, 10);
  EXPECT_NEAR(expected, 10 * (p.r + 500) / (p.alpha + 5000), 0.05);
}

// --- Pareto/NBD ---------------------------------------------------------------------------------

// Brute-force reference: the likelihood's integral by adaptive Simpson on [t_x, T].
double SimpsonIntegral(const std::function<double(double)>& f, double lo, double hi, int depth) {
  const double mid = 0.5 * (lo + hi);
  const double whole = (hi - lo) / 6 * (f(lo) + 4 * f(mid) + f(hi));
  const double left = (mid - lo) / 6 * (f(lo) + 4 * f(0.5 * (lo + mid)) + f(mid));
  const double right = (hi - mid) / 6 * (f(mid) + 4 * f(0.5 * (mid + hi)) + f(hi));
  if (depth <= 0 || std::fabs(left + right - whole) < 1e-13 * std::fabs(left + right)) {
    return left + right;
  }
  return SimpsonIntegral(f, lo, mid, depth - 1) + SimpsonIntegral(f, mid, hi, depth - 1);
}

double ParetoLogLikelihoodBruteForce(const ParetoNbdParams& p, double x, double t_x, double T) {
  const double head =
      std::lgamma(p.r + x) - std::lgamma(p.r) + p.r * std::log(p.alpha) + p.s * std::log(p.beta);
  const double alive = std::pow(p.alpha + T, -(p.r + x)) * std::pow(p.beta + T, -p.s);
  const double died =
      p.s * SimpsonIntegral(
                [&](double tau) {
                  return std::pow(p.alpha + tau, -(p.r + x)) * std::pow(p.beta + tau, -(p.s + 1));
                },
                t_x, T, 40);
  return head + std::log(alive + died);
}

TEST(ParetoNbd, SeriesLikelihoodMatchesNumericalIntegration) {
  const std::vector<ParetoNbdParams> points = {{0.553, 10.58, 0.606, 11.66},
                                               {0.553, 11.66, 0.606, 10.58},
                                               {1, 1, 1, 1},
                                               {2, 30, 0.5, 3},
                                               {0.3, 2, 4, 40}};
  const std::vector<std::array<double, 3>> histories = {
      {0, 0, 38.86}, {2, 30.43, 38.86}, {1, 1.71, 38.86}, {10, 20, 30}, {26, 30.85714, 31}};
  for (const ParetoNbdParams& p : points) {
    for (const auto& h : histories) {
      const std::vector<RfmSummaryRow> one = {{h[0], h[1], h[2], 1}};
      EXPECT_NEAR(ParetoNbdLogLikelihood(p, one),
                  ParetoLogLikelihoodBruteForce(p, h[0], h[1], h[2]), 1e-9)
          << p.r << " " << p.alpha << " " << p.s << " " << p.beta << " x=" << h[0];
    }
  }
}

TEST(ParetoNbd, FitReproducesPublishedEstimates) {
  const CompressedRfm rfm = ToRfm(testing_cdnow::ReadPublishedSummary());
  Result<ParetoNbdFit> fit = FitParetoNbd(rfm);
  ASSERT_TRUE(fit.ok()) << fit.status().ToString();
  EXPECT_TRUE(fit->converged) << fit->optimizer_message << " grad " << fit->max_abs_gradient;
  ExpectRelativeNear(fit->params.r, 0.553, 0.005, "r");
  ExpectRelativeNear(fit->params.alpha, 10.58, 0.005, "alpha");
  ExpectRelativeNear(fit->params.s, 0.606, 0.005, "s");
  ExpectRelativeNear(fit->params.beta, 11.66, 0.005, "beta");
  EXPECT_NEAR(fit->log_likelihood, -9594.976, 0.01);
  for (double se : fit->std_errors) EXPECT_TRUE(std::isfinite(se) && se > 0);
  std::printf(
      "Pareto/NBD CDNOW: r=%.5f alpha=%.5f s=%.5f beta=%.5f LL=%.4f evals=%d\n"
      "  se: %.4f %.4f %.4f %.4f\n",
      fit->params.r, fit->params.alpha, fit->params.s, fit->params.beta, fit->log_likelihood,
      fit->iterations, fit->std_errors[0], fit->std_errors[1], fit->std_errors[2],
      fit->std_errors[3]);
  // BTYD walkthrough vignette at its MLE.
  const ParetoNbdParams& p = fit->params;
  EXPECT_NEAR(ParetoNbdExpectedPurchasesNewCustomer(p, 52), 1.473434, 0.002);
  EXPECT_NEAR(ParetoNbdExpectedPurchases(p, 26, 30.85714, 31, 52), 25.45647, 0.03);
  EXPECT_NEAR(ParetoNbdProbabilityAlive(p, 26, 30.85714, 31), 0.997874, 0.0002);
}

TEST(ParetoNbd, AnalyticGradientMatchesFiniteDifferences) {
  const std::vector<RfmSummaryRow> rows = GradientCheckRows();
  const std::vector<std::array<double, 4>> points = {
      {0.553, 10.58, 0.606, 11.66}, {0.553, 11.66, 0.606, 10.58}, {1, 1, 1, 1},
      {3, 0.05, 0.2, 50},           {0.05, 80, 2, 0.5},           {1, 5, 1, 5}};
  for (const auto& point : points) {
    for (const RfmSummaryRow& row : rows) {
      const std::vector<RfmSummaryRow> one = {row};
      ExpectGradientMatches<4>(
          [&](const std::array<double, 4>& q, std::array<double, 4>* g) {
            return ParetoNbdLogLikelihood({q[0], q[1], q[2], q[3]}, one, g);
          },
          point,
          "Pareto/NBD x=" + std::to_string(row.x) + " t_x=" + std::to_string(row.t_x) +
              " T=" + std::to_string(row.T) + " at r=" + std::to_string(point[0]) +
              " alpha=" + std::to_string(point[1]));
    }
  }
}

// --- Gamma-Gamma --------------------------------------------------------------------------------

TEST(GammaGamma, FitReproducesPublishedEstimates) {
  const CompressedRfm rfm = ToRfm(testing_cdnow::ReadPublishedSummaryWithValues());
  EXPECT_EQ(rfm.spend.size(), 946u);
  EXPECT_NEAR(GammaGammaLogLikelihood({6.25, 3.74, 15.44}, rfm.spend), -4055.925, 0.001);
  Result<GammaGammaFit> fit = FitGammaGamma(rfm);
  ASSERT_TRUE(fit.ok()) << fit.status().ToString();
  EXPECT_TRUE(fit->converged) << fit->optimizer_message;
  ExpectRelativeNear(fit->params.p, 6.25, 0.005, "p");
  ExpectRelativeNear(fit->params.q, 3.74, 0.005, "q");
  ExpectRelativeNear(fit->params.gamma, 15.44, 0.005, "gamma");
  EXPECT_NEAR(fit->log_likelihood, -4055.9, 0.05);
  EXPECT_EQ(fit->input.customers, 946);
  for (double se : fit->std_errors) EXPECT_TRUE(std::isfinite(se) && se > 0);
  std::printf("Gamma-Gamma CDNOW: p=%.5f q=%.5f gamma=%.5f LL=%.4f evals=%d se %.4f %.4f %.4f\n",
              fit->params.p, fit->params.q, fit->params.gamma, fit->log_likelihood, fit->iterations,
              fit->std_errors[0], fit->std_errors[1], fit->std_errors[2]);
  // Hardie's note 025 sheet, first 10 customers, at the full-precision MLE.
  const std::vector<CdnowCustomer> customers = testing_cdnow::ReadPublishedSummaryWithValues();
  const std::array<double, 10> expected = {24.65, 18.91, 35.17, 35.17, 35.17,
                                           71.46, 18.91, 35.17, 27.28, 35.17};
  for (size_t idx = 0; idx < expected.size(); ++idx) {
    EXPECT_NEAR(GammaGammaExpectedValue(fit->params, customers[idx].x, customers[idx].mean_value),
                expected[idx], 0.01)
        << "customer " << idx + 1;
  }
}

TEST(GammaGamma, AnalyticGradientMatchesFiniteDifferences) {
  const std::vector<SpendRow> rows = {{1, 11.77, 1}, {2, 22.35, 2}, {500, 1e4, 1}, {3, 0.01, 1}};
  for (const auto& point : std::vector<std::array<double, 3>>{
           {6.25, 3.74, 15.44}, {1, 1, 1}, {0.05, 40, 2000}, {30, 0.5, 0.01}}) {
    ExpectGradientMatches<3>(
        [&](const std::array<double, 3>& q, std::array<double, 3>* g) {
          return GammaGammaLogLikelihood({q[0], q[1], q[2]}, rows, g);
        },
        point, "Gamma-Gamma");
  }
}

TEST(GammaGamma, RejectsNonPositiveSpendWithCustomerCount) {
  const std::vector<double> x = {1, 2, 2, 0}, t_x = {1, 2, 2, 0}, T = {5, 5, 5, 5};
  const std::vector<double> value = {10, -3, -3, 0};
  Result<CompressedRfm> rfm = CompressRfm(x, t_x, T, value);
  ASSERT_TRUE(rfm.ok());
  Result<GammaGammaFit> fit = FitGammaGamma(*rfm);
  ASSERT_FALSE(fit.ok());
  EXPECT_NE(fit.status().message().find("2 of 3 repeat customers"), std::string::npos)
      << fit.status().message();
}

// --- CLV --------------------------------------------------------------------------------------

TEST(Clv, UndiscountedClvIsValueTimesExpectedPurchases) {
  const GammaGammaParams spend{6.25, 3.74, 15.44};
  ClvOptions options;
  options.periods = 12;
  options.period_length = 52.0 / 12;
  options.discount_rate = 0;
  options.margin = 0.3;
  const double clv = BgNbdClv(kPublishedBgNbd, spend, 2, 30.43, 38.86, 22.35, options);
  const double direct = 0.3 * GammaGammaExpectedValue(spend, 2, 22.35) *
                        BgNbdExpectedPurchases(kPublishedBgNbd, 2, 30.43, 38.86, 52);
  EXPECT_NEAR(clv, direct, 1e-9 * direct);
  options.discount_rate = 0.01;
  const double discounted = BgNbdClv(kPublishedBgNbd, spend, 2, 30.43, 38.86, 22.35, options);
  EXPECT_LT(discounted, clv);
  EXPECT_GT(discounted, clv / std::pow(1.01, 12));
  const double pareto =
      ParetoNbdClv({0.553, 10.58, 0.606, 11.66}, spend, 2, 30.43, 38.86, 22.35, options);
  EXPECT_GT(pareto, 0);
  EXPECT_NEAR(pareto, discounted, 0.5 * discounted);  // the two purchase models roughly agree
}

// --- holdout validation -------------------------------------------------------------------------

TEST(Holdout, ExpectedVersusActualWeeks40To78) {
  const std::vector<CdnowCustomer> customers = testing_cdnow::BuildFromElog();
  const CompressedRfm rfm = ToRfm(customers);
  Result<BgNbdFit> bg = FitBgNbd(rfm);
  Result<ParetoNbdFit> pnbd = FitParetoNbd(rfm);
  ASSERT_TRUE(bg.ok() && pnbd.ok());
  constexpr int kClasses = 8;  // 0..6 and 7+
  std::array<double, kClasses> count{}, actual{}, expected_bg{}, expected_pnbd{};
  for (const CdnowCustomer& c : customers) {
    const int cls = std::min(static_cast<int>(c.x), kClasses - 1);
    count[cls] += 1;
    actual[cls] += c.holdout_purchases;
    expected_bg[cls] += BgNbdExpectedPurchases(bg->params, c.x, c.t_x, c.T, 39);
    expected_pnbd[cls] += ParetoNbdExpectedPurchases(pnbd->params, c.x, c.t_x, c.T, 39);
  }
  double total_actual = 0, total_bg = 0, total_pnbd = 0;
  std::printf("| x (calibration) | customers | actual | BG/NBD | Pareto/NBD |\n");
  for (int cls = 0; cls < kClasses; ++cls) {
    std::printf("| %s%d | %.0f | %.3f | %.3f | %.3f |\n", cls == kClasses - 1 ? ">=" : "", cls,
                count[cls], actual[cls] / count[cls], expected_bg[cls] / count[cls],
                expected_pnbd[cls] / count[cls]);
    total_actual += actual[cls];
    total_bg += expected_bg[cls];
    total_pnbd += expected_pnbd[cls];
  }
  std::printf("| total | %zu | %.0f | %.1f | %.1f |\n", customers.size(), total_actual, total_bg,
              total_pnbd);
  EXPECT_EQ(total_actual, 1882);
  // Measured here (docs/predictions.md): both models under-forecast the 39-week holdout total by
  // about 12% (BG/NBD 1653, Pareto/NBD 1666 vs 1882 actual); the assertion bounds that gap.
  EXPECT_NEAR(total_bg, total_actual, 0.15 * total_actual);
  EXPECT_NEAR(total_pnbd, total_actual, 0.15 * total_actual);
  // Zero class: actual 0.24 per customer; BG/NBD 0.23 and Pareto/NBD 0.14 (FHL 2005a as quoted
  // in the data README).
  EXPECT_NEAR(expected_bg[0] / count[0], 0.23, 0.01);
  EXPECT_NEAR(expected_pnbd[0] / count[0], 0.14, 0.01);
  // Conditional expectations rise with calibration frequency, like the actuals.
  for (int cls = 1; cls < kClasses; ++cls) {
    EXPECT_GT(expected_bg[cls] / count[cls], expected_bg[cls - 1] / count[cls - 1]);
  }
  // Unconditional tracking of the cohort (FHL 2005a Fig. 1 style): sum over customers of
  // E[X(T_i + 39)] - E[X(T_i)], each customer's clock starting at their first purchase.
  double tracking_bg = 0, tracking_pnbd = 0;
  for (const CdnowCustomer& c : customers) {
    tracking_bg += BgNbdExpectedPurchasesNewCustomer(bg->params, c.T + 39) -
                   BgNbdExpectedPurchasesNewCustomer(bg->params, c.T);
    tracking_pnbd += ParetoNbdExpectedPurchasesNewCustomer(pnbd->params, c.T + 39) -
                     ParetoNbdExpectedPurchasesNewCustomer(pnbd->params, c.T);
  }
  std::printf("unconditional cohort forecast weeks 40-78: BG/NBD %.1f, Pareto/NBD %.1f\n",
              tracking_bg, tracking_pnbd);
  EXPECT_NEAR(tracking_bg, total_actual, 0.15 * total_actual);
}

}  // namespace
}  // namespace shoal

namespace shoal {
namespace {

// Large inputs are fitted from a warm start (a fit on a stride subsample); the optimum must be
// the full-data MLE, i.e. the same as a cold fit from a user-given start.
TEST(WarmStart, LargeFitsReachTheColdStartOptimum) {
  // CDNOW replicated 80 times with tiny time/value jitter: 81k distinct (x, t_x, T) rows and 76k
  // spend rows, with an optimum close to the published one.
  const std::vector<CdnowCustomer> cdnow = testing_cdnow::ReadPublishedSummaryWithValues();
  CompressedRfm data;
  for (int copy = 0; copy < 80; ++copy) {
    for (const CdnowCustomer& c : cdnow) {
      const double T = c.T + 0.001 * copy;
      data.rows.push_back({c.x, std::min(T, c.t_x * T / c.T), T, 1});
      data.total_weight += 1;
      if (c.x > 0) data.spend.push_back({c.x, c.mean_value * (1 + 1e-4 * copy), 1});
    }
  }
  Result<BgNbdFit> warm = FitBgNbd(data);
  BtydFitOptions cold_options;
  cold_options.initial = {1, 30, 1, 1};
  Result<BgNbdFit> cold = FitBgNbd(data, cold_options);
  ASSERT_TRUE(warm.ok()) << warm.status().ToString();
  ASSERT_TRUE(cold.ok()) << cold.status().ToString();
  EXPECT_NE(warm->optimizer_message.find("warm start"), std::string::npos);
  EXPECT_TRUE(warm->converged && cold->converged)
      << warm->optimizer_message << " | " << cold->optimizer_message;
  EXPECT_NEAR(warm->log_likelihood, cold->log_likelihood, 1e-10 * std::fabs(cold->log_likelihood));
  EXPECT_NEAR(warm->params.r, cold->params.r, 1e-4 * cold->params.r);
  EXPECT_NEAR(warm->params.b, cold->params.b, 1e-4 * cold->params.b);
  EXPECT_NEAR(warm->params.r, 0.243, 0.01);
  Result<GammaGammaFit> gg_warm = FitGammaGamma(data);
  BtydFitOptions gg_cold_options;
  gg_cold_options.initial = {1, 2, 10};
  Result<GammaGammaFit> gg_cold = FitGammaGamma(data, gg_cold_options);
  ASSERT_TRUE(gg_warm.ok() && gg_cold.ok());
  EXPECT_GT(data.spend.size(), 20000u);  // above the warm-start threshold
  EXPECT_NE(gg_warm->optimizer_message.find("warm start"), std::string::npos);
  EXPECT_NEAR(gg_warm->log_likelihood, gg_cold->log_likelihood,
              1e-10 * std::fabs(gg_cold->log_likelihood));
  EXPECT_NEAR(gg_warm->params.p, gg_cold->params.p, 1e-4 * gg_cold->params.p);
}

}  // namespace
}  // namespace shoal

namespace shoal {
namespace {

TEST(CompressRfm, OutputDoesNotDependOnThreadsOrOrder) {
  std::vector<double> x, t_x, T, value;
  // Enough customers for three workers, so the merge of sorted partials has an odd run.
  for (int64_t idx = 0; idx < 800000; ++idx) {
    const double cx = idx % 11 == 0 ? 3 : (idx % 4 == 0 ? 1 : 0);
    x.push_back(cx);
    T.push_back((189 + (idx * 7919) % 85) / 7.0);
    t_x.push_back(cx > 0 ? ((idx * 104729) % 189) / 7.0 : 0);
    value.push_back(cx > 0 ? 5.0 + static_cast<double>(idx % 97) : 0.0);
  }
  Context one, two, three;
  one.threads = 1;
  two.threads = 2;
  three.threads = 3;
  Result<CompressedRfm> a = CompressRfm(x, t_x, T, value, one);
  Result<CompressedRfm> b = CompressRfm(x, t_x, T, value, two);
  Result<CompressedRfm> d = CompressRfm(x, t_x, T, value, three);
  std::reverse(x.begin(), x.end());
  std::reverse(t_x.begin(), t_x.end());
  std::reverse(T.begin(), T.end());
  std::reverse(value.begin(), value.end());
  Result<CompressedRfm> c = CompressRfm(x, t_x, T, value, two);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok() && d.ok());
  ASSERT_EQ(a->rows.size(), b->rows.size());
  ASSERT_EQ(a->rows.size(), c->rows.size());
  ASSERT_EQ(a->rows.size(), d->rows.size());
  double total = 0;
  for (size_t idx = 0; idx < a->rows.size(); ++idx) {
    for (const CompressedRfm* other : {&*b, &*c, &*d}) {
      EXPECT_EQ(a->rows[idx].x, other->rows[idx].x);
      EXPECT_EQ(a->rows[idx].t_x, other->rows[idx].t_x);
      EXPECT_EQ(a->rows[idx].T, other->rows[idx].T);
      EXPECT_EQ(a->rows[idx].weight, other->rows[idx].weight);
    }
    total += a->rows[idx].weight;
  }
  EXPECT_EQ(total, 800000);
  ASSERT_EQ(a->spend.size(), b->spend.size());
  ASSERT_EQ(a->spend.size(), d->spend.size());
  for (size_t idx = 0; idx < a->spend.size(); ++idx) {
    EXPECT_EQ(a->spend[idx].mean_value, b->spend[idx].mean_value);  // input order kept
    EXPECT_EQ(a->spend[idx].mean_value, d->spend[idx].mean_value);
  }
}

}  // namespace
}  // namespace shoal

namespace shoal {
namespace {

TEST(BtydScore, BatchEqualsScalarFunctionsForAnyThreadCount) {
  const std::vector<CdnowCustomer> customers = testing_cdnow::ReadPublishedSummaryWithValues();
  std::vector<double> x, t_x, T, value;
  for (const CdnowCustomer& c : customers) {
    x.push_back(c.x);
    t_x.push_back(c.t_x);
    T.push_back(c.T);
    value.push_back(c.mean_value);
  }
  const BgNbdParams bg{0.2425929, 4.4135316, 0.7928861, 2.4257534};
  const ParetoNbdParams pareto{0.55328, 10.57761, 0.60621, 11.66791};
  const GammaGammaParams gg{6.24880, 3.74459, 15.44775};
  BtydScoreOptions options;
  options.horizon = 39;
  Context one, two;
  one.threads = 1;
  two.threads = 2;
  Result<BtydScores> serial = ScoreBgNbd(bg, gg, x, t_x, T, value, options, one);
  Result<BtydScores> parallel = ScoreBgNbd(bg, gg, x, t_x, T, value, options, two);
  Result<BtydScores> pareto_scores = ScoreParetoNbd(pareto, gg, x, t_x, T, value, options, two);
  ASSERT_TRUE(serial.ok() && parallel.ok() && pareto_scores.ok());
  EXPECT_EQ(serial->clv, parallel->clv);
  EXPECT_EQ(serial->next_order_time, parallel->next_order_time);
  for (size_t idx = 0; idx < customers.size(); idx += 97) {
    EXPECT_EQ(parallel->probability_alive[idx],
              BgNbdProbabilityAlive(bg, x[idx], t_x[idx], T[idx]));
    EXPECT_EQ(parallel->expected_purchases[idx],
              BgNbdExpectedPurchases(bg, x[idx], t_x[idx], T[idx], 39));
    EXPECT_DOUBLE_EQ(parallel->clv[idx],
                     BgNbdClv(bg, gg, x[idx], t_x[idx], T[idx], value[idx], options.clv));
    EXPECT_DOUBLE_EQ(pareto_scores->clv[idx],
                     ParetoNbdClv(pareto, gg, x[idx], t_x[idx], T[idx], value[idx], options.clv));
    EXPECT_TRUE(std::isnan(pareto_scores->next_order_time[idx]));
  }
  // Customer 1: x=2, t_x=30.43, T=38.86 -> 1.226 expected purchases in 39 weeks.
  EXPECT_NEAR(parallel->expected_purchases[0], 1.226, 0.001);
  EXPECT_NEAR(parallel->expected_value[0], 24.65, 0.01);
  // Without values every customer gets the population mean order value.
  Result<BtydScores> no_values = ScoreBgNbd(bg, gg, x, t_x, T, {}, options, two);
  ASSERT_TRUE(no_values.ok());
  EXPECT_NEAR(no_values->expected_value[0], gg.p * gg.gamma / (gg.q - 1), 1e-12);
  const std::vector<double> bad_T(x.size(), -1.0);
  EXPECT_FALSE(ScoreBgNbd(bg, gg, x, t_x, bad_T, value, options, two).ok());
}

}  // namespace
}  // namespace shoal

namespace shoal {
namespace {

// FitBtydModels runs BG/NBD and Gamma-Gamma at the same time; each must be exactly the model's
// own fit, whatever the thread count, and a disabled Pareto/NBD says so.
TEST(FitBtydModels, EqualsTheSeparateFitsAtAnyThreadCount) {
  const CompressedRfm rfm = ToRfm(testing_cdnow::ReadPublishedSummaryWithValues());
  Result<BgNbdFit> bg = FitBgNbd(rfm);
  Result<GammaGammaFit> gg = FitGammaGamma(rfm);
  Result<ParetoNbdFit> pareto = FitParetoNbd(rfm);
  ASSERT_TRUE(bg.ok() && gg.ok() && pareto.ok());
  for (int threads : {1, 2, 3}) {
    Context ctx;
    ctx.threads = threads;
    BtydModelFits fits = FitBtydModels(rfm, BtydModelsOptions{}, ctx);
    ASSERT_TRUE(fits.bgnbd.ok() && fits.gamma_gamma.ok() && fits.pareto_nbd.ok()) << threads;
    EXPECT_EQ(fits.bgnbd->params.r, bg->params.r);
    EXPECT_EQ(fits.bgnbd->params.alpha, bg->params.alpha);
    EXPECT_EQ(fits.bgnbd->params.a, bg->params.a);
    EXPECT_EQ(fits.bgnbd->params.b, bg->params.b);
    EXPECT_EQ(fits.bgnbd->log_likelihood, bg->log_likelihood);
    EXPECT_EQ(fits.gamma_gamma->params.p, gg->params.p);
    EXPECT_EQ(fits.gamma_gamma->params.q, gg->params.q);
    EXPECT_EQ(fits.gamma_gamma->params.gamma, gg->params.gamma);
    EXPECT_EQ(fits.gamma_gamma->log_likelihood, gg->log_likelihood);
    EXPECT_EQ(fits.pareto_nbd->log_likelihood, pareto->log_likelihood);
    EXPECT_GT(fits.bgnbd_seconds, 0);
    EXPECT_GT(fits.gamma_gamma_seconds, 0);
  }
  BtydModelsOptions without_pareto;
  without_pareto.pareto_nbd = false;
  BtydModelFits fits = FitBtydModels(rfm, without_pareto);
  EXPECT_FALSE(fits.pareto_nbd.ok());
  EXPECT_NE(fits.pareto_nbd.status().message().find("disabled"), std::string::npos);
  // Gamma-Gamma's own failure (a zero mean spend) is reported, BG/NBD still fits.
  CompressedRfm no_spend = rfm;
  for (SpendRow& row : no_spend.spend) row.mean_value = 0;
  BtydModelFits partial = FitBtydModels(no_spend, without_pareto);
  EXPECT_TRUE(partial.bgnbd.ok());
  EXPECT_FALSE(partial.gamma_gamma.ok());
}

}  // namespace
}  // namespace shoal
