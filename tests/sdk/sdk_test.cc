// The SDK against a real remex-server.
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/message_differencer.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "remex/remex.h"
#include "tests/testing/server_test.h"

namespace remex {
namespace {

using google::protobuf::util::MessageDifferencer;

constexpr char kUnknownId[] = "000000000000000000000000";
// sha256("abc").
constexpr char kAbcDigest[] =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

class SdkTest : public testing::SharedServerTest {
 protected:
  static void SetUpTestSuite() { StartSharedServer(); }

  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(SharedServerTest::SetUp());
    client_ = std::make_unique<Client>(server_->address());
  }

  // A sleep long enough that only cancellation ends it within a test.
  Future SubmitLongSleep() {
    return client_->Submit("sleep", Json(R"({"ms": 10000})"));
  }

  // The TaskError that get() throws; fails the test if there is none.
  static TaskError GetError(const Future& future) {
    try {
      future.get();
    } catch (const TaskError& error) {
      return error;
    }
    ADD_FAILURE() << "task " << future.id() << " did not fail";
    return TaskError(v1::Task());
  }

  // The RpcError that `call` throws; fails the test if there is none.
  template <class Call>
  static RpcError CatchRpcError(Call call) {
    try {
      call();
    } catch (const RpcError& error) {
      return error;
    }
    ADD_FAILURE() << "no RpcError";
    return RpcError(absl::UnknownError("none"));
  }

  std::unique_ptr<Client> client_;
};

TEST_F(SdkTest, EchoReturnsArgsAsResult) {
  const google::protobuf::Value args = Json(R"({"x": 1, "y": ["a", true]})");
  const TaskResult result = client_->Submit("echo", args).get();
  EXPECT_TRUE(MessageDifferencer::Equals(result.value(), args));
  EXPECT_EQ(result.task().state(), v1::SUCCEEDED);
  EXPECT_TRUE(MessageDifferencer::Equals(Json(result.json()), args))
      << result.json();
}

TEST_F(SdkTest, Sha256OfInputBytes) {
  SubmitOptions options;
  options.input = "abc";
  EXPECT_EQ(client_->Submit("sha256", {}, options).get().value().string_value(),
            kAbcDigest);
  EXPECT_EQ(client_->Submit("sha256", Json(R"({"text": "abc"})"))
                .get()
                .value()
                .string_value(),
            kAbcDigest);
}

TEST_F(SdkTest, EchoOutputIsInput) {
  SubmitOptions options;
  options.input = std::string("raw\0bytes", 9);
  EXPECT_EQ(client_->Submit("echo", {}, options).get().output(), options.input);
}

TEST_F(SdkTest, ResultOfFailedTaskIsStatusWithMessage) {
  const absl::StatusOr<TaskResult> result =
      client_->Submit("fail", Json(R"({"message": "boom"})")).result();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(), "boom");
}

TEST_F(SdkTest, GetOfFailedTaskThrowsTaskError) {
  const Future future = client_->Submit("fail", Json(R"({"message": "boom"})"));
  const TaskError error = GetError(future);
  EXPECT_EQ(error.state(), v1::FAILED);
  EXPECT_EQ(error.task_id(), future.id());
  EXPECT_NE(error.code(), absl::StatusCode::kOk);
  EXPECT_EQ(std::string(error.what()),
            absl::StrCat("task ", future.id(), " ended FAILED: boom"));
}

TEST_F(SdkTest, CancelStopsSleepQuickly) {
  const Future future = SubmitLongSleep();
  const absl::Time start = absl::Now();
  EXPECT_TRUE(future.cancel());
  const TaskError error = GetError(future);
  EXPECT_EQ(error.state(), v1::CANCELLED);
  EXPECT_EQ(error.code(), absl::StatusCode::kCancelled);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_TRUE(future.cancel());  // Still CANCELLED; no new RPC needed.
}

TEST_F(SdkTest, WaitForTimesOutThenCancelMakesReady) {
  const Future future = SubmitLongSleep();
  EXPECT_EQ(future.wait_for(std::chrono::milliseconds(10)),
            std::future_status::timeout);
  EXPECT_FALSE(future.ready());
  EXPECT_FALSE(IsTerminal(future.task().state()));
  EXPECT_TRUE(future.cancel());
  EXPECT_EQ(future.wait_for(absl::Seconds(5)), std::future_status::ready);
  EXPECT_TRUE(future.ready());
  EXPECT_EQ(future.task().state(), v1::CANCELLED);
}

TEST_F(SdkTest, CancelOfFinishedTaskIsFalse) {
  const Future future = client_->Submit("echo", Json("1"));
  future.wait();
  EXPECT_FALSE(future.cancel());
  EXPECT_EQ(future.get().task().state(), v1::SUCCEEDED);
}

