// Helpers for the ingest tests: temporary files, reading a whole source, reading the quarantine.
#pragma once

#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "ingest/reader.h"

namespace shoal::testing_util {

// A fresh file under the test temp dir with `content`; returns its path.
inline std::string WriteTemp(const std::string& name, const std::string& content) {
  static std::atomic<int> counter{0};
  std::string dir = ::testing::TempDir() + "shoal_ingest_" + std::to_string(::getpid()) + "_" +
                    std::to_string(counter++);
  std::string cmd = "mkdir -p '" + dir + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  std::string path = dir + "/" + name;
  std::ofstream out(path, std::ios::binary);
  out << content;
  return path;
}

struct ReadResult {
  EventBatch events;  // all events, copied
  ReadStats stats;
  Status status;
};

inline ReadResult ReadAll(const SourceSpec& spec, const EventTypeRegistry& registry,
                          Quarantine* quarantine, size_t batch_size = 1000) {
  ReadResult r;
  auto reader = EventReader::Open(spec, registry, quarantine);
  if (!reader.ok()) {
    r.status = reader.status();
    return r;
  }
  EventBatch batch;
  while (true) {
    auto more = (*reader)->Next(&batch, batch_size);
    if (!more.ok()) {
      r.status = more.status();
      break;
    }
    if (!*more) {
      EXPECT_TRUE(batch.empty());
      break;
    }
    EXPECT_LE(batch.size(), batch_size);
    for (const Event& e : batch.events) r.events.AppendCopy(batch, e);
  }
  r.stats = (*reader)->stats();
  return r;
}

struct QuarantineRecord {
  std::string source, field, reason, raw;
  uint64_t line = 0;
};

// Parses the quarantine file; fails the test if a line is not valid JSON.
inline std::vector<QuarantineRecord> ReadQuarantine(const std::string& path) {
  std::vector<QuarantineRecord> out;
  std::ifstream in(path, std::ios::binary);
  std::string line;
  simdjson::dom::parser parser;
  while (std::getline(in, line)) {
    simdjson::dom::element doc;
    auto err = parser.parse(line).get(doc);
    EXPECT_FALSE(err) << "quarantine line is not JSON: " << line;
    if (err) continue;
    QuarantineRecord q;
    q.source = std::string(doc["source"].get_string().value());
    q.line = doc["line"].get_uint64().value();
    q.field = std::string(doc["field"].get_string().value());
    q.reason = std::string(doc["reason"].get_string().value());
    q.raw = std::string(doc["raw"].get_string().value());
    out.push_back(std::move(q));
  }
  return out;
}

inline std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

}  // namespace shoal::testing_util
