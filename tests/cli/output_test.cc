// What `remex` prints: protobuf JSON with 64-bit integers as numbers where
// that is exact, and the tables.
#include "cli/output.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <cstdint>
#include <limits>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "remex/v1/executor.pb.h"

namespace remex::cli {
namespace {

constexpr int64_t kLargestExact = (int64_t{1} << 53) - 1;

std::string MaxQueueJson(int64_t max_queue) {
  v1::PoolInfo pool;
  pool.set_max_queue(max_queue);
  return MessageJson(pool, /*pretty=*/false);
}

TEST(MessageJsonTest, Int64IsANumberWhereExact) {
  EXPECT_EQ(MaxQueueJson(100000), R"({"maxQueue":100000})");
  EXPECT_EQ(MaxQueueJson(kLargestExact), R"({"maxQueue":9007199254740991})");
  EXPECT_EQ(MaxQueueJson(-kLargestExact), R"({"maxQueue":-9007199254740991})");
  EXPECT_EQ(MaxQueueJson(kLargestExact + 1),
            R"({"maxQueue":"9007199254740992"})");
  EXPECT_EQ(MaxQueueJson(std::numeric_limits<int64_t>::min()),
            R"({"maxQueue":"-9223372036854775808"})");
}

TEST(MessageJsonTest, Uint64IsANumberWhereExact) {
  v1::SessionSubmit submit;
  submit.set_seq(7);
  EXPECT_EQ(MessageJson(submit, false), R"({"seq":7})");
  submit.set_seq(std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(MessageJson(submit, false), R"({"seq":"18446744073709551615"})");
}

TEST(MessageJsonTest, DefaultsLeftOutAsProtobufDoes) {
  EXPECT_EQ(MessageJson(v1::Task(), true), "{}");
  v1::Task task;
  task.set_id("x");
  task.set_state(v1::RUNNING);
  EXPECT_EQ(MessageJson(task, false), R"({"id":"x","state":"RUNNING"})");
  EXPECT_EQ(MessageJson(task, true),
            "{\n  \"id\": \"x\",\n  \"state\": \"RUNNING\"\n}");
}

// Everything a task can hold comes back whole through protobuf's JSON
// parser, pretty or not.
TEST(MessageJsonTest, RoundTripsThroughProtobufJson) {
  v1::Task task;
  task.set_id("id \"quoted\" \\ back\nslash\x01");
  task.set_function("f");
  task.set_state(v1::FAILED);
  (*task.mutable_result()->mutable_struct_value()->mutable_fields())["n"]
      .set_number_value(1.5);
  task.set_output(std::string("\0\xff bytes", 8));
  task.mutable_error()->set_code(2);
  task.mutable_error()->set_message("boom");
  task.set_attempt(2);
  (*task.mutable_labels())["b"] = "2";
  (*task.mutable_labels())["a"] = "1";
  task.mutable_created_at()->set_seconds(1700000000);
  task.mutable_created_at()->set_nanos(5);
  task.set_priority(-3);
  task.set_cancel_requested(true);
  for (const bool pretty : {false, true}) {
    const std::string json = MessageJson(task, pretty);
    v1::Task parsed;
    const auto status =
        google::protobuf::util::JsonStringToMessage(json, &parsed);
    ASSERT_TRUE(status.ok()) << status << "\n" << json;
    EXPECT_TRUE(
        google::protobuf::util::MessageDifferencer::Equals(parsed, task))
        << json;
    // Map keys sorted, whatever the map's order.
    EXPECT_LT(json.find("\"a\""), json.find("\"b\"")) << json;
    EXPECT_TRUE(absl::StrContains(json, "2023-11-14T22:13:20.000000005Z"))
        << json;
  }
}

TEST(TasksJsonTest, EmptyListIsAnEmptyArray) {
  EXPECT_EQ(TasksJson({}, false), R"({"tasks":[]})");
  EXPECT_EQ(TasksJson({}, true), "{\n  \"tasks\": []\n}");
  v1::Task task;
  task.set_id("a");
  EXPECT_EQ(TasksJson({task, task}, false),
            R"({"tasks":[{"id":"a"},{"id":"a"}]})");
}

TEST(JsonStringTest, Escapes) {
  EXPECT_EQ(JsonString("a\"b\\c\n\t\x1f"), R"("a\"b\\c\n\t\u001f")");
}

TEST(TasksTableTest, ColumnsAlignedAndErrorOnlyWhenThere) {
  const absl::Time now = absl::FromUnixSeconds(1000);
  v1::Task running;
  running.set_id("short");
  running.set_function("sleep");
  running.set_pool("default");
  running.set_state(v1::RUNNING);
  running.set_attempt(1);
  running.mutable_created_at()->set_seconds(990);
  running.mutable_started_at()->set_seconds(995);
  std::vector<std::string> lines =
      absl::StrSplit(TasksTable({running}, now), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2);
  EXPECT_EQ(lines[0],
            "ID     FUNCTION  POOL     STATE    ATTEMPT  AGE    RUN TIME");
  EXPECT_EQ(lines[1],
            "short  sleep     default  RUNNING  1/1      10.0s  5.0s");

  v1::Task failed = running;
  failed.set_id("a-longer-id");
  failed.set_state(v1::FAILED);
  failed.mutable_finished_at()->set_seconds(996);
  failed.mutable_error()->set_message("boom");
  lines = absl::StrSplit(TasksTable({running, failed}, now), '\n',
                         absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3);
  EXPECT_TRUE(absl::EndsWith(lines[0], "RUN TIME  ERROR")) << lines[0];
  EXPECT_TRUE(absl::StartsWith(lines[1], "short        sleep")) << lines[1];
  EXPECT_TRUE(absl::EndsWith(lines[2], "1.0s      boom")) << lines[2];
}

TEST(ShortDurationTest, Units) {
  EXPECT_EQ(ShortDuration(absl::Milliseconds(850)), "850ms");
  EXPECT_EQ(ShortDuration(absl::Milliseconds(12345)), "12.3s");
  EXPECT_EQ(ShortDuration(absl::Seconds(245)), "4m05s");
  EXPECT_EQ(ShortDuration(absl::Minutes(123)), "2h03m");
  EXPECT_EQ(ShortDuration(absl::Hours(76)), "3d04h");
  EXPECT_EQ(ShortDuration(-absl::Seconds(1)), "0ms");
}

TEST(ProgressBarTest, Fills) {
  EXPECT_EQ(ProgressBar(0, 4, 8), "[........]");
  EXPECT_EQ(ProgressBar(1, 4, 8), "[##......]");
  EXPECT_EQ(ProgressBar(4, 4, 8), "[########]");
  EXPECT_EQ(ProgressBar(0, 0, 4), "[####]");  // nothing to wait for
}

}  // namespace
}  // namespace remex::cli
