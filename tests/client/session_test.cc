// client::Session against an in-process fake Executor: accepted ids,
// refused submits with their converted errors, task ends, cancels, and what
// a broken stream does to the slots it had not answered.
#include "client/session.h"

#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "client/channel.h"
#include "gtest/gtest.h"
#include "tests/client/fake_executor.h"

namespace remex::client {
namespace {

using testing::FakeExecutor;

// Longest any single wait in these tests may take.
constexpr absl::Duration kBound = absl::Seconds(20);

v1::SubmitRequest Request(const std::string& function) {
  v1::SubmitRequest request;
  request.set_function(function);
  request.mutable_args()->set_string_value("hello " + function);
  return request;
}

class SessionTest : public ::testing::Test {
 protected:
  SessionTest()
      : session_(MakeChannel(fake_.address(), absl::ZeroDuration()),
                 /*window=*/64) {}

  FakeExecutor fake_;
  Session session_;
};

TEST_F(SessionTest, AcceptedSubmitGetsItsIdAndThenItsEnd) {
  std::shared_ptr<TaskSlot> slot = session_.Submit(Request("echo"));
  ASSERT_TRUE(slot->WaitAccepted(absl::Now() + kBound).ok());
  EXPECT_TRUE(slot->accepted());
  EXPECT_EQ(slot->id(), "echo-1");
  ASSERT_TRUE(slot->WaitSettled(absl::Now() + kBound));
  EXPECT_TRUE(slot->settled());
  absl::StatusOr<v1::Task> task = slot->Take();
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->id(), "echo-1");
  EXPECT_EQ(task->state(), v1::SUCCEEDED);
  EXPECT_EQ(task->result().string_value(), "hello echo");
}

TEST_F(SessionTest, SubmitsOfOneStreamGetTheirOwnIds) {
  std::shared_ptr<TaskSlot> first = session_.Submit(Request("echo"));
  std::shared_ptr<TaskSlot> second = session_.Submit(Request("hold"));
  ASSERT_TRUE(first->WaitAccepted(absl::Now() + kBound).ok());
  ASSERT_TRUE(second->WaitAccepted(absl::Now() + kBound).ok());
  EXPECT_EQ(first->id(), "echo-1");
  EXPECT_EQ(second->id(), "hold-2");
  EXPECT_TRUE(first->WaitSettled(absl::Now() + kBound));
  // Accepted but never ended: a wait that passes its deadline says so.
  EXPECT_FALSE(second->WaitSettled(absl::Now() + absl::Milliseconds(50)));
  EXPECT_FALSE(second->settled());
  EXPECT_EQ(fake_.sessions(), 1);
}

TEST_F(SessionTest, RefusedSubmitFailsWithTheServersCodeAndMessage) {
  std::shared_ptr<TaskSlot> slot = session_.Submit(Request("nosuch"));
  EXPECT_EQ(slot->WaitAccepted(absl::Now() + kBound),
            absl::NotFoundError("no function nosuch"));
  EXPECT_FALSE(slot->accepted());
  EXPECT_TRUE(slot->settled());
  EXPECT_TRUE(slot->id().empty());
  EXPECT_EQ(slot->Take().status(), absl::NotFoundError("no function nosuch"));
  // The stream goes on.
  std::shared_ptr<TaskSlot> next = session_.Submit(Request("echo"));
  EXPECT_TRUE(next->WaitAccepted(absl::Now() + kBound).ok());
  EXPECT_EQ(fake_.sessions(), 1);
}

TEST_F(SessionTest, ACodeNumberThatIsNoCodeIsUnknown) {
  std::shared_ptr<TaskSlot> slot = session_.Submit(Request("badcode"));
  EXPECT_EQ(slot->WaitAccepted(absl::Now() + kBound),
            absl::UnknownError("bad code"));
}

TEST_F(SessionTest, WatchDeliversTheEndOfAKnownTask) {
  v1::Task stored;
  stored.set_id("t7");
  stored.set_state(v1::FAILED);
  stored.mutable_error()->set_code(3);
  stored.mutable_error()->set_message("bad args");
  fake_.Put(stored);
  std::shared_ptr<TaskSlot> slot = session_.Watch("t7");
  ASSERT_TRUE(slot->WaitSettled(absl::Now() + kBound));
  EXPECT_EQ(slot->id(), "t7");
  absl::StatusOr<v1::Task> task = slot->Take();
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->state(), v1::FAILED);
  EXPECT_EQ(task->error().message(), "bad args");

