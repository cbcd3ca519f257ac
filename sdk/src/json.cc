#include "remex/json.h"

#include <google/protobuf/util/json_util.h>

#include <stdexcept>

#include "absl/strings/str_cat.h"

namespace remex {

absl::StatusOr<google::protobuf::Value> ParseJson(std::string_view text) {
  google::protobuf::Value value;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(text.data(), text.size()), &value);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid JSON: ", status.message().as_string()));
  }
  return value;
}

google::protobuf::Value Json(std::string_view text) {
  absl::StatusOr<google::protobuf::Value> value = ParseJson(text);
  if (!value.ok())
    throw std::invalid_argument(std::string(value.status().message()));
  return *std::move(value);
}

std::string ToJson(const google::protobuf::Message& message, bool pretty) {
  const auto* value =
      google::protobuf::DynamicCastToGenerated<google::protobuf::Value>(
          &message);
  if (value != nullptr &&
      value->kind_case() == google::protobuf::Value::KIND_NOT_SET) {
    return "null";
  }
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  std::string json;
  const auto status =
      google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    throw std::invalid_argument(status.message().as_string());
  }
  return json;
}

}  // namespace remex
