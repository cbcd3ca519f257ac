// Runs `remex-bench --smoke` (the real server as its child, every scenario at
// tiny sizes) and checks that it completes and prints a well-formed table.
// Figures are not asserted: the machine is shared and noisy.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
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

}  // namespace
}  // namespace remex
