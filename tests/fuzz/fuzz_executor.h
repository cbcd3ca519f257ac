// A real executor for fuzz targets: the built-in functions and a command
// function with their real args checks, bodies that do nothing (a fuzzed
// `sleep` or `primes` must not take the run's time), one small thread pool
// and a small retention, so that memory stays bounded however long the
// fuzzer runs.
#ifndef REMEX_TESTS_FUZZ_FUZZ_EXECUTOR_H_
#define REMEX_TESTS_FUZZ_FUZZ_EXECUTOR_H_

#include <cstddef>

#include "absl/status/status.h"
#include "server/executor/executor.h"
#include "server/executor/function_registry.h"

namespace remex::fuzz {

// Most tasks the fuzz executor queues or keeps.
inline constexpr size_t kFuzzMaxQueue = 256;
inline constexpr size_t kFuzzRetainedTasks = 512;

// The process's one fuzz executor, made on first use. Never destroyed
// (libFuzzer exits without unwinding).
executor::Executor& FuzzExecutor();

// True if `status` is one the front end may answer a request with: the
// request's fault or the server's state, never INTERNAL or UNKNOWN.
bool IsRequestError(const absl::Status& status);

// Traps unless `status`'s message is what a client may be shown: short
// whatever the client sent, and valid UTF-8.
void CheckErrorMessage(const absl::Status& status);

}  // namespace remex::fuzz

#endif  // REMEX_TESTS_FUZZ_FUZZ_EXECUTOR_H_