TEST_F(SdkTest, WaitUntilAndReadyOnQuickTask) {
  const Future future = client_->Submit("echo", Json("1"));
  EXPECT_EQ(future.wait_until(std::chrono::steady_clock::now() +
                              std::chrono::seconds(10)),
            std::future_status::ready);
  EXPECT_TRUE(future.ready());
  EXPECT_EQ(future.wait_until(absl::InfinitePast()), std::future_status::ready);
  EXPECT_EQ(future.wait_until(std::chrono::system_clock::time_point::max()),
            std::future_status::ready);
  EXPECT_EQ(future.wait_for(std::chrono::hours::max()),
            std::future_status::ready);
}

TEST_F(SdkTest, AttachFollowsTaskOfAnotherClient) {
  const Future submitted = client_->Submit("echo", Json(R"("hello")"));
  Client other(server_->address());
  const Future attached = other.Attach(submitted.id());
  EXPECT_EQ(attached.id(), submitted.id());
  EXPECT_EQ(attached.get().value().string_value(), "hello");
}

TEST_F(SdkTest, AttachUnknownIdThrowsNotFound) {
  EXPECT_EQ(CatchRpcError([&] { client_->Attach(kUnknownId); }).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(SdkTest, UnknownFunctionIsNotFound) {
  EXPECT_EQ(CatchRpcError([&] { client_->Submit("no_such_function"); }).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->TrySubmit("no_such_function").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(SdkTest, BadArgsAreInvalidArgument) {
  EXPECT_EQ(
      client_->TrySubmit("sleep", Json(R"({"ms": "soon"})")).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST_F(SdkTest, UnknownPoolIsInvalidArgument) {
  SubmitOptions options;
  options.pool = "no_such_pool";
  EXPECT_EQ(client_->TrySubmit("echo", {}, options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SdkTest, SubmitOptionsReachTheTask) {
  SubmitOptions options;
  options.priority = 7;
  options.labels = {{"team", "sdk"}};
  const v1::Task task = client_->Submit("echo", {}, options).get().task();
  EXPECT_EQ(task.priority(), 7);
  EXPECT_EQ(task.labels().at("team"), "sdk");
  EXPECT_EQ(task.pool(), "default");
}

TEST_F(SdkTest, ProtobufMessageInputRoundTrips) {
  google::protobuf::Timestamp timestamp;
  timestamp.set_seconds(1234567890);
  timestamp.set_nanos(42);
  const TaskResult result = client_->Submit("echo", {}, timestamp).get();
  EXPECT_TRUE(MessageDifferencer::Equals(
      result.As<google::protobuf::Timestamp>(), timestamp));
}

TEST_F(SdkTest, AsThrowsOnBytesThatDoNotParse) {
  SubmitOptions options;
  options.input = "\xff\xff\xff";
  const TaskResult result = client_->Submit("echo", {}, options).get();
  EXPECT_THROW(result.As<google::protobuf::Timestamp>(), std::invalid_argument);
}

TEST_F(SdkTest, RawCallsAnswerWhatTheServerAnswers) {
  const Future future = client_->Submit("echo", Json("3"));
  future.wait();
  EXPECT_EQ(client_->Get(future.id())->state(), v1::SUCCEEDED);
  EXPECT_EQ(client_->Await(future.id(), absl::Seconds(1))->state(),
            v1::SUCCEEDED);
  EXPECT_TRUE(client_->ListFunctions().ok());
  EXPECT_TRUE(client_->Delete(future.id()).ok());
  EXPECT_EQ(client_->Get(future.id()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->Cancel(kUnknownId).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(SdkTest, AwaitWithTimeoutReturnsTaskAsItStands) {
  const Future future = SubmitLongSleep();
  const absl::StatusOr<v1::Task> task =
      client_->Await(future.id(), absl::Milliseconds(50));
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_FALSE(IsTerminal(task->state()));
  EXPECT_TRUE(future.cancel());
}

TEST_F(SdkTest, ManyFuturesFromSeveralThreads) {
  constexpr int kThreads = 4;
  constexpr int kTasksPerThread = 25;
  const Future shared = client_->Submit("sleep", Json(R"({"ms": 100})"));
  std::vector<std::thread> threads;
  std::vector<int> successes(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<Future> futures;
      for (int i = 0; i < kTasksPerThread; ++i) {
        futures.push_back(
            client_->Submit("echo", Json(absl::StrCat(t * 1000 + i))));
      }
      for (int i = 0; i < kTasksPerThread; ++i) {
        if (futures[i].get().value().number_value() == t * 1000 + i) {
          ++successes[t];
        }
      }
      shared.wait();
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(successes[t], kTasksPerThread);
  EXPECT_EQ(shared.task().state(), v1::SUCCEEDED);
}

TEST(FutureTest, DefaultConstructedIsNotValid) {
  EXPECT_FALSE(Future().valid());
}

TEST(ClientTest, UnreachableServerIsAnRpcError) {
  ClientOptions options;
  options.rpc_timeout = absl::Milliseconds(500);
  Client client("127.0.0.1:1", options);
  const absl::StatusOr<Future> future = client.TrySubmit("echo");
  EXPECT_TRUE(future.status().code() == absl::StatusCode::kUnavailable ||
              future.status().code() == absl::StatusCode::kDeadlineExceeded)
      << future.status();
}

}  // namespace
}  // namespace remex
