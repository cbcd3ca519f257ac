#include "server/executor/task_query.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace remex::executor {
namespace {

// Page tokens are this and a list position in decimal, without leading
// zeros.
constexpr char kPageTokenPrefix[] = "p";

}  // namespace

std::optional<uint64_t> ParseListPageToken(absl::string_view token) {
  if (!absl::ConsumePrefix(&token, kPageTokenPrefix)) return std::nullopt;
  if (token.empty() || token.size() > 20 || token.front() == '0') {
    return std::nullopt;
  }
  uint64_t position = 0;
  for (char c : token) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  if (!absl::SimpleAtoi(token, &position)) return std::nullopt;  // overflow
  return position;
}

std::string ListPageToken(uint64_t list_position) {
  return absl::StrCat(kPageTokenPrefix, list_position);
}

}  // namespace remex::executor
