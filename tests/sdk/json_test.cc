#include "remex/json.h"

#include <google/protobuf/timestamp.pb.h>

#include <stdexcept>

#include "gtest/gtest.h"
#include "remex/v1/executor.pb.h"

namespace remex {
namespace {

TEST(JsonTest, ParsesAnyJsonValue) {
  EXPECT_EQ(Json("5").number_value(), 5);
  EXPECT_EQ(Json(R"("text")").string_value(), "text");
  EXPECT_TRUE(Json("true").bool_value());
  EXPECT_EQ(Json("null").kind_case(), google::protobuf::Value::kNullValue);
  EXPECT_EQ(Json("[1, 2]").list_value().values_size(), 2);
  EXPECT_EQ(Json(R"({"a": {"b": 1}})")
                .struct_value()
                .fields()
                .at("a")
                .struct_value()
                .fields()
                .at("b")
                .number_value(),
            1);
}

TEST(JsonTest, RejectsInvalidJson) {
  const absl::StatusOr<google::protobuf::Value> value = ParseJson("{nope");
  EXPECT_EQ(value.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THROW(Json("{nope"), std::invalid_argument);
}

TEST(JsonTest, PrintsValuesAsThemselves) {
  EXPECT_EQ(ToJson(Json(R"({"x": [1, "a", null]})")), R"({"x":[1,"a",null]})");
  EXPECT_EQ(ToJson(Json("2.5")), "2.5");
  EXPECT_EQ(ToJson(google::protobuf::Value()), "null");
}

TEST(JsonTest, PrintsMessages) {
  v1::Task task;
  task.set_id("abc");
  task.set_state(v1::RUNNING);
  EXPECT_EQ(ToJson(task), R"({"id":"abc","state":"RUNNING"})");
  EXPECT_NE(ToJson(task, /*pretty=*/true).find('\n'), std::string::npos);
}

}  // namespace
}  // namespace remex
