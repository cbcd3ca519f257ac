// List page tokens (executor::ParseListPageToken, made by ListPageToken)
// and List itself with any token, page size, state and filters: a token is
// read back only if the server could have made it, and List answers a
// page or INVALID_ARGUMENT, never a crash.
//
// Input: a FuzzedDataProvider stream (position, page size, state, token).
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "remex/v1/executor.pb.h"
#include "server/executor/executor.h"
#include "server/executor/task_query.h"
#include "server/rpc/proto_mapping.h"
#include "tests/fuzz/fuzz_executor.h"

namespace remex::fuzz {
namespace {

// A few tasks to page through, made once.
void FillOnce() {
  static const bool kFilled = [] {
    for (int i = 0; i < 20; ++i) {
      executor::TaskSpec spec;
      spec.function = "echo";
      spec.labels["i"] = std::to_string(i);
      if (!FuzzExecutor().Submit(std::move(spec)).ok()) __builtin_trap();
    }
    return true;
  }();
  (void)kFilled;
}

}  // namespace
}  // namespace remex::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ::remex::executor::ListPageToken;
  using ::remex::executor::ParseListPageToken;
  remex::fuzz::FillOnce();
  FuzzedDataProvider provider(data, size);

  // Made tokens read back as what made them (positions start at 1).
  const uint64_t position =
      provider.ConsumeIntegralInRange<uint64_t>(1, UINT64_MAX);
  if (ParseListPageToken(ListPageToken(position)) != position) {
    __builtin_trap();
  }

  remex::v1::ListRequest request;
  request.set_page_size(provider.ConsumeIntegral<int32_t>());
  request.set_state(
      static_cast<remex::v1::State>(provider.ConsumeIntegralInRange(-1, 9)));
  if (provider.ConsumeBool()) request.set_function("echo");
  const std::string token = provider.ConsumeRemainingBytesAsString();
  request.set_page_token(token);

  // Only tokens that ListPageToken makes are read.
  const std::optional<uint64_t> parsed = ParseListPageToken(token);
  if (parsed.has_value() && ListPageToken(*parsed) != token) __builtin_trap();

  absl::StatusOr<remex::executor::ListQuery> query =
      remex::rpc::ListQueryFromProto(request);
  if (!query.ok()) {
    if (query.status().code() != absl::StatusCode::kInvalidArgument) {
      __builtin_trap();
    }
    return 0;
  }
  absl::StatusOr<remex::executor::ListPage> page =
      remex::fuzz::FuzzExecutor().List(*query);
  if (!page.ok()) {
    if (page.status().code() != absl::StatusCode::kInvalidArgument) {
      __builtin_trap();
    }
    remex::fuzz::CheckErrorMessage(page.status());
    return 0;
  }
  // A token the server did not make is refused, not read as some position.
  if (!token.empty() && !parsed.has_value()) __builtin_trap();
  if (!page->next_page_token.empty() &&
      !ParseListPageToken(page->next_page_token).has_value()) {
    __builtin_trap();
  }
  return 0;
}
