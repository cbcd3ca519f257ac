// remex/json.h — JSON text <-> google.protobuf.Value and messages.
#ifndef REMEX_JSON_H_
#define REMEX_JSON_H_

#include <google/protobuf/message.h>
#include <google/protobuf/struct.pb.h>

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace remex {

// Parses any JSON value (object, array, string, number, bool, null).
// Returns INVALID_ARGUMENT if `text` is not JSON.
absl::StatusOr<google::protobuf::Value> ParseJson(std::string_view text);

// Like ParseJson, but throws std::invalid_argument if `text` is not JSON.
// Handy for literals: client.Submit("echo", remex::Json(R"({"x": 1})")).
google::protobuf::Value Json(std::string_view text);

// `message` as protobuf JSON (lowerCamelCase field names), compact unless
// `pretty`. A google.protobuf.Value prints as the value itself; an unset
// Value prints as null. The keys of a google.protobuf.Struct come in no
// particular order (protobuf map order). Throws std::invalid_argument if the
// message cannot be printed (e.g. a Value holding NaN).
std::string ToJson(const google::protobuf::Message& message,
                   bool pretty = false);

}  // namespace remex

#endif  // REMEX_JSON_H_
