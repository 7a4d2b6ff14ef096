// Engine::PrepareCheckpoint / FinishCheckpoint (the server's checkpoint in steps) against
// Checkpoint(): same stored result, readers may run during the prepare step, and profiles
// dirtied after the prepare stay dirty.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>

#include "engine/engine.h"
#include "ingest/json_events.h"

namespace shoal {
namespace {

std::string TempDb(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("shoal_checkpoint_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir.string();
}

void ApplyJson(Engine& engine, const std::string& json) {
  EventBatch batch;
  std::vector<ItemResult> items;
  ASSERT_TRUE(ParseJsonEvents(json, engine.config().registry, &batch, &items).ok());
  ASSERT_TRUE(engine.Apply(batch, /*sync=*/true).ok());
}

std::string StateBytes(const Engine& engine, const std::string& id) {
  uint32_t p = engine.FindProfile(id);
  if (p == kNoProfile) return "<none>";
  std::string out;
  engine.state(p).Serialize(&out);
  return out;
}

TEST(EngineCheckpointTest, StepsStoreWhatCheckpointStoresWhileReadersRun) {
  const std::string db = TempDb("steps");
  std::string c1, c2;
  {
    EngineOptions options;
    options.db_dir = db;
    options.checkpoint_blocks = size_t{1} << 40;  // only explicit checkpoints
    auto engine = Engine::Open(options, Context());
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    Engine& e = **engine;
    for (int i = 0; i < 50; ++i) {
      ApplyJson(e, R"({"event_id":"o)" + std::to_string(i) +
                       R"(","type":"order","timestamp":1709648000,"customer_id":"C)" +
                       std::to_string(i % 7) + R"(","total":)" + std::to_string(10 + i) + "}");
    }
    // A reader on another thread while the snapshot is prepared (the server holds a shared
    // lock for this step): both only read.
    std::atomic<bool> stop{false};
    std::atomic<int> reads{0};
    std::thread reader([&] {
      while (!stop.load()) {
        if (e.FindProfile("C3") != kNoProfile && e.state(e.FindProfile("C3")).orders().size() > 0) {
          reads.fetch_add(1);
        }
      }
    });
    Engine::PendingCheckpoint pending;
    e.PrepareCheckpoint(&pending);
    stop.store(true);
    reader.join();
    EXPECT_EQ(pending.dirty_profiles, 7u);
    ASSERT_TRUE(e.store().Write(pending.group, /*sync=*/true).ok());
    e.FinishCheckpoint(pending);
    Engine::PendingCheckpoint again;
    e.PrepareCheckpoint(&again);
    EXPECT_EQ(again.dirty_profiles, 0u);  // all clean
    // One more event after the checkpoint: that profile is dirty again, and Checkpoint()
    // (the three steps in one) stores it.
    ApplyJson(e, R"({"event_id":"late","type":"order","timestamp":1709648100,"customer_id":"C2","total":99})");
    Engine::PendingCheckpoint late;
    e.PrepareCheckpoint(&late);
    EXPECT_EQ(late.dirty_profiles, 1u);
    ASSERT_TRUE(e.Checkpoint().ok());
    c1 = StateBytes(e, "C1");
    c2 = StateBytes(e, "C2");
  }
  EngineOptions options;
  options.db_dir = db;
  auto reopened = Engine::Open(options, Context());
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(StateBytes(**reopened, "C1"), c1);
  EXPECT_EQ(StateBytes(**reopened, "C2"), c2);
  EXPECT_EQ((*reopened)->state((*reopened)->FindProfile("C2")).orders().size(), 8u);  // 7 of the 50 + the late one
  std::filesystem::remove_all(db);
}

}  // namespace
}  // namespace shoal
