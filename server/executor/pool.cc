#include "server/executor/pool.h"

#include "absl/strings/str_cat.h"
#include "server/executor/thread_pool.h"

namespace remex::executor {

absl::string_view PoolKindName(PoolKind kind) {
  switch (kind) {
    case PoolKind::kThread:
      return "thread";
    case PoolKind::kProcess:
      return "process";
  }
  return "unknown";
}

absl::StatusOr<PoolKind> ParsePoolKind(absl::string_view name) {
  if (name == "thread") return PoolKind::kThread;
  if (name == "process") return PoolKind::kProcess;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown pool kind '", name, "' (expected \"thread\" or \"process\")"));
}

absl::StatusOr<std::unique_ptr<Pool>> CreatePool(
    const PoolConfig& config, TaskRunner& runner,
    const PoolFactories& factories) {
  if (config.name.empty()) {
    return absl::InvalidArgumentError("a pool needs a name");
  }
  if (config.workers <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pool '", config.name, "': workers must be > 0, got ", config.workers));
  }
  if (config.max_queue == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("pool '", config.name, "': max_queue must be > 0"));
  }
  if (config.cancel_grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pool '", config.name, "': cancel_grace must not be negative"));
  }
  if (auto it = factories.find(config.kind); it != factories.end()) {
    return it->second(config, runner);
  }
  switch (config.kind) {
    case PoolKind::kThread:
      return std::make_unique<ThreadPool>(config, runner);
    case PoolKind::kProcess:
      return absl::UnimplementedError(
          absl::StrCat("pool '", config.name,
                       "': process pools are not available in this build yet"));
  }
  return absl::InvalidArgumentError("unknown pool kind");
}

}  // namespace remex::executor
