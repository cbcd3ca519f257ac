#include "tests/fuzz/fuzz_executor.h"

#include <cstdlib>
#include <memory>
#include <utility>

#include "common/utf8.h"
#include "server/executor/pool.h"
#include "server/functions/builtin_functions.h"
#include "server/functions/command_function.h"

namespace remex::fuzz {
namespace {

// Longest error message a request may get (common/quote bounds what it
// quotes of the client's strings).
constexpr size_t kLongestError = 1024;

executor::FunctionRegistry* MakeRegistry() {
  executor::FunctionRegistry builtins;
  if (!functions::RegisterBuiltinFunctions({.enable_test_functions = true},
                                           builtins)
           .ok()) {
    std::abort();
  }
  auto* registry = new executor::FunctionRegistry();
  for (const executor::FunctionSpec* spec : builtins.List()) {
    executor::FunctionSpec copy = *spec;
    copy.body = [](executor::TaskContext&) { return absl::OkStatus(); };
    if (!registry->Register(std::move(copy)).ok()) std::abort();
  }
  absl::StatusOr<executor::FunctionSpec> command =
      functions::MakeCommandFunction(
          {.name = "tr", .command = {"/usr/bin/tr", "{from}", "x{to}"}});
  if (!command.ok()) std::abort();
  command->body = [](executor::TaskContext&) { return absl::OkStatus(); };
  if (!registry->Register(*std::move(command)).ok()) std::abort();
  return registry;
}

}  // namespace

executor::Executor& FuzzExecutor() {
  static executor::Executor* const kExecutor = [] {
    static const executor::FunctionRegistry* const kRegistry = MakeRegistry();
    executor::ExecutorOptions options;
    options.pools.push_back({.name = "default",
                             .kind = executor::PoolKind::kThread,
                             .workers = 1,
                             .max_queue = kFuzzMaxQueue});
    options.retention.max_tasks = kFuzzRetainedTasks;
    options.retention.max_bytes = size_t{64} << 20;
    absl::StatusOr<std::unique_ptr<executor::Executor>> made =
        executor::Executor::Create(std::move(options), *kRegistry);
    if (!made.ok()) std::abort();
    return made->release();
  }();
  return *kExecutor;
}

bool IsRequestError(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kOutOfRange:
      return true;
    default:
      return false;
  }
}

void CheckErrorMessage(const absl::Status& status) {
  if (status.message().size() > kLongestError ||
      !common::IsValidUtf8(status.message())) {
    __builtin_trap();
  }
}

}  // namespace remex::fuzz
