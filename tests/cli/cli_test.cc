#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

struct CmdResult {
  int exit_code = -1;
  std::string out;  // stdout and stderr
};

CmdResult Shoal(const std::string& args) {
  std::string cmd = std::string(SHOAL_BINARY) + " " + args + " 2>&1";
  CmdResult r;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
  int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("shoal-cli-test-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  static std::string Data(const std::string& rel) { return std::string(SHOAL_SHARED_DATA) + "/" + rel; }
  static std::string Recipe(const std::string& name) { return std::string(SHOAL_SOURCE_DIR) + "/recipes/" + name; }
  fs::path dir_;
};

TEST_F(CliTest, CdnowRecipeIngestProfileExportAndForget) {
  CmdResult ingest = Shoal("ingest --quiet --db " + Path("db") + " --mapping " + Recipe("cdnow.toml") + " " +
                     Data("cdnow/CDNOW_master.txt"));
  ASSERT_EQ(ingest.exit_code, 0) << ingest.out;
  EXPECT_NE(ingest.out.find("events stored    69659"), std::string::npos) << ingest.out;
  EXPECT_NE(ingest.out.find("profiles         23570"), std::string::npos) << ingest.out;
  // Idempotent: the same file again stores nothing.
  CmdResult again = Shoal("ingest --quiet --db " + Path("db") + " --mapping " + Recipe("cdnow.toml") + " " +
                    Data("cdnow/CDNOW_master.txt"));
  EXPECT_NE(again.out.find("events stored    0"), std::string::npos) << again.out;
  CmdResult profile = Shoal("profile --db " + Path("db") + " 00004");
  ASSERT_EQ(profile.exit_code, 0) << profile.out;
  EXPECT_NE(profile.out.find("\"frequency\":4"), std::string::npos) << profile.out;
  CmdResult missing = Shoal("profile --db " + Path("db") + " no-such-customer");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.out.find("no profile has the identifier"), std::string::npos);
  CmdResult exported = Shoal("export --db " + Path("db") + " --out " + Path("out.csv"));
  ASSERT_EQ(exported.exit_code, 0) << exported.out;
  std::ifstream in(Path("out.csv"));
  std::string header;
  std::getline(in, header);
  EXPECT_EQ(header.rfind("customer_id,recency_days", 0), 0u) << header;
  size_t rows = 0;
  double monetary_sum = 0;
  std::string line;
  // monetary_total is the 8th trait column (after customer_id): find its index from the header.
  std::vector<std::string> cols;
  std::stringstream hs(header);
  for (std::string c; std::getline(hs, c, ',');) cols.push_back(c);
  size_t money = std::find(cols.begin(), cols.end(), "monetary_total") - cols.begin();
  ASSERT_LT(money, cols.size());
  while (std::getline(in, line)) {
    ++rows;
    std::stringstream ls(line);
    std::string cell;
    for (size_t i = 0; i <= money && std::getline(ls, cell, ','); ++i) {}
    if (!cell.empty()) monetary_sum += std::stod(cell);
  }
  EXPECT_EQ(rows, 23570u);
  EXPECT_NEAR(monetary_sum, 2500315.63, 0.01);
  // --columns: just the RFM columns, same money; an unknown column is an error naming it.
  CmdResult rfm = Shoal("export --db " + Path("db") + " --out " + Path("rfm.csv") +
                        " --columns frequency,monetary_total");
  ASSERT_EQ(rfm.exit_code, 0) << rfm.out;
  std::ifstream rin(Path("rfm.csv"));
  std::getline(rin, header);
  EXPECT_EQ(header, "customer_id,frequency,monetary_total");
  double rfm_money = 0;
  size_t rfm_rows = 0;
  while (std::getline(rin, line)) {
    ++rfm_rows;
    std::string cell = line.substr(line.rfind(',') + 1);
    if (!cell.empty()) rfm_money += std::stod(cell);
  }
  EXPECT_EQ(rfm_rows, 23570u);
  EXPECT_NEAR(rfm_money, 2500315.63, 0.01);
  CmdResult unknown = Shoal("export --db " + Path("db") + " --out " + Path("x.csv") + " --columns monetary,frequency");
  EXPECT_EQ(unknown.exit_code, 2) << unknown.out;
  EXPECT_NE(unknown.out.find("unknown export column 'monetary'"), std::string::npos) << unknown.out;
  // --memory prints the breakdown.
  CmdResult memory = Shoal("ingest --quiet --memory --db " + Path("db") + " --mapping " + Recipe("cdnow.toml") + " " +
                           Data("cdnow/CDNOW_master.txt"));
  EXPECT_NE(memory.out.find("event-id dedupe"), std::string::npos) << memory.out;
  EXPECT_NE(memory.out.find("store block cache"), std::string::npos) << memory.out;
  // compact: the ingest wrote its event blocks uncompressed; afterwards the store is smaller and
  // every profile the same.
  CmdResult compacted = Shoal("compact --db " + Path("db"));
  ASSERT_EQ(compacted.exit_code, 0) << compacted.out;
  double before_mib = 0, after_mib = 0;
  ASSERT_EQ(std::sscanf(compacted.out.c_str() + compacted.out.find(": "), ": %lf MiB -> %lf MiB", &before_mib,
                        &after_mib), 2) << compacted.out;
  EXPECT_LT(after_mib, before_mib) << compacted.out;
  ASSERT_EQ(Shoal("export --db " + Path("db") + " --out " + Path("compacted.csv")).exit_code, 0);
  auto slurp = [](const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  EXPECT_EQ(slurp(Path("compacted.csv")), slurp(Path("out.csv")));
  CmdResult forget = Shoal("forget --db " + Path("db") + " 00004");
  ASSERT_EQ(forget.exit_code, 0) << forget.out;
  EXPECT_EQ(Shoal("profile --db " + Path("db") + " 00004").exit_code, 2);
}

TEST_F(CliTest, BadInputIsQuarantinedAndStrictFails) {
  std::ofstream(Path("messy.jsonl"))
      << "{\"event_id\":\"1\",\"type\":\"order\",\"timestamp\":\"2024-01-02\",\"customer_id\":\"A\",\"total\":10}\n"
      << "{not json\n"
      << "{\"event_id\":\"2\",\"type\":\"teleport\",\"timestamp\":\"2024-01-02\",\"customer_id\":\"A\"}\n"
      << "{\"event_id\":\"3\",\"type\":\"order\",\"timestamp\":\"yesterday\",\"customer_id\":\"B\",\"total\":5}\n"
      << "{\"event_id\":\"4\",\"type\":\"product_view\",\"timestamp\":1704200000,\"customer_id\":\"B\"}\n";
  CmdResult lenient = Shoal("ingest --quiet --db " + Path("db") + " " + Path("messy.jsonl"));
  EXPECT_EQ(lenient.exit_code, 0) << lenient.out;
  EXPECT_NE(lenient.out.find("events stored    2"), std::string::npos) << lenient.out;
  EXPECT_NE(lenient.out.find("bad (quarantined) 3"), std::string::npos) << lenient.out;
  std::ifstream q(Path("db/quarantine.jsonl"));
  std::string all((std::istreambuf_iterator<char>(q)), std::istreambuf_iterator<char>());
  EXPECT_NE(all.find("teleport"), std::string::npos);
  EXPECT_NE(all.find("\"line\":4"), std::string::npos) << all;
  CmdResult strict = Shoal("ingest --quiet --strict --db " + Path("db2") + " " + Path("messy.jsonl"));
  EXPECT_EQ(strict.exit_code, 3) << strict.out;
  CmdResult unreadable = Shoal("ingest --quiet --db " + Path("db3") + " " + Path("does-not-exist.jsonl"));
  EXPECT_EQ(unreadable.exit_code, 1) << unreadable.out;
  EXPECT_NE(unreadable.out.find("does-not-exist.jsonl"), std::string::npos);
  CmdResult bad_mapping = Shoal("ingest --quiet --db " + Path("db4") + " --map nonsense " + Path("messy.jsonl"));
  EXPECT_EQ(bad_mapping.exit_code, 2) << bad_mapping.out;
}

TEST_F(CliTest, GroceriesAffinitiesMatchArules) {
  CmdResult ingest = Shoal("ingest --quiet --db " + Path("db") + " --mapping " + Recipe("groceries.toml") + " " +
                     Data("groceries/groceries.csv"));
  ASSERT_EQ(ingest.exit_code, 0) << ingest.out;
  CmdResult rules = Shoal("affinities --db " + Path("db") + " --level product --min-support 0.001 --min-confidence 0.5 --top 0 --json");
  ASSERT_EQ(rules.exit_code, 0) << rules.out.substr(0, 500);
  size_t lines = std::count(rules.out.begin(), rules.out.end(), '\n');
  EXPECT_EQ(lines, 5668u);
  std::string first = rules.out.substr(0, rules.out.find('\n'));
  EXPECT_NE(first.find("hamburger meat"), std::string::npos) << first;
  EXPECT_NE(first.find("\"lift\":18.99"), std::string::npos) << first;
}

// The CDNOW check of docs/predictions.md is two commands after the ingest; `shoal models`
// prints the published fit readably and `--json` as JSON.
TEST_F(CliTest, CdnowBuildAndModels) {
  ASSERT_EQ(Shoal("ingest --quiet --db " + Path("db") + " --mapping " + Recipe("cdnow-elog.toml") + " " +
                  Data("cdnow/cdnowElog.csv"))
                .exit_code,
            0);
  CmdResult build = Shoal("build --quiet --db " + Path("db") + " --calibration-end 1997-09-30 --time-unit week");
  ASSERT_EQ(build.exit_code, 0) << build.out;
  EXPECT_NE(build.out.find("BTYD models (calibration to 1997-09-30, time in weeks"), std::string::npos)
      << build.out;
  CmdResult models = Shoal("models --db " + Path("db"));
  ASSERT_EQ(models.exit_code, 0) << models.out;
  EXPECT_NE(models.out.find("BG/NBD       r 0.2426 (se 0.013)  alpha 4.414"), std::string::npos) << models.out;
  EXPECT_NE(models.out.find("Gamma-Gamma  p 6.25 "), std::string::npos) << models.out;
  EXPECT_NE(models.out.find("purchase (30-day window)"), std::string::npos) << models.out;
  EXPECT_EQ(models.out.find("\"bgnbd\":{"), std::string::npos) << "the readable form prints no JSON";
  CmdResult json = Shoal("models --db " + Path("db") + " --json");
  ASSERT_EQ(json.exit_code, 0) << json.out;
  EXPECT_EQ(json.out.rfind("{\"calibration_end\":\"1997-09-30\"", 0), 0u) << json.out.substr(0, 200);
  EXPECT_NE(json.out.find("\"bgnbd\":{\"r\":0.242"), std::string::npos);
}

TEST_F(CliTest, HelpAndUnknownCommand) {
  EXPECT_EQ(Shoal("--help").exit_code, 0);
  EXPECT_NE(Shoal("ingest --help").out.find("--mapping"), std::string::npos);
  EXPECT_NE(Shoal("frobnicate").exit_code, 0);
}

// A mistyped --db is an error that says what to do, and leaves no empty workspace behind.
TEST_F(CliTest, CommandsOtherThanIngestNeedAnExistingWorkspace) {
  const std::string missing = Path("no-such-workspace");
  const std::vector<std::string> commands = {"build", "forget someone@example.com", "profile C1",
                                             "models", "export --out " + Path("x.csv")};
  for (const std::string& command : commands) {
    CmdResult r = Shoal(command + " --db " + missing);
    EXPECT_EQ(r.exit_code, 2) << command << ": " << r.out;
    EXPECT_NE(r.out.find("no workspace at " + missing), std::string::npos) << command << ": " << r.out;
    EXPECT_NE(r.out.find("shoal ingest --db"), std::string::npos) << command;
    EXPECT_FALSE(fs::exists(missing)) << command;
  }
}

}  // namespace
