// Random bytes (with many delimiters, quotes, newlines, braces and invalid UTF-8) never crash a
// reader, and every record is accounted for: an event or a quarantine entry.
#include <gtest/gtest.h>

#include <random>

#include "ingest/reader.h"
#include "test_util.h"

namespace shoal {
namespace {

using testing_util::ReadAll;
using testing_util::WriteTemp;

std::string Garbage(uint64_t seed, size_t bytes, std::string_view alphabet) {
  std::mt19937_64 rng(seed);
  std::string out;
  out.reserve(bytes);
  for (size_t i = 0; i < bytes; ++i) {
    if (rng() % 4 == 0) {
      out.push_back(static_cast<char>(rng() & 0xFF));
    } else {
      out.push_back(alphabet[rng() % alphabet.size()]);
    }
  }
  return out;
}

TEST(GarbageTest, DelimitedRecordsAreAllAccountedFor) {
  EventTypeRegistry registry;
  auto m = Mapping::FromSpec("type=kind,customer_id=c,timestamp=t,total=x");
  ASSERT_TRUE(m.ok());
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    std::string content = "kind,c,t,x\n" + Garbage(seed, 200000, "page_view,2024-01-01,\"\n\r1.5 ");
    Quarantine q;
    SourceSpec spec;
    spec.path = WriteTemp("g.csv", content);
    spec.mapping = *m;
    spec.max_record_bytes = 4096;
    auto r = ReadAll(spec, registry, &q, 64);
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_EQ(r.stats.records, r.stats.events + r.stats.quarantined) << seed;
    EXPECT_EQ(q.total(), r.stats.quarantined);
    EXPECT_EQ(r.stats.bytes, content.size());
  }
}

TEST(GarbageTest, JsonlRecordsAreAllAccountedFor) {
  EventTypeRegistry registry;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    std::string content =
        Garbage(seed, 200000, "{}[]\":,\n type timestamp customer_id 1 page_view 2024-01-01");
    content += "\n{\"type\":\"page_view\",\"timestamp\":1,\"customer_id\":\"a\"}";
    Quarantine q;
    SourceSpec spec;
    spec.path = WriteTemp("g.jsonl", content);
    spec.max_record_bytes = 4096;
    auto r = ReadAll(spec, registry, &q, 64);
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_EQ(r.stats.records, r.stats.events + r.stats.quarantined) << seed;
    EXPECT_GE(r.stats.events, 1u);
    EXPECT_EQ(r.stats.bytes, content.size());
  }
}

}  // namespace
}  // namespace shoal
