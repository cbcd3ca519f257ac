// common/log.h: the text and JSON lines, escaping, levels, the rate limit.
#include "common/log.h"

#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "spdlog/sinks/base_sink.h"

namespace remex::log {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

// Collects the formatted lines (timestamp included).
class CollectingSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::vector<std::string> lines() {
    std::lock_guard<std::mutex> lock(mutex_);
    return lines_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    std::string line(formatted.data(), formatted.size());
    while (!line.empty() && line.back() == '\n') line.pop_back();
    lines_.push_back(std::move(line));
  }
  void flush_() override {}

 private:
  std::vector<std::string> lines_;
};

class LogTest : public ::testing::Test {
 protected:
  void Use(Format format, Level level = Level::kInfo) {
    sink_ = std::make_shared<CollectingSink>();
    Configure({.format = format, .level = level, .sink = sink_});
  }
  void TearDown() override { Configure({}); }

  std::shared_ptr<CollectingSink> sink_;
};

TEST_F(LogTest, TextLineHasTimestampLevelEventFieldsAndMessage) {
  Use(Format::kText);
  Warn("worker_died", "worker killed by signal SIGSEGV",
       {{"pool", "process"},
        {"pid", 4242},
        {"signal", "SIGSEGV"},
        {"ready", true},
        {"took", absl::Milliseconds(1500)}});
  ASSERT_EQ(sink_->lines().size(), 1u);
  EXPECT_THAT(
      sink_->lines()[0],
      MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                   "\\.[0-9]{3}Z warn worker_died pool=process pid=4242 "
                   "signal=SIGSEGV ready=true took=1\\.5s "
                   "msg=\"worker killed by signal SIGSEGV\""));
}

TEST_F(LogTest, TextQuotesValuesThatWouldBreakTheLine) {
  EXPECT_EQ(FormatBody(Format::kText, Level::kInfo, "e", "a \"b\"\nc",
                       {{"empty", ""},
                        {"spaced", "a b"},
                        {"eq", "k=v"},
                        {"control", std::string("x\x01y")}}),
            "info e empty=\"\" spaced=\"a b\" eq=\"k=v\" "
            "control=\"x\\x01y\" msg=\"a \\\"b\\\"\\nc\"");
}

TEST_F(LogTest, JsonLineIsOneObjectWithTypedFields) {
  Use(Format::kJson);
  Info("start", "remex-server started",
       {{"version", "1.2.3"},
        {"workers", 4},
        {"open_files", uint64_t{1} << 63},
        {"ratio", 0.5},
        {"tls", false}});
  ASSERT_EQ(sink_->lines().size(), 1u);
  const nlohmann::json line = nlohmann::json::parse(sink_->lines()[0]);
  EXPECT_THAT(line["ts"].get<std::string>(),
              MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{3}Z"));
  EXPECT_EQ(line["level"], "info");
  EXPECT_EQ(line["event"], "start");
  EXPECT_EQ(line["msg"], "remex-server started");
  EXPECT_EQ(line["version"], "1.2.3");
  EXPECT_EQ(line["workers"], 4);
  EXPECT_EQ(line["open_files"].get<uint64_t>(), uint64_t{1} << 63);
  EXPECT_EQ(line["ratio"], 0.5);
  EXPECT_EQ(line["tls"], false);
}

TEST_F(LogTest, JsonEscapesAnythingAndReplacesBadUtf8) {
  const std::string body = FormatBody(
      Format::kJson, Level::kError, "e\"vent", "line\nbreak \"quoted\" \\ \x01",
      {{"peer", std::string("bad \xff utf8")}, {"nan", 0.0 / 0.0}});
  const nlohmann::json line = nlohmann::json::parse(absl::StrCat("{", body));
  EXPECT_EQ(line["event"], "e\"vent");
  EXPECT_EQ(line["msg"], "line\nbreak \"quoted\" \\ \x01");
  EXPECT_EQ(line["peer"], "bad \xEF\xBF\xBD utf8");
  EXPECT_TRUE(line["nan"].is_null());
}

TEST_F(LogTest, LevelDropsWhatIsBelowIt) {
  Use(Format::kText, Level::kWarn);
  EXPECT_FALSE(Enabled(Level::kInfo));
  EXPECT_TRUE(Enabled(Level::kWarn));
  Debug("a", "dropped");
  Info("b", "dropped");
  Warn("c", "kept");
  Error("d", "kept");
  const std::vector<std::string> lines = sink_->lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[0], HasSubstr(" warn c "));
  EXPECT_THAT(lines[1], HasSubstr(" error d "));
}

TEST_F(LogTest, ParsesLevelsAndFormats) {
  EXPECT_EQ(*ParseLevel("debug"), Level::kDebug);
  EXPECT_EQ(*ParseLevel("error"), Level::kError);
  EXPECT_EQ(*ParseFormat("json"), Format::kJson);
  EXPECT_EQ(*ParseFormat("text"), Format::kText);
  EXPECT_THAT(ParseFormat("xml").status().message(),
              HasSubstr("expected text or json, got 'xml'"));
  EXPECT_THAT(ParseLevel("verbose").status().message(),
              HasSubstr("expected debug, info, warn or error"));
}

TEST_F(LogTest, LinesFromManyThreadsStayWhole) {
  Use(Format::kJson);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < 200; ++i) {
        Info("tick", std::string(100, 'x'), {{"thread", t}, {"i", i}});
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const std::vector<std::string> lines = sink_->lines();
  ASSERT_EQ(lines.size(), 1600u);
  for (const std::string& line : lines) {
    EXPECT_TRUE(nlohmann::json::accept(line)) << line;
  }
}

TEST(RateLimitTest, LetsTheFirstThroughThenCountsTheRest) {
  RateLimit limit(absl::Hours(1));
  int64_t suppressed = -1;
  EXPECT_TRUE(limit.Allow(suppressed));
  EXPECT_EQ(suppressed, 0);
  EXPECT_FALSE(limit.Allow(suppressed));
  EXPECT_FALSE(limit.Allow(suppressed));

  RateLimit none(absl::ZeroDuration());
  EXPECT_TRUE(none.Allow(suppressed));
  EXPECT_TRUE(none.Allow(suppressed));
  EXPECT_EQ(suppressed, 0);
}

}  // namespace
}  // namespace remex::log
