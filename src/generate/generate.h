// shoal generate: a synthetic shop with planted behavioural segments, for tests, demos and
// benchmarks. Every built-in event type is produced; the truth file says which planted segment
// each customer was drawn from, so clustering, RFM, BTYD and cross-sell can be scored against it.
// docs/generate.md describes the model, the segment signatures, the planted cross-sell rules and
// the file formats.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/context.h"
#include "common/status.h"

namespace shoal {

// Number of planted segments and their truth labels, in segment-code order:
// price_sensitive_replenishment, premium_trend_explorers, cart_abandoners, lapsed_big_spenders,
// one_time_buyers, window_shoppers.
inline constexpr int kNumShopSegments = 6;
std::span<const std::string_view> ShopSegmentNames();

// One category of the synthetic catalogue. Prices are list prices in currency units; each
// category holds products_per_category products whose prices spread log-normally around
// median_price (the catalogue is fixed: it does not depend on the seed).
struct ShopCategory {
  std::string_view name;
  double median_price = 0;     // target median list price of the category
  int group = 0;               // 0 everyday, 1 home, 2 fashion & personal care, 3 leisure
  double launch_fraction = 0;  // launched this far into the history window (0 = from the start)
};
std::span<const ShopCategory> ShopCategories();

// A planted basket affinity: when an order holds a line of `antecedent`, a line of `consequent`
// is added with probability `probability` (if not already in the basket), so
// P(consequent | antecedent) is far above P(consequent) and lift > 1 on every rule.
struct PlantedAffinity {
  std::string_view antecedent;
  std::string_view consequent;
  double probability = 0;
};
std::span<const PlantedAffinity> PlantedAffinities();

struct GenerateOptions {
  uint64_t customers = 50000;             // number of customers (truth rows)
  uint64_t seed = 42;                     // every byte written is a pure function of the options
  std::string start_date = "2023-01-01";  // first day of the shop's history (UTC, YYYY-MM-DD)
  std::string end_date = "2025-12-31";    // last day, the shop's "today"; window >= 730 days
  bool write_jsonl = true;                // write DIR/events.jsonl
  bool write_csv = true;                  // write DIR/events.csv
  double anonymous_share = 0.15;          // share of browsing sessions done under an anonymous_id
                                          // (linked later by identify or by an order)
  double messy_share = 0.0;  // share of events deliberately corrupted (bad-input tests)
  // Shares of the six segments (ShopSegmentNames order); normalised, need not sum to 1.
  std::array<double, kNumShopSegments> segment_shares = {0.18, 0.14, 0.16, 0.14, 0.22, 0.16};
  double referral_share = 0.06;    // share of customers referred by an earlier customer
  double opt_out_scale = 1.0;      // multiplies the per-segment marketing opt-out rates (2-6 %)
  int products_per_category = 50;  // catalogue size = 40 categories x this (2,000 by default)
  std::string currency = "EUR";    // currency code on orders, returns and checkouts
  uint64_t chunk_customers = 256;  // customers per parallel work unit; the output never depends
                                   // on it. Memory: 4 x threads chunks in flight, ~20 KB of
                                   // text per customer (~40 MB with 2 threads by default)
  // Optional: called after each batch of chunks is written with (customers done, total).
  std::function<void(uint64_t, uint64_t)> progress;
};

struct GenerateStats {
  uint64_t customers = 0;
  uint64_t events = 0;  // events written (corrupted ones included)
  uint64_t orders = 0;
  uint64_t order_lines = 0;
  uint64_t messy_events = 0;  // events written corrupted on purpose
  uint64_t csv_rows = 0;      // data rows of events.csv (one per order/return line)
  uint64_t jsonl_bytes = 0, csv_bytes = 0;
  std::vector<uint64_t> per_segment;  // customers per segment (ShopSegmentNames order)
  std::vector<uint64_t> per_type;     // events per built-in EventType code
};

// Writes DIR/events.jsonl and DIR/events.csv (canonical formats, docs/generate.md),
// DIR/truth.csv (customer_id,segment) and DIR/README.txt (the options and the counts), creating
// DIR if needed. Deterministic: equal options give byte-identical files whatever ctx.Threads()
// (ctx.seed is not used: options.seed is). Customers are generated in fixed chunks in parallel
// and written in order; memory stays bounded by the chunks in flight.
// Returns InvalidArgument for bad options (unparsable dates, window under 730 days, shares out
// of [0,1], no positive segment share) and IOError when a file cannot be written.
Result<GenerateStats> GenerateShop(const GenerateOptions& options, const std::string& out_dir,
                                   const Context& ctx);

}  // namespace shoal
