// Runs `remex-bench --smoke` (the real server as its child, every scenario at
// tiny sizes) and checks that it completes and prints a well-formed table.
// Figures are not asserted: the machine is shared and noisy.
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace remex {
namespace {

// The cells of a table line "| a | b | ... |", trimmed.
std::vector<std::string> Cells(absl::string_view line) {
  std::vector<std::string> cells;
  if (!absl::ConsumePrefix(&line, "|") || !absl::ConsumeSuffix(&line, "|")) {
    return cells;
  }
  for (absl::string_view cell : absl::StrSplit(line, '|')) {
    cells.emplace_back(absl::StripAsciiWhitespace(cell));
  }
  return cells;
}

TEST(RemexBenchSmokeTest, EveryScenarioRunsAndTheTableIsWellFormed) {
  absl::StatusOr<testing::ProcessResult> run =
      testing::RunProcess({REMEX_BENCH_PATH, "--smoke"}, absl::Seconds(100));
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->exit_code, 0) << run->out << run->err;

  std::vector<std::vector<std::string>> rows;
  for (absl::string_view line : absl::StrSplit(run->out, '\n')) {
    if (absl::StartsWith(line, "|")) rows.push_back(Cells(line));
  }
  ASSERT_GE(rows.size(), 3u) << run->out;
  EXPECT_EQ(rows[0],
            (std::vector<std::string>{"scenario", "metric", "remex", "baseline",
                                      "ratio", "target", "result"}));
  std::vector<std::string> scenarios;
  for (size_t i = 2; i < rows.size(); ++i) {  // [1] is the rule
    const std::vector<std::string>& row = rows[i];
    ASSERT_EQ(row.size(), 7u) << "line " << i << " of\n" << run->out;
    double value = 0;
    EXPECT_TRUE(absl::SimpleAtod(row[2], &value))
        << "remex column of line " << i << ":\n"
        << run->out;
    EXPECT_TRUE(row[6] == "pass" || row[6] == "FAIL" || row[6] == "-")
        << row[6];
    if (scenarios.empty() || scenarios.back() != row[0]) {
      scenarios.push_back(row[0]);
    }
  }
  EXPECT_EQ(scenarios,
            (std::vector<std::string>{"rtt", "throughput", "cpu", "sleep",
                                      "awaiters", "retention"}))
      << run->out;
  // Every row with a baseline has a ratio.
  for (size_t i = 2; i < rows.size(); ++i) {
    if (rows[i][3] != "-") {
      EXPECT_NE(rows[i][4], "-") << run->out;
    }
  }
}

// --tls: the SDK rows of rtt and throughput against a TLS server (with a
// token) come next to the plaintext ones, with the plaintext figure as their
// baseline.
TEST(RemexBenchSmokeTest, TlsRowsComeWithPlaintextBaselines) {
  absl::StatusOr<testing::ProcessResult> run = testing::RunProcess(
      {REMEX_BENCH_PATH, "--smoke", "--tls", "--scenarios", "rtt,throughput"},
      absl::Seconds(100));
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->exit_code, 0) << run->out << run->err;
  std::vector<std::string> tls_metrics;
  for (absl::string_view line : absl::StrSplit(run->out, '\n')) {
    const std::vector<std::string> row = Cells(line);
    if (row.size() != 7 || !absl::StrContains(row[1], "TLS + token")) continue;
    tls_metrics.push_back(row[1]);
    double remex = 0;
    double baseline = 0;
    EXPECT_TRUE(absl::SimpleAtod(row[2], &remex)) << line;
    EXPECT_TRUE(absl::SimpleAtod(row[3], &baseline)) << line;
  }
  EXPECT_EQ(tls_metrics.size(), 3u) << run->out;
}

// --store postgres (a PostgreSQL of its own): the durable rows of rtt and
// throughput come with their bare-PostgreSQL and memory-store baselines, and
// the steady scenario prints its table of samples.
TEST(RemexBenchSmokeTest, DurableRowsAndSteadyTableWithAStartedPostgres) {
  absl::StatusOr<testing::ProcessResult> run =
      testing::RunProcess({REMEX_BENCH_PATH, "--smoke", "--store", "postgres",
                           "--scenarios", "rtt,throughput,steady"},
                          absl::Seconds(110));
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->exit_code, 0) << run->out << run->err;
  std::vector<std::string> durable;
  std::vector<std::string> steady_rows;
  std::vector<std::vector<std::string>> samples;
  for (absl::string_view line : absl::StrSplit(run->out, '\n')) {
    const std::vector<std::string> row = Cells(line);
    if (row.size() == 7 && (absl::StartsWith(row[1], "durable ") ||
                            absl::StartsWith(row[1], "bare PG inserts"))) {
      durable.push_back(absl::StrCat(row[0], ": ", row[1]));
      double remex = 0;
      double baseline = 0;
      double ratio = 0;
      EXPECT_TRUE(absl::SimpleAtod(row[2], &remex)) << line;
      EXPECT_TRUE(absl::SimpleAtod(row[3], &baseline)) << line;
      EXPECT_TRUE(absl::SimpleAtod(row[4], &ratio)) << line;
      EXPECT_GT(remex, 0) << line;
      EXPECT_GT(baseline, 0) << line;
    } else if (row.size() == 7 && row[0] == "steady") {
      steady_rows.push_back(row[1]);
    } else if (row.size() == 16 && !absl::StartsWith(row[0], "t (s)") &&
               !absl::StartsWith(row[0], "-")) {
      samples.push_back(row);
    }
  }
  // rtt: p50 and p99 against one insert per commit, p50 against two
  // commits and against the memory store; throughput: against the store's
  // batches, inserts only and the memory store, and 2 and 3 replicas
  // against one; and the bare inserts, multi-row against pipelined.
  EXPECT_EQ(durable.size(), 10u) << run->out;
  EXPECT_EQ(steady_rows.size(), 3u) << run->out;
  // --smoke: 6 s sampled every 2 s (t = 0, 2, 4, 6).
  ASSERT_EQ(samples.size(), 4u) << run->out;
  int64_t last_submitted = -1;
  for (const std::vector<std::string>& sample : samples) {
    int64_t submitted = 0;
    int64_t tasks_live = 0;
    ASSERT_TRUE(absl::SimpleAtoi(sample[1], &submitted)) << sample[1];
    ASSERT_TRUE(absl::SimpleAtoi(sample[4], &tasks_live)) << sample[4];
    EXPECT_GE(submitted, last_submitted);
    EXPECT_LE(tasks_live, submitted) << absl::StrJoin(sample, " | ");
    last_submitted = submitted;
  }
  // 200 tasks/s for 6 s were submitted (the rate is paced, not a burst).
  EXPECT_GT(last_submitted, 600) << run->out;
}

TEST(RemexBenchSmokeTest, SteadyNeedsAStore) {
  absl::StatusOr<testing::ProcessResult> run = testing::RunProcess(
      {REMEX_BENCH_PATH, "--smoke", "--scenarios", "steady"},
      absl::Seconds(30));
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->exit_code, 2) << run->out << run->err;
  EXPECT_TRUE(absl::StrContains(run->err, "give --store")) << run->err;
}

}  // namespace
}  // namespace remex
