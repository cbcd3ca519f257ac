// The SDK's Session stream against a real remex-server: many threads on one
// client, per-task errors that leave the stream working, cancel, flow
// control, and what futures in flight get when the server or the client
// goes away.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "remex/remex.h"
#include "tests/testing/server_process.h"
#include "tests/testing/server_test.h"
#include "tests/testing/store_param.h"
#include "tests/testing/wait.h"

namespace remex {
namespace {

using testing::ServerProcess;

// Longest any single wait in these tests may take.
constexpr absl::Duration kBound = absl::Seconds(20);

// Starts a server with one thread pool "default" of `workers` and
// `max_queue`.
std::unique_ptr<ServerProcess> StartServer(int workers, int max_queue,
                                           std::vector<std::string> args = {}) {
  const std::string path =
      absl::StrCat(::testing::TempDir(), "remex_session_test_", getpid(), "_",
                   workers, "_", max_queue, ".json");
  std::ofstream(path) << absl::StrCat(
      R"({"pools":[{"name":"default","kind":"thread","workers":)", workers,
      R"(,"max_queue":)", max_queue, "}]}");
  args.insert(args.end(), {"--config", path});
  std::unique_ptr<ServerProcess> server = testing::StartServer(std::move(args));
  // The server reads its config once, at start.
  std::error_code ignored;
  std::filesystem::remove(path, ignored);
  return server;
}

google::protobuf::Value Number(double number) {
  google::protobuf::Value value;
  value.set_number_value(number);
  return value;
}

// The code of the RpcError that `call` throws; kOk if none.
template <class Call>
absl::StatusCode RpcErrorCode(Call call) {
  try {
    call();
  } catch (const RpcError& error) {
    return error.code();
  }
  return absl::StatusCode::kOk;
}

// The Session through the SDK, once per store: the tests of one store
// share one server (started by the first of them) on a fresh store.
class SessionTest : public ::testing::TestWithParam<testing::StoreKind> {
 protected:
  static void TearDownTestSuite() { servers_.clear(); }

  void SetUp() override {
    std::unique_ptr<ServerProcess>& server = servers_[GetParam()];
    if (server == nullptr) {
      absl::StatusOr<std::string> store = testing::FreshStoreUrl(GetParam());
      ASSERT_TRUE(store.ok()) << store.status();
      server = StartServer(2, 100000, {"--store", *store});
    }
    ASSERT_NE(server, nullptr);
    server_ = server.get();
  }

  ServerProcess* server_ = nullptr;

