#include "engine/feature_scaler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <vector>

namespace shoal {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(FeatureScalerTest, ShrinksRatesTowardThePopulationMeanByTheirSupport) {
  // discount_share of four customers with 0, 1, 4 and 12 orders.
  std::vector<double> rate = {kNaN, 1.0, 0.5, 0.0};
  std::vector<double> orders = {0, 1, 4, 12};
  FeatureScaler s = FitFeatureScaler({"discount_share"}, {rate}, {"frequency"}, {orders}, 4, 0);
  const double mu = 0.5;  // mean of the defined rates
  EXPECT_DOUBLE_EQ(s.prior[0], mu);
  EXPECT_DOUBLE_EQ(s.Prepare(0, kNaN, 0), mu);                              // no orders: the mean
  EXPECT_DOUBLE_EQ(s.Prepare(0, 1.0, 1), (1 * 1.0 + 4 * mu) / 5);           // one order: mostly prior
  EXPECT_DOUBLE_EQ(s.Prepare(0, 0.0, 12), (12 * 0.0 + 4 * mu) / 16);        // many: mostly own rate
  // Without shrinkage an undefined rate is imputed as 0.
  FeatureScaler plain = FitFeatureScaler({"discount_share"}, {rate}, {"frequency"}, {orders}, 0, 0);
  EXPECT_DOUBLE_EQ(plain.Prepare(0, kNaN, 0), 0.0);
  EXPECT_DOUBLE_EQ(plain.Prepare(0, 1.0, 1), 1.0);
}

TEST(FeatureScalerTest, WinsorisesStandardisesAndClips) {
  // 1,000 values 0..999 plus one extreme: winsorising at 1% keeps the extreme from the scale.
  std::vector<double> values;
  for (int i = 0; i < 1000; ++i) values.push_back(i);
  values.push_back(1e9);
  std::vector<double> none(values.size(), 0.0);
  FeatureScaler s = FitFeatureScaler({"premium_index"}, {values}, {""}, {std::span<const double>()}, 4, 0.01);
  EXPECT_FALSE(s.log[0]);
  EXPECT_LT(s.hi[0], 1000);
  EXPECT_NEAR(s.center[0], 500, 5);
  EXPECT_NEAR(s.scale[0], 1000 / std::sqrt(12.0), 10);  // the sd of a uniform 0..1000
  EXPECT_DOUBLE_EQ(s.Transform(0, 1e9, 0), s.Transform(0, s.hi[0], 0));  // clipped to hi
  EXPECT_LE(s.Transform(0, 1e9, 0), FeatureScaler::kClip);
  EXPECT_NEAR(s.Transform(0, s.center[0], 0), 0, 1e-12);
  // A constant feature scales by 1 and maps to 0.
  std::vector<double> constant(10, 3.0);
  FeatureScaler c = FitFeatureScaler({"x"}, {constant}, {""}, {std::span<const double>()}, 0, 0.01);
  EXPECT_DOUBLE_EQ(c.scale[0], 1.0);
  EXPECT_DOUBLE_EQ(c.Transform(0, 3.0, 0), 0.0);
}

TEST(FeatureScalerTest, LogsCountsAndImputesRecencyAsTheLongest) {
  std::vector<double> recency = {1, 10, 100, kNaN};
  FeatureScaler s = FitFeatureScaler({"recency_days"}, {recency}, {""}, {std::span<const double>()}, 4, 0);
  EXPECT_TRUE(s.log[0]);
  EXPECT_DOUBLE_EQ(s.impute[0], 100);
  EXPECT_DOUBLE_EQ(s.Prepare(0, kNaN, 0), std::log1p(100.0));
  EXPECT_TRUE(IsLogTrait("orders_30d"));
  EXPECT_TRUE(IsLogTrait("frequency"));
  EXPECT_FALSE(IsLogTrait("discount_share"));
  EXPECT_EQ(RateSupport("email_open_rate"), "email_sends");
  EXPECT_EQ(RateSupport("frequency"), "");
}

TEST(FeatureScalerTest, SerialisesAndRejectsOtherFormats) {
  std::vector<double> rate = {0.1, 0.2, kNaN, 0.9};
  std::vector<double> orders = {1, 2, 0, 9};
  FeatureScaler s = FitFeatureScaler({"return_rate"}, {rate}, {"frequency"}, {orders}, 4, 0.01);
  std::string blob;
  s.Serialize(&blob);
  FeatureScaler back;
  ASSERT_TRUE(back.Deserialize(blob));
  EXPECT_EQ(back.features, s.features);
  EXPECT_EQ(back.support, s.support);
  for (double v : {0.0, 0.5, kNaN}) {
    EXPECT_DOUBLE_EQ(back.Transform(0, v, 3), s.Transform(0, v, 3));
  }
  EXPECT_FALSE(back.Deserialize(std::string("\x01\x00", 2)));  // format 1 (an older build)
  EXPECT_FALSE(back.Deserialize(blob.substr(0, blob.size() - 3)));  // truncated
}

TEST(FeatureScalerTest, InvertFindsTheValueThatReachesACoordinate) {
  std::vector<double> recency;
  for (int i = 0; i < 500; ++i) recency.push_back(i);
  FeatureScaler s = FitFeatureScaler({"recency_days"}, {recency}, {""}, {std::span<const double>()}, 4, 0.01);
  for (double days : {20.0, 40.0, 250.0}) {
    std::optional<double> back = s.Invert(0, s.Transform(0, days, 0));
    ASSERT_TRUE(back.has_value());
    EXPECT_NEAR(*back, days, 1e-9 * (1 + days));
  }
  // Below the bounds every value maps to the lowest coordinate; Invert gives the first to reach it.
  const double bottom = s.Transform(0, 0, 0);
  ASSERT_TRUE(s.Invert(0, bottom).has_value());
  EXPECT_DOUBLE_EQ(s.Transform(0, *s.Invert(0, bottom), 0), bottom);
  EXPECT_GT(*s.Invert(0, bottom), 3.0);
  // Beyond the winsor bound the coordinate stops moving: no value reaches more.
  const double top = s.Transform(0, 1e6, 0);
  EXPECT_FALSE(s.Invert(0, top + 1e-6).has_value());
  ASSERT_TRUE(s.Invert(0, top).has_value());
  EXPECT_NEAR(*s.Invert(0, top), std::expm1(s.hi[0]), 1e-9 * std::expm1(s.hi[0]));
}

TEST(FeatureScalerTest, DefaultFeaturesLeaveMonetaryTotalOut) {
  std::vector<std::string> defaults = DefaultClusteringFeatures();
  EXPECT_EQ(defaults.size(), 14u);
  EXPECT_EQ(std::count(defaults.begin(), defaults.end(), "monetary_total"), 0);
  EXPECT_EQ(std::count(defaults.begin(), defaults.end(), "frequency"), 1);
}

}  // namespace
}  // namespace shoal