  std::shared_ptr<TaskSlot> unknown = session_.Watch("nope");
  EXPECT_EQ(unknown->WaitAccepted(absl::Now() + kBound).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(SessionTest, CancelReturnsTheServersAnswer) {
  v1::Task stored;
  stored.set_id("t1");
  stored.set_state(v1::RUNNING);
  fake_.Put(stored);
  EXPECT_TRUE(session_.Cancel("t1", absl::Now() + kBound).ok());
  EXPECT_EQ(session_.Cancel("nope", absl::Now() + kBound),
            absl::NotFoundError("no task nope"));
}

TEST_F(SessionTest, ABrokenStreamFailsTheSlotsItHadNotAnswered) {
  std::shared_ptr<TaskSlot> done = session_.Submit(Request("echo"));
  std::shared_ptr<TaskSlot> held = session_.Submit(Request("hold"));
  ASSERT_TRUE(held->WaitAccepted(absl::Now() + kBound).ok());
  ASSERT_TRUE(done->WaitSettled(absl::Now() + kBound));
  std::shared_ptr<TaskSlot> breaker = session_.Submit(Request("break"));

  // Never answered: fails with the stream's status.
  const absl::Status refused = breaker->WaitAccepted(absl::Now() + kBound);
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(refused.message(),
            "the session stream to the server broke: fake break");
  EXPECT_FALSE(breaker->accepted());
  // Accepted but not ended: settles with the error and stays accepted, so
  // that the caller follows the task another way.
  ASSERT_TRUE(held->WaitSettled(absl::Now() + kBound));
  EXPECT_TRUE(held->accepted());
  EXPECT_EQ(held->id(), "hold-2");
  EXPECT_EQ(held->Take().status().code(), absl::StatusCode::kUnavailable);
  // Already ended before the break: keeps its task.
  absl::StatusOr<v1::Task> task = done->Take();
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->state(), v1::SUCCEEDED);

  // The next call opens a new stream.
  std::shared_ptr<TaskSlot> next = session_.Submit(Request("echo"));
  ASSERT_TRUE(next->WaitAccepted(absl::Now() + kBound).ok());
  EXPECT_EQ(next->id(), "echo-1");
  EXPECT_EQ(fake_.sessions(), 2);
}

TEST_F(SessionTest, TheServerGoingAwayFailsTheOpenSlots) {
  std::shared_ptr<TaskSlot> held = session_.Submit(Request("hold"));
  ASSERT_TRUE(held->WaitAccepted(absl::Now() + kBound).ok());
  fake_.Shutdown();
  ASSERT_TRUE(held->WaitSettled(absl::Now() + kBound));
  EXPECT_TRUE(held->accepted());
  EXPECT_FALSE(held->Take().ok());
  // With no server, a new submit fails UNAVAILABLE instead of hanging.
  std::shared_ptr<TaskSlot> next = session_.Submit(Request("echo"));
  EXPECT_EQ(next->WaitAccepted(absl::Now() + kBound).code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(SessionTest, WaitAnySettledReturnsWhenOneSlotSettles) {
  std::shared_ptr<TaskSlot> held = session_.Submit(Request("hold"));
  std::shared_ptr<TaskSlot> done = session_.Submit(Request("echo"));
  TaskSlot* slots[] = {held.get(), done.get()};
  ASSERT_TRUE(session_.WaitAnySettled(slots, absl::Now() + kBound));
  EXPECT_TRUE(done->settled());
  TaskSlot* only_held[] = {held.get()};
  EXPECT_FALSE(
      session_.WaitAnySettled(only_held, absl::Now() + absl::Milliseconds(50)));
}

}  // namespace
}  // namespace remex::client