 private:
  static inline absl::flat_hash_map<testing::StoreKind,
                                    std::unique_ptr<ServerProcess>>
      servers_;
};

INSTANTIATE_TEST_SUITE_P(Stores, SessionTest,
                         ::testing::ValuesIn(testing::kAllStores),
                         testing::StoreKindName);

TEST_P(SessionTest, ManyThreadsShareOneClientAndEveryFutureGetsItsOwnResult) {
  Client client(server_->address());
  constexpr int kThreads = 8;
  constexpr int kTasksPerThread = 400;
  std::vector<std::atomic<int>> correct(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<Future> futures;
      for (int i = 0; i < kTasksPerThread; ++i) {
        // Half wait for the server's answer, half do not.
        const google::protobuf::Value args = Number(t * 100000 + i);
        futures.push_back(i % 2 == 0 ? client.Submit("echo", args)
                                     : client.SubmitAsync("echo", args));
      }
      for (int i = 0; i < kTasksPerThread; ++i) {
        const TaskResult result = futures[i].get();
        if (result.value().number_value() == t * 100000 + i &&
            result.task().id() == futures[i].id() && !futures[i].id().empty()) {
          ++correct[t];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(correct[t].load(), kTasksPerThread) << "thread " << t;
  }
}

TEST_P(SessionTest, RefusedSubmitsFailAloneAndTheStreamGoesOn) {
  Client client(server_->address());
  const Future unknown = client.SubmitAsync("no_such_function");
  const Future bad_pool =
      client.SubmitAsync("echo", {}, SubmitOptions{.pool = "no_such_pool"});
  const Future good = client.SubmitAsync("echo", Number(7));
  EXPECT_EQ(RpcErrorCode([&] { unknown.get(); }), absl::StatusCode::kNotFound);
  EXPECT_EQ(unknown.result().status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(unknown.id().empty());
  EXPECT_EQ(RpcErrorCode([&] { bad_pool.wait(); }),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(good.get().value().number_value(), 7);
  // Submit (which waits for the answer) reports the refusal at once.
  EXPECT_EQ(client.TrySubmit("no_such_function").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(client.Submit("echo", Number(8)).get().value().number_value(), 8);
}

TEST_P(SessionTest, CancelOverTheSessionEndsARunningTask) {
  Client client(server_->address());
  const Future sleeper = client.Submit("sleep", Json(R"({"ms": 60000})"));
  const absl::Time start = absl::Now();
  EXPECT_TRUE(sleeper.cancel());
  EXPECT_EQ(sleeper.task().state(), v1::CANCELLED);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  // Cancelling a finished task leaves it as it is.
  const Future done = client.Submit("echo");
  done.wait();
  EXPECT_FALSE(done.cancel());
  EXPECT_EQ(done.task().state(), v1::SUCCEEDED);
}

TEST_P(SessionTest, AttachWatchesATaskOfAnotherClientOverTheSession) {
  Client submitter(server_->address());
  Client watcher(server_->address());
  const Future submitted = submitter.Submit("sleep", Json(R"({"ms": 100})"));
  const Future attached = watcher.Attach(submitted.id());
  EXPECT_EQ(attached.wait_for(kBound), std::future_status::ready);
  EXPECT_EQ(attached.task().state(), v1::SUCCEEDED);
  EXPECT_EQ(attached.task().id(), submitted.id());
}

TEST_P(SessionTest, UnaryModeStillWorks) {
  Client client(server_->address(), {.use_session = false});
  EXPECT_EQ(client.Submit("echo", Number(3)).get().value().number_value(), 3);
  EXPECT_EQ(client.SubmitAsync("echo", Number(4)).get().value().number_value(),
            4);
  const Future sleeper = client.Submit("sleep", Json(R"({"ms": 60000})"));
  EXPECT_TRUE(sleeper.cancel());
}

TEST_P(SessionTest, ClientGoneWithTasksInFlightLeavesTheServerHealthy) {
  std::vector<std::string> ids;
  {
    Client client(server_->address());
    std::vector<Future> futures;
    for (int i = 0; i < 50; ++i) {
      futures.push_back(client.Submit("sleep", Json(R"({"ms": 50})")));
      ids.push_back(futures.back().id());
    }
  }  // the client and its session go away with the tasks running
  Client other(server_->address());
  for (const std::string& id : ids) {
    absl::StatusOr<v1::Task> task = other.Await(id, kBound);
    ASSERT_TRUE(task.ok()) << task.status();
    EXPECT_EQ(task->state(), v1::SUCCEEDED) << id;
  }
  EXPECT_EQ(other.Submit("echo", Number(1)).get().value().number_value(), 1);
}

// Nobody waits on these futures, so no caller polls the stream: the
// submits queued behind a write in flight must still be sent.
TEST(SessionPollingTest, SubmitsNobodyWaitsForStillRun) {
  std::unique_ptr<ServerProcess> server = StartServer(2, 100000);
  ASSERT_NE(server, nullptr);
  Client client(server->address());
  constexpr int kTasks = 500;
  std::vector<Future> futures;
  for (int i = 0; i < kTasks; ++i) {
    futures.push_back(client.SubmitAsync("echo", Number(i)));
  }
  Client observer(server->address(), {.use_session = false});
  v1::ListRequest succeeded;
  succeeded.set_state(v1::SUCCEEDED);
  succeeded.set_page_size(1000);
  size_t seen = 0;
  absl::Status listed;
  testing::WaitUntil(
      [&] {
        absl::StatusOr<v1::ListResponse> list = observer.List(succeeded);
        listed = list.status();
        if (list.ok()) seen = list->tasks_size();
        return !list.ok() || seen == kTasks;
      },
      kBound);
  ASSERT_TRUE(listed.ok()) << listed;
  EXPECT_EQ(seen, kTasks);
  EXPECT_EQ(futures.back().get().value().number_value(), kTasks - 1);
}

// The thread that polls for the others leaves when its own task ends; the
// others, still waiting, must take over and get their ends.
TEST_P(SessionTest, WaitersTakeOverWhenThePollingThreadLeaves) {
  Client client(server_->address());
  std::vector<std::thread> threads;
  std::atomic<int> ready{0};
  for (int i = 1; i <= 6; ++i) {
    threads.emplace_back([&, i] {
      const Future future =
          client.Submit("sleep", Json(absl::StrCat(R"({"ms": )", i * 50, "}")));
      if (future.wait_for(kBound) == std::future_status::ready &&
          future.task().state() == v1::SUCCEEDED) {
        ++ready;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(ready.load(), 6);
}

// A wait that times out gives up polling; a later one takes it over.
TEST_P(SessionTest, TimedOutWaitsAndReadyPollsLeaveTheStreamWorking) {
  Client client(server_->address());
  const Future sleeper = client.Submit("sleep", Json(R"({"ms": 60000})"));
  EXPECT_EQ(sleeper.wait_for(absl::Milliseconds(50)),
            std::future_status::timeout);
  const Future echo = client.SubmitAsync("echo", Number(9));
  // ready() never blocks, yet takes in what has arrived.
  ASSERT_TRUE(testing::WaitUntil([&] { return echo.ready(); }, kBound));
  EXPECT_EQ(echo.get().value().number_value(), 9);
  EXPECT_TRUE(sleeper.cancel());
}

// Submits queued behind a write go out in messages of a few MiB each, so a
// burst of large inputs never makes one message over the 64 MiB limit
// (which would break the stream and fail every future on it); a submit
// that alone is over the limit fails alone. The server is stopped while the
// burst is queued, so that every submit after the first waits behind a write
// that cannot complete.
TEST(SessionBatchTest, LargeSubmitsInABurstAreSplitIntoMessagesUnderTheLimit) {
  std::unique_ptr<ServerProcess> server = StartServer(2, 1000);
  ASSERT_NE(server, nullptr);
  Client client(server->address());
  EXPECT_EQ(client.Submit("echo", Number(1)).get().value().number_value(), 1);
  const std::string input(2 << 20, 'x');
  constexpr int kTasks = 48;  // 96 MiB in all
  std::vector<Future> futures;
  ASSERT_EQ(server->Signal(SIGSTOP), 0);
  for (int i = 0; i < kTasks; ++i) {
    futures.push_back(
        client.SubmitAsync("sha256", {}, SubmitOptions{.input = input}));
  }
  ASSERT_EQ(server->Signal(SIGCONT), 0);
  const std::string digest = futures.front().get().json();
  EXPECT_EQ(digest.size(), 66u) << digest;  // a quoted hex SHA-256
  for (const Future& future : futures) {
    absl::StatusOr<TaskResult> result = future.result();
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->json(), digest);
  }
  const std::string over_limit(65 << 20, 'y');
  const Future too_large =
      client.SubmitAsync("sha256", {}, SubmitOptions{.input = over_limit});
  EXPECT_EQ(too_large.result().status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(client.Submit("echo", Number(6)).get().value().number_value(), 6);
  // Also as the first call of a client, before its stream is open.
  Client fresh(server->address());
  EXPECT_EQ(fresh.SubmitAsync("sha256", {}, SubmitOptions{.input = over_limit})
                .result()
                .status()
                .code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(fresh.Submit("echo", Number(7)).get().value().number_value(), 7);
}

// A server that stops answering (here SIGSTOP) while the connection stays
// open: keepalive pings find it, and the wait fails instead of blocking.
TEST(SessionKeepaliveTest, AWaitOnAHungServerFailsInsteadOfBlocking) {
  std::unique_ptr<ServerProcess> server = StartServer(2, 1000);
  ASSERT_NE(server, nullptr);
  ClientOptions options;
  options.rpc_timeout = absl::Seconds(2);
  options.keepalive = absl::Seconds(1);
  Client client(server->address(), options);
  const Future sleeper = client.Submit("sleep", Json(R"({"ms": 60000})"));
  ASSERT_EQ(server->Signal(SIGSTOP), 0);
  const absl::Time start = absl::Now();
  const absl::StatusOr<TaskResult> result = sleeper.result();
  const absl::Duration waited = absl::Now() - start;
  ASSERT_EQ(server->Signal(SIGCONT), 0);
  EXPECT_FALSE(result.ok());
  EXPECT_TRUE(result.status().code() == absl::StatusCode::kUnavailable ||
              result.status().code() == absl::StatusCode::kDeadlineExceeded)
      << result.status();
  EXPECT_LT(waited, absl::Seconds(15));
}

// WaitAny: the first future to end, whatever its place; a deadline; a
// refused submit; and futures that are not all on one session.
class WaitAnyTest : public testing::SharedServerTest {
 protected:
  static void SetUpTestSuite() { server_ = StartServer(8, 1000); }

  static Future Sleep(Client& client, int ms) {
    return client.SubmitAsync("sleep",
                              Json(absl::StrCat(R"({"ms": )", ms, "}")));
  }
};

TEST_F(WaitAnyTest, ReturnsTheFirstToEndOrNothingAtTheDeadline) {
  Client client(server_->address());
  const std::vector<Future> futures = {Sleep(client, 60000),
                                       Sleep(client, 60000), Sleep(client, 50)};
  EXPECT_EQ(WaitAny(futures, absl::Now() + kBound), 2u);
  EXPECT_EQ(futures[2].task().state(), v1::SUCCEEDED);

  const std::vector<Future> slow = {futures[0], futures[1]};
  const absl::Time start = absl::Now();
  EXPECT_EQ(WaitAny(slow, start + absl::Milliseconds(100)), std::nullopt);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(100));
  EXPECT_TRUE(slow[1].cancel());
  EXPECT_EQ(WaitAny(slow, absl::Now() + kBound), 1u);
  EXPECT_TRUE(slow[0].cancel());
  EXPECT_EQ(WaitAny({}, absl::Now() + kBound), std::nullopt);
}

TEST_F(WaitAnyTest, TakesResultsInTheOrderTheTasksEnd) {
  Client client(server_->address());
  std::vector<Future> futures;
  for (int i = 6; i >= 1; --i) futures.push_back(Sleep(client, i * 100));
  std::vector<double> slept;
  while (!futures.empty()) {
    const std::optional<size_t> done = WaitAny(futures, absl::Now() + kBound);
    ASSERT_TRUE(done.has_value());
    slept.push_back(futures[*done]
                        .get()
                        .value()
                        .struct_value()
                        .fields()
                        .at("slept_ms")
                        .number_value());
    futures.erase(futures.begin() + static_cast<std::ptrdiff_t>(*done));
  }
  EXPECT_EQ(slept, (std::vector<double>{100, 200, 300, 400, 500, 600}));
}

TEST_F(WaitAnyTest, ARefusedSubmitIsDone) {
  Client client(server_->address());
  const std::vector<Future> futures = {Sleep(client, 60000),
                                       client.SubmitAsync("no_such_function")};
  EXPECT_EQ(WaitAny(futures, absl::Now() + kBound), 1u);
  EXPECT_EQ(futures[1].result().status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(futures[0].cancel());
}

TEST_F(WaitAnyTest, UnaryFuturesAndSeveralClientsArePolled) {
  Client unary(server_->address(), {.use_session = false});
  Client session(server_->address());
  const std::vector<Future> unary_only = {Sleep(unary, 60000),
                                          Sleep(unary, 100)};
  EXPECT_EQ(WaitAny(unary_only, absl::Now() + kBound), 1u);
  const std::vector<Future> mixed = {unary_only[0], Sleep(session, 100)};
  EXPECT_EQ(WaitAny(mixed, absl::Now() + kBound), 1u);
  EXPECT_EQ(WaitAny({unary_only[0]}, absl::Now() + absl::Milliseconds(50)),
            std::nullopt);
  EXPECT_TRUE(unary_only[0].cancel());
}

// A pool of one worker and a queue of two: submits beyond it are refused
// one by one with RESOURCE_EXHAUSTED while the stream keeps working.
TEST(SessionFlowTest, FullQueueRefusesTasksOneByOneWithoutStallingTheStream) {
  std::unique_ptr<ServerProcess> server = StartServer(1, 2);
  ASSERT_NE(server, nullptr);
  Client client(server->address());
  std::vector<Future> futures;
  for (int i = 0; i < 10; ++i) {
    futures.push_back(client.SubmitAsync("sleep", Json(R"({"ms": 60000})")));
  }
  int accepted = 0;
  int exhausted = 0;
  for (const Future& future : futures) {
    if (future.id().empty()) {
      EXPECT_EQ(future.result().status().code(),
                absl::StatusCode::kResourceExhausted);
      ++exhausted;
    } else {
      ++accepted;
    }
  }
  // One running and two queued; the running one may not have started yet.
  EXPECT_GE(accepted, 2);
  EXPECT_LE(accepted, 3);
  EXPECT_EQ(accepted + exhausted, 10);
  for (const Future& future : futures) {
    if (!future.id().empty()) {
      EXPECT_TRUE(future.cancel());
    }
  }
  EXPECT_EQ(client.Submit("echo", Number(5)).get().value().number_value(), 5);
}

// SIGTERM with futures in flight: the drain cancels the tasks and the
// session delivers each end before the stream closes, within a bound, and
// the server exits promptly.
TEST(SessionShutdownTest, FuturesInFlightGetTheirEndsWhenTheServerStops) {
  std::unique_ptr<ServerProcess> server =
      StartServer(2, 1000, {"--shutdown-grace", "200ms"});
  ASSERT_NE(server, nullptr);
  Client client(server->address());
  std::vector<Future> futures;
  for (int i = 0; i < 20; ++i) {
    futures.push_back(client.Submit("sleep", Json(R"({"ms": 60000})")));
  }
  ASSERT_EQ(server->Signal(SIGTERM), 0);
  const absl::Time start = absl::Now();
  for (const Future& future : futures) {
    ASSERT_EQ(future.wait_for(kBound), std::future_status::ready);
    EXPECT_EQ(future.task().state(), v1::CANCELLED);
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  absl::StatusOr<int> exit_code = server->Wait(kBound);
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 0) << server->ServerOutput();
  // New submits fail clearly once the server is gone.
  EXPECT_FALSE(client.TrySubmit("echo").ok());
}

// SIGKILL: the stream breaks with tasks in flight; their futures fall back
// to unary calls, which fail clearly (the server is gone), never hang.
TEST(SessionShutdownTest, FuturesInFlightFailClearlyWhenTheServerDies) {
  std::unique_ptr<ServerProcess> server = StartServer(2, 1000);
  ASSERT_NE(server, nullptr);
  ClientOptions options;
  options.rpc_timeout = absl::Seconds(2);
  Client client(server->address(), options);
  std::vector<Future> futures;
  for (int i = 0; i < 20; ++i) {
    futures.push_back(client.Submit("sleep", Json(R"({"ms": 60000})")));
  }
  ASSERT_EQ(server->Signal(SIGKILL), 0);
  ASSERT_TRUE(server->Wait(kBound).ok());
  const absl::Time start = absl::Now();
  for (const Future& future : futures) {
    const absl::StatusOr<TaskResult> result = future.result();
    EXPECT_FALSE(result.ok());
    EXPECT_TRUE(result.status().code() == absl::StatusCode::kUnavailable ||
                result.status().code() == absl::StatusCode::kDeadlineExceeded)
        << result.status();
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(15));
}

// SIGKILL with done-callbacks pending and nobody waiting: the session's
// own thread sees the stream break, and each callback fires once, on the
// executor, with a future that reports the failure.
TEST(SessionShutdownTest, PendingCallbacksFireOnceWhenTheServerDies) {
  std::unique_ptr<ServerProcess> server = StartServer(2, 1000);
  ASSERT_NE(server, nullptr);
  ClientOptions options;
  options.rpc_timeout = absl::Seconds(2);
  Client client(server->address(), options);
  ThreadExecutor executor;
  constexpr int kFutures = 20;
  // Shared with the callbacks, which outlive a failed test.
  struct Tally {
    std::atomic<int> runs[kFutures] = {};
    std::atomic<int> failed = 0;
    std::atomic<int> off_executor = 0;
  };
  auto tally = std::make_shared<Tally>();
  std::vector<Future> futures;
  for (int i = 0; i < kFutures; ++i) {
    futures.push_back(client.Submit("sleep", Json(R"({"ms": 60000})")));
    futures.back().OnDone(
        [tally, i, thread = executor.thread_id()](const Future& done) {
          if (std::this_thread::get_id() != thread) ++tally->off_executor;
          if (!done.result().ok()) ++tally->failed;
          ++tally->runs[i];
        },
        executor);
  }
  ASSERT_EQ(server->Signal(SIGKILL), 0);
  ASSERT_TRUE(server->Wait(kBound).ok());
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return tally->failed.load() == kFutures; }, kBound))
      << tally->failed.load();
  // One more callback, on a future done already, runs after any late one.
  std::promise<void> last;
  futures[0].OnDone([&last](const Future&) { last.set_value(); }, executor);
  last.get_future().wait();
  for (int i = 0; i < kFutures; ++i) EXPECT_EQ(tally->runs[i].load(), 1) << i;
  EXPECT_EQ(tally->off_executor.load(), 0);
}

}  // namespace
}  // namespace remex
