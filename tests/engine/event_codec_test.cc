// The stored event-block encoding: a round trip keeps every field, and a decode of a time range
// keeps exactly the events of that range with all their fields, lines and properties.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include <xxhash.h>

#include "store/event_codec.h"

namespace shoal {
namespace {

// Events at times 0, 10, 20, ... with a mix of optional fields, lines and properties.
EventBatch MakeBatch(int count) {
  EventBatch batch;
  for (int idx = 0; idx < count; ++idx) {
    Event e;
    e.event_id = batch.Intern("e" + std::to_string(idx));
    e.id_hash = 1000 + static_cast<uint64_t>(idx);
    e.type = static_cast<uint16_t>(idx % 5);
    e.timestamp = 10 * idx;
    e.customer_id = batch.Intern("C" + std::to_string(idx % 7));
    if (idx % 2 == 0) e.email = batch.Intern("c" + std::to_string(idx) + "@example.com");
    if (idx % 3 == 0) {
      e.order_id = batch.Intern("O" + std::to_string(idx));
      e.total = 12.5 * idx;
      e.first_line = static_cast<uint32_t>(batch.lines.size());
      e.num_lines = 2;
      for (int line = 0; line < 2; ++line) {
        OrderLine l;
        l.product_id = batch.Intern("P" + std::to_string(idx + line));
        l.category = batch.Intern("cat" + std::to_string(line));
        l.quantity = line + 1;
        l.unit_price = 3.25 + idx;
        batch.lines.push_back(l);
      }
    }
    if (idx % 4 == 1) {
      e.first_prop = static_cast<uint32_t>(batch.props.size());
      e.num_props = 2;
      EventProperty text;
      text.name = batch.Intern("tier");
      text.text = batch.Intern("gold" + std::to_string(idx));
      EventProperty number;
      number.name = batch.Intern("stars");
      number.is_number = true;
      number.number = idx;
      batch.props.push_back(text);
      batch.props.push_back(number);
    }
    batch.events.push_back(e);
  }
  return batch;
}

void ExpectSameEvent(const EventBatch& a, const Event& x, const EventBatch& b, const Event& y) {
  EXPECT_EQ(x.event_id, y.event_id);
  EXPECT_EQ(x.id_hash, y.id_hash);
  EXPECT_EQ(x.type, y.type);
  EXPECT_EQ(x.timestamp, y.timestamp);
  EXPECT_EQ(x.customer_id, y.customer_id);
  EXPECT_EQ(x.email, y.email);
  EXPECT_EQ(x.order_id, y.order_id);
  EXPECT_EQ(std::isnan(x.total), std::isnan(y.total));
  if (!std::isnan(x.total)) {
    EXPECT_EQ(x.total, y.total);
  }
  ASSERT_EQ(x.num_lines, y.num_lines);
  for (uint32_t line = 0; line < x.num_lines; ++line) {
    EXPECT_EQ(a.Lines(x)[line].product_id, b.Lines(y)[line].product_id);
    EXPECT_EQ(a.Lines(x)[line].category, b.Lines(y)[line].category);
    EXPECT_EQ(a.Lines(x)[line].unit_price, b.Lines(y)[line].unit_price);
  }
  ASSERT_EQ(x.num_props, y.num_props);
  for (uint32_t prop = 0; prop < x.num_props; ++prop) {
    EXPECT_EQ(a.Props(x)[prop].name, b.Props(y)[prop].name);
    EXPECT_EQ(a.Props(x)[prop].text, b.Props(y)[prop].text);
    EXPECT_EQ(a.Props(x)[prop].number, b.Props(y)[prop].number);
  }
}

TEST(EventCodec, RoundTripKeepsEveryField) {
  const EventBatch batch = MakeBatch(40);
  std::vector<uint32_t> all(batch.size());
  std::iota(all.begin(), all.end(), 0u);
  std::string block;
  EncodeEvents(batch, all, &block);
  EventBatch decoded;
  ASSERT_TRUE(DecodeEvents(block, &decoded).ok());
  ASSERT_EQ(decoded.size(), batch.size());
  for (size_t idx = 0; idx < batch.size(); ++idx) {
    ExpectSameEvent(batch, batch.events[idx], decoded, decoded.events[idx]);
  }
}

TEST(EventCodec, RangeDecodeKeepsExactlyTheRangesEvents) {
  const EventBatch batch = MakeBatch(40);  // times 0..390
  std::vector<uint32_t> all(batch.size());
  std::iota(all.begin(), all.end(), 0u);
  std::string block;
  EncodeEvents(batch, all, &block);
  // [from, to) boundaries on and between event times, empty and whole ranges.
  const std::vector<std::pair<TimeMicros, TimeMicros>> ranges = {
      {0, 400}, {100, 200}, {95, 205}, {390, 391}, {391, 1000}, {-50, 0}, {150, 150}};
  for (const auto& [from, to] : ranges) {
    EventBatch decoded;
    TimeMicros earliest = INT64_MAX, latest = INT64_MIN;
    ASSERT_TRUE(DecodeEventsInRange(block, from, to, &decoded, &earliest, &latest).ok());
    EXPECT_EQ(earliest, 0);  // every event counts toward the block's range, kept or not
    EXPECT_EQ(latest, 390);
    size_t next = 0;
    for (size_t idx = 0; idx < batch.size(); ++idx) {
      const Event& e = batch.events[idx];
      if (e.timestamp < from || e.timestamp >= to) continue;
      ASSERT_LT(next, decoded.size()) << from << ".." << to;
      ExpectSameEvent(batch, e, decoded, decoded.events[next++]);
    }
    EXPECT_EQ(next, decoded.size()) << from << ".." << to;
  }
  // A truncated block is an error, not a short batch.
  EventBatch decoded;
  EXPECT_FALSE(DecodeEventsInRange(block.substr(0, block.size() / 2), 0, 400, &decoded).ok());
}

// The block format is pinned: these digests are of the bytes the first encoder wrote (the format
// every stored workspace holds), for a mixed batch and for one whose fields need multi-byte
// varints (long strings, far timestamps) and whose block outgrows any first guess.
TEST(EventCodec, EncodedBytesAreThoseOfTheStoredFormat) {
  auto digest = [](const EventBatch& batch) {
    std::vector<uint32_t> all(batch.size());
    std::iota(all.begin(), all.end(), 0u);
    std::string block = "prefix";  // appends after what the buffer holds
    EncodeEvents(batch, all, &block);
    return XXH3_64bits(block.data(), block.size());
  };
  EventBatch mixed = MakeBatch(40);
  EventBatch large = MakeBatch(5000);
  for (size_t i = 0; i < large.events.size(); i += 97) {
    large.events[i].customer_id = large.Intern(std::string(300 + i % 50, static_cast<char>('a' + i % 26)));
    large.events[i].timestamp = static_cast<TimeMicros>(i) * 86'400'000'000LL - 5'000'000'000'000'000LL;
    large.events[i].dwell_seconds = 0.5 * static_cast<double>(i);
  }
  EXPECT_EQ(digest(mixed), 0x4b9212177d7f1020ull) << std::hex << digest(mixed);
  EXPECT_EQ(digest(large), 0x7690c59f0c3aa45cull) << std::hex << digest(large);
}

}  // namespace
}  // namespace shoal
