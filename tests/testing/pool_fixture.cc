#include "tests/testing/pool_fixture.h"

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/process/process_pool.h"
#include "server/process/worker.h"
#include "tests/executor/executor_test_util.h"
#include "tests/testing/proc.h"
#include "tests/testing/wait.h"

namespace remex::testing {
namespace {

using ::remex::executor::PoolKind;
using ::remex::executor::TaskSnapshot;

std::string TempPath(const std::string& name) {
  const char* dir = getenv("TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/remex_process_test_",
                      getpid(), "_", name, "_", absl::ToUnixNanos(absl::Now()));
}

}  // namespace

int PoolTestMain(int argc, char** argv, RegisterFunctions register_functions) {
  // Started by a process pool of a test: serve it.
  if (std::optional<pid_t> parent =
          remex::process::TakeWorkerFlag(argc, argv)) {
    remex::process::PrepareWorkerProcess(*parent);
    executor::FunctionRegistry registry;
    register_functions(registry);
    return remex::process::RunWorker(remex::process::kWorkerChannelFd,
                                     registry);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

PoolFixture::PoolFixture(RegisterFunctions register_functions) {
  LetSegvKillChildren();
  register_functions(registry_);
}

PoolFixture::~PoolFixture() {
  executor_.reset();
  for (const std::string& path : paths_) std::remove(path.c_str());
}

void PoolFixture::Start(executor::PoolConfig config) {
  config.name = "default";
  executor::ExecutorOptions options;
  options.pools.push_back(config);
  options.pool_factories[PoolKind::kProcess] =
      process::ProcessPoolFactory({.argv = {"/proc/self/exe"}});
  absl::StatusOr<std::unique_ptr<executor::Executor>> executor =
      executor::Executor::Create(options, registry_);
  ASSERT_TRUE(executor.ok()) << executor.status();
  executor_ = std::move(*executor);
}

std::string PoolFixture::Submit(executor::TaskSpec spec) {
  absl::StatusOr<TaskSnapshot> task = executor_->Submit(std::move(spec));
  EXPECT_TRUE(task.ok()) << task.status();
  return task.ok() ? task->id : "";
}

TaskSnapshot PoolFixture::Await(const std::string& id, absl::Duration timeout) {
  absl::StatusOr<TaskSnapshot> done =
      executor::testing::AwaitTerminal(*executor_, id, timeout);
  EXPECT_TRUE(done.ok()) << done.status();
  return done.ok() ? *done : TaskSnapshot{};
}

bool PoolFixture::WaitForState(const std::string& id,
                               executor::TaskState state) {
  return WaitUntil([&] {
    absl::StatusOr<TaskSnapshot> task = executor_->Get(id);
    return task.ok() && task->state == state;
  });
}

executor::PoolStats PoolFixture::Stats() const {
  return executor_->PoolStatistics().front();
}

std::string PoolFixture::NewPath(const std::string& name) {
  paths_.push_back(TempPath(name));
  return paths_.back();
}

}  // namespace remex::testing
