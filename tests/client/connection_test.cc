// client::Connection against an in-process fake Executor: what each unary
// call returns for the server's answers and errors.
#include "client/connection.h"

#include <memory>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "client/channel.h"
#include "gtest/gtest.h"
#include "tests/client/fake_executor.h"

namespace remex::client {
namespace {

using testing::FakeExecutor;

v1::Task MakeTask(const std::string& id, v1::State state) {
  v1::Task task;
  task.set_id(id);
  task.set_function("echo");
  task.set_state(state);
  return task;
}

class ConnectionTest : public ::testing::Test {
 protected:
  ConnectionTest()
      : connection_(MakeChannel(fake_.address(), absl::ZeroDuration()),
                    absl::Seconds(10)) {}

  FakeExecutor fake_;
  Connection connection_;
};

TEST_F(ConnectionTest, GetReturnsTheServersTask) {
  v1::Task stored = MakeTask("t1", v1::RUNNING);
  stored.set_attempt(2);
  fake_.Put(stored);
  absl::StatusOr<v1::Task> task = connection_.Get("t1");
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->id(), "t1");
  EXPECT_EQ(task->state(), v1::RUNNING);
  EXPECT_EQ(task->attempt(), 2);
}

TEST_F(ConnectionTest, UnknownIdIsNotFoundWithTheServersMessage) {
  const absl::StatusOr<v1::Task> get = connection_.Get("nope");
  EXPECT_EQ(get.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(get.status().message(), "no task nope");
  EXPECT_EQ(connection_.Cancel("nope").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(connection_.Await("nope", absl::Seconds(5)).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ConnectionTest, SubmitRefusalKeepsCodeAndMessage) {
  fake_.RefuseSubmits(
      grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "queue full"));
  const absl::StatusOr<v1::Task> task = connection_.Submit(v1::SubmitRequest());
  EXPECT_EQ(task.status(), absl::ResourceExhaustedError("queue full"));
}

TEST_F(ConnectionTest, AwaitReturnsATerminalTaskAtOnce) {
  fake_.Put(MakeTask("t1", v1::SUCCEEDED));
  const absl::StatusOr<v1::Task> task =
      connection_.Await("t1", absl::InfiniteDuration());
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->state(), v1::SUCCEEDED);
  EXPECT_EQ(fake_.calls("Await"), 1);
}

TEST_F(ConnectionTest, AwaitWaitsUntilTheTaskEnds) {
  fake_.Put(MakeTask("t1", v1::RUNNING));
  std::thread finisher([this] {
    // Ends the task once the Await has reached the server.
    EXPECT_TRUE(fake_.WaitForCalls("Await", 1, absl::Seconds(10)));
    fake_.Put(MakeTask("t1", v1::FAILED));
  });
  const absl::StatusOr<v1::Task> task =
      connection_.Await("t1", absl::Seconds(20));
  finisher.join();
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->state(), v1::FAILED);
}

TEST_F(ConnectionTest, AwaitReturnsTheTaskAsItStandsWhenTheTimeoutPasses) {
  fake_.Put(MakeTask("t1", v1::RUNNING));
  const absl::Time start = absl::Now();
  const absl::StatusOr<v1::Task> task =
      connection_.Await("t1", absl::Milliseconds(200));
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->state(), v1::RUNNING);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(190));
}

TEST_F(ConnectionTest, AwaitWithNoTimeLeftIsOneGet) {
  fake_.Put(MakeTask("t1", v1::QUEUED));
  const absl::StatusOr<v1::Task> task =
      connection_.Await("t1", absl::ZeroDuration());
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->state(), v1::QUEUED);
  EXPECT_EQ(fake_.calls("Get"), 1);
  EXPECT_EQ(fake_.calls("Await"), 0);
}

TEST_F(ConnectionTest, CancelReturnsTheTaskAfterTheCancel) {
  fake_.Put(MakeTask("t1", v1::RUNNING));
  fake_.Put(MakeTask("t2", v1::SUCCEEDED));
  const absl::StatusOr<v1::Task> cancelled = connection_.Cancel("t1");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state(), v1::CANCELLED);
  EXPECT_TRUE(cancelled->cancel_requested());
  const absl::StatusOr<v1::Task> finished = connection_.Cancel("t2");
  ASSERT_TRUE(finished.ok()) << finished.status();
  EXPECT_EQ(finished->state(), v1::SUCCEEDED);
}

TEST_F(ConnectionTest, EveryCallIsUnavailableWhenTheServerIsGone) {
  fake_.Put(MakeTask("t1", v1::RUNNING));
  ASSERT_TRUE(connection_.Get("t1").ok());
  fake_.Shutdown();
  EXPECT_EQ(connection_.Get("t1").status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(connection_.Cancel("t1").status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(connection_.Await("t1", absl::Seconds(5)).status().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace remex::client
