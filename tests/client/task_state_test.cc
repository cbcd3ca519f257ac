// client::TaskStatus: the status a finished task's future reports.
#include "client/task_state.h"

#include "gtest/gtest.h"

namespace remex::client {
namespace {

v1::Task Ended(v1::State state, int32_t code, const char* message) {
  v1::Task task;
  task.set_state(state);
  task.mutable_error()->set_code(code);
  task.mutable_error()->set_message(message);
  return task;
}

TEST(TaskStatusTest, SucceededIsOk) {
  EXPECT_TRUE(TaskStatus(Ended(v1::SUCCEEDED, 0, "")).ok());
}

TEST(TaskStatusTest, TheTasksErrorWins) {
  EXPECT_EQ(TaskStatus(Ended(v1::FAILED, 3, "bad n")),
            absl::InvalidArgumentError("bad n"));
}

TEST(TaskStatusTest, ACodeNumberThatIsNoCodeIsUnknown) {
  EXPECT_EQ(TaskStatus(Ended(v1::FAILED, 99, "odd")),
            absl::UnknownError("odd"));
  EXPECT_EQ(TaskStatus(Ended(v1::FAILED, -1, "odd")),
            absl::UnknownError("odd"));
}

TEST(TaskStatusTest, WithoutACodeTheStateChoosesOne) {
  EXPECT_EQ(TaskStatus(Ended(v1::CANCELLED, 0, "")),
            absl::CancelledError("task ended CANCELLED"));
  EXPECT_EQ(TaskStatus(Ended(v1::TIMED_OUT, 0, "slow")),
            absl::DeadlineExceededError("slow"));
  EXPECT_EQ(TaskStatus(Ended(v1::WORKER_LOST, 0, "")),
            absl::AbortedError("task ended WORKER_LOST"));
  EXPECT_EQ(TaskStatus(Ended(v1::FAILED, 0, "")),
            absl::UnknownError("task ended FAILED"));
  EXPECT_EQ(TaskStatus(Ended(v1::RUNNING, 0, "")),
            absl::FailedPreconditionError("task ended RUNNING"));
}

TEST(IsTerminalTest, TheLastFiveStatesAreTerminal) {
  EXPECT_FALSE(IsTerminal(v1::STATE_UNSPECIFIED));
  EXPECT_FALSE(IsTerminal(v1::QUEUED));
  EXPECT_FALSE(IsTerminal(v1::RUNNING));
  EXPECT_TRUE(IsTerminal(v1::SUCCEEDED));
  EXPECT_TRUE(IsTerminal(v1::FAILED));
  EXPECT_TRUE(IsTerminal(v1::CANCELLED));
  EXPECT_TRUE(IsTerminal(v1::TIMED_OUT));
  EXPECT_TRUE(IsTerminal(v1::WORKER_LOST));
}

}  // namespace
}  // namespace remex::client
