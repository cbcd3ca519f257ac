// Composition in the SDK (done-callbacks, Then, WhenAll, WhenAny,
// AsCompleted, Map, stop_token and drop cancellation) against a real
// remex-server.
#include <algorithm>
#include <atomic>
#include <future>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "remex/remex.h"
#include "tests/testing/sdk_util.h"
#include "tests/testing/server_test.h"
#include "tests/testing/wait.h"

namespace remex {
namespace {

using testing::WaitUntil;
using testing::WaitUntilRunning;

constexpr absl::Duration kLongWait = absl::Seconds(20);

class ComposeTest : public testing::SharedServerTest {
 protected:
  static void SetUpTestSuite() { StartSharedServer(); }

  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(SharedServerTest::SetUp());
    client_ = std::make_unique<Client>(server_->address());
  }

  Future Sleep(int ms) {
    return client_->Submit("sleep", Json(absl::StrCat(R"({"ms": )", ms, "}")));
  }

  // The task's state as the server has it now.
  v1::State ServerState(const std::string& id) {
    absl::StatusOr<v1::Task> task = client_->Get(id);
    EXPECT_TRUE(task.ok()) << task.status();
    return task.ok() ? task->state() : v1::STATE_UNSPECIFIED;
  }

  std::unique_ptr<Client> client_;
};

// Where and with what a done-callback ran.
struct CallbackRun {
  std::thread::id thread;
  v1::State state;
};

TEST_F(ComposeTest, OnDoneRunsOnTheExecutorThread) {
  ThreadExecutor executor;
  const Future future = Sleep(100);
  std::promise<CallbackRun> ran;
  future.OnDone(
      [&ran](const Future& done) {
        ran.set_value({std::this_thread::get_id(), done.task().state()});
      },
      executor);
  std::future<CallbackRun> run = ran.get_future();
  ASSERT_EQ(run.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  const CallbackRun result = run.get();
  // The executor's own thread: neither the caller's nor a gRPC thread.
  EXPECT_EQ(result.thread, executor.thread_id());
  EXPECT_NE(result.thread, std::this_thread::get_id());
  EXPECT_EQ(result.state, v1::SUCCEEDED);
}

// An executor that runs nothing until the test says so, and records the
// thread that handed each callback over.
class HeldExecutor : public CallbackExecutor {
 public:
  void Run(absl::AnyInvocable<void()> callback) override {
    absl::MutexLock lock(&mu_);
    callbacks_.push_back(std::move(callback));
  }
  size_t held() {
    absl::MutexLock lock(&mu_);
    return callbacks_.size();
  }
  void RunAll() {
    std::vector<absl::AnyInvocable<void()>> callbacks;
    {
      absl::MutexLock lock(&mu_);
      callbacks.swap(callbacks_);
    }
    for (absl::AnyInvocable<void()>& callback : callbacks) callback();
  }

 private:
  absl::Mutex mu_;
  std::vector<absl::AnyInvocable<void()>> callbacks_ ABSL_GUARDED_BY(mu_);
};

TEST_F(ComposeTest, CallbacksGoThroughTheExecutorOnly) {
  HeldExecutor executor;
  const Future future = Sleep(50);
  std::atomic<int> runs = 0;
  future.OnDone([&runs](const Future&) { ++runs; }, executor);
  ASSERT_TRUE(WaitUntil([&] { return executor.held() == 1; }, kLongWait));
  EXPECT_EQ(runs, 0);  // handed over, not run
  executor.RunAll();
  EXPECT_EQ(runs, 1);
}

TEST_F(ComposeTest, OnDoneAfterTheEndRuns) {
  ThreadExecutor executor;
  const Future future = client_->Submit("echo", Json(R"({"x": 1})"));
  future.wait();
  std::promise<std::thread::id> ran;
  future.OnDone(
      [&ran](const Future&) { ran.set_value(std::this_thread::get_id()); },
      executor);
  std::future<std::thread::id> thread = ran.get_future();
  ASSERT_EQ(thread.wait_for(std::chrono::seconds(20)),
            std::future_status::ready);
  EXPECT_EQ(thread.get(), executor.thread_id());
}

TEST_F(ComposeTest, ThenChains) {
  ThreadExecutor executor;
  std::atomic<bool> off_executor = false;
  const Continuation<double> tripled =
      client_->Submit("echo", Json(R"({"x": 2})"))
          .Then(
              [&](const Future& done) {
                if (std::this_thread::get_id() != executor.thread_id()) {
                  off_executor = true;
                }
                return done.get()
                           .value()
                           .struct_value()
                           .fields()
                           .at("x")
                           .number_value() *
                       3;
              },
              executor);
  const Continuation<double> plus_one = tripled.Then(
      [](const Continuation<double>& done) { return done.get() + 1; },
      executor);
  ASSERT_EQ(plus_one.wait_for(kLongWait), std::future_status::ready);
  EXPECT_EQ(plus_one.get(), 7);
  EXPECT_TRUE(tripled.ready());
  EXPECT_FALSE(off_executor);

  // A void step, then one that reads it.
  std::atomic<int> steps = 0;
  const Continuation<int> after_void =
      plus_one.Then([&](const Continuation<double>&) { ++steps; }, executor)
          .Then(
              [&](const Continuation<void>& done) {
                done.get();
                return ++steps;
              },
              executor);
  EXPECT_EQ(after_void.get(), 2);
}

TEST_F(ComposeTest, ThenPassesTaskErrorsDownTheChain) {
  ThreadExecutor executor;
  const Continuation<std::string> json =
      client_->Submit("fail", Json(R"({"message": "no"})"))
          .Then([](const Future& done) { return done.get().json(); }, executor);
  const Continuation<size_t> size = json.Then(
      [](const Continuation<std::string>& done) { return done.get().size(); },
      executor);
  try {
    size.get();
    ADD_FAILURE() << "no TaskError";
  } catch (const TaskError& error) {
    EXPECT_EQ(error.state(), v1::FAILED);
  }
}

TEST_F(ComposeTest, WhenAllWaitsForEveryFuture) {
  const std::vector<Future> futures = {Sleep(300), Sleep(50), Sleep(150),
                                       client_->SubmitAsync("no_such_fn")};
  const Continuation<void> all = WhenAll(futures);
  ASSERT_EQ(all.wait_for(kLongWait), std::future_status::ready);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(futures[i].task().state(), v1::SUCCEEDED) << i;
  }
  EXPECT_FALSE(futures[3].result().ok());  // done: its submit was refused
  EXPECT_TRUE(WhenAll({}).ready());
}

TEST_F(ComposeTest, WhenAnyGivesTheFirstToEnd) {
  const std::vector<Future> futures = {Sleep(10000), Sleep(50), Sleep(10000)};
  const Continuation<size_t> any = WhenAny(futures);
  ASSERT_EQ(any.wait_for(kLongWait), std::future_status::ready);
  EXPECT_EQ(any.get(), 1u);
  EXPECT_FALSE(futures[0].ready());
  futures[0].cancel();
  futures[2].cancel();
  EXPECT_THROW(WhenAny({}).get(), std::invalid_argument);
}

TEST_F(ComposeTest, AsCompletedYieldsInOrderOfEnd) {
  const std::vector<Future> futures = {Sleep(900), Sleep(50), Sleep(450)};
  AsCompleted completed(futures);
  EXPECT_EQ(completed.remaining(), 3u);
  std::vector<std::string> order;
  while (std::optional<Future> next = completed.Next(absl::Now() + kLongWait)) {
    EXPECT_TRUE(next->ready());
    order.push_back(next->id());
  }
  EXPECT_EQ(completed.remaining(), 0u);
  EXPECT_EQ(order, (std::vector<std::string>{futures[1].id(), futures[2].id(),
                                             futures[0].id()}));
  // A deadline that passes first.
  const Future long_sleep = Sleep(10000);
  AsCompleted slow(std::vector<Future>{long_sleep});
  EXPECT_EQ(slow.Next(absl::Now() + absl::Milliseconds(50)), std::nullopt);
  EXPECT_EQ(slow.remaining(), 1u);
  EXPECT_TRUE(long_sleep.cancel());
  const std::optional<Future> cancelled = slow.Next(absl::Now() + kLongWait);
  ASSERT_TRUE(cancelled.has_value());
  EXPECT_EQ(cancelled->task().state(), v1::CANCELLED);
}

TEST_F(ComposeTest, WithoutSessionCallbacksAndDropCancelWork) {
  ClientOptions options;
  options.use_session = false;  // futures followed by polling RPCs
  options.cancel_when_dropped = true;
  Client client(server_->address(), options);
  ThreadExecutor executor;
  const Continuation<std::thread::id> ran =
      client.Submit("sleep", Json(R"({"ms": 100})"))
          .Then(
              [](const Future& done) {
                done.get();
                return std::this_thread::get_id();
              },
              executor);
  ASSERT_EQ(ran.wait_for(kLongWait), std::future_status::ready);
  EXPECT_EQ(ran.get(), executor.thread_id());

  std::string id;
  {
    const Future dropped = client.Submit("sleep", Json(R"({"ms": 10000})"));
    id = dropped.id();
    ASSERT_TRUE(WaitUntilRunning(client, id));
  }
  EXPECT_TRUE(
      WaitUntil([&] { return ServerState(id) == v1::CANCELLED; }, kLongWait));
}

// An executor that runs each callback at once, on the thread that hands it
// over (the watcher's, or the caller's when the future is done already).
class InlineExecutor : public CallbackExecutor {
 public:
  void Run(absl::AnyInvocable<void()> callback) override { callback(); }
};

// Many callbacks pending at once on the futures of two Clients (two
// sessions): each fires exactly once, with its own future.
TEST_F(ComposeTest, ManyPendingCallbacksOnTwoClientsFireOnceEach) {
  constexpr int kTasks = 20000;
  Client second(server_->address());
  Client* const clients[] = {client_.get(), &second};
  InlineExecutor executor;
  // runs[i]: how many times a callback for task i ran; wrong[i]: whether
  // one saw another task's future or an unfinished one. Shared with the
  // callbacks, which outlive a failed test.
  struct Tally {
    explicit Tally(int tasks) : runs(tasks), wrong(tasks) {}
    std::vector<std::atomic<int>> runs;
    std::vector<std::atomic<bool>> wrong;
    std::atomic<int> total = 0;
  };
  const auto tally = std::make_shared<Tally>(kTasks);
  std::vector<std::atomic<int>>& runs = tally->runs;
  std::vector<std::atomic<bool>>& wrong = tally->wrong;
  std::atomic<int>& total = tally->total;
  std::vector<Future> futures;
  std::vector<Continuation<int>> thens;
  futures.reserve(kTasks);
  for (int i = 0; i < kTasks; ++i) {
    futures.push_back(clients[i % 2]->SubmitAsync(
        "echo", Json(absl::StrCat(R"({"i": )", i, "}"))));
    // Returns which task it saw (-1: not a done echo).
    auto seen = [](const Future& done) {
      absl::StatusOr<TaskResult> result = done.result();
      if (!result.ok()) return -1;
      return static_cast<int>(
          result->value().struct_value().fields().at("i").number_value());
    };
    auto count = [tally, i](int seen_index) {
      if (seen_index != i) tally->wrong[i] = true;
      ++tally->runs[i];
      ++tally->total;
    };
    // Half with OnDone, half with Then (whose continuation gets the index).
    if (i % 4 < 2) {
      futures.back().OnDone(
          [seen, count](const Future& done) { count(seen(done)); }, executor);
    } else {
      thens.push_back(futures.back().Then(
          [seen, count](const Future& done) {
            const int seen_index = seen(done);
            count(seen_index);
            return seen_index;
          },
          executor));
    }
  }
  ASSERT_TRUE(
      WaitUntil([&] { return total.load() >= kTasks; }, absl::Seconds(60)))
      << total.load() << " of " << kTasks << " callbacks ran";
  // One more watched future, handed over after any late duplicate.
  std::atomic<bool> last = false;
  client_->Submit("echo").OnDone([&](const Future&) { last = true; }, executor);
  ASSERT_TRUE(WaitUntil([&] { return last.load(); }, kLongWait));
  EXPECT_EQ(total.load(), kTasks);
  int not_once = 0;
  int mismatched = 0;
  for (int i = 0; i < kTasks; ++i) {
    if (runs[i] != 1) ++not_once;
    if (wrong[i]) ++mismatched;
  }
  EXPECT_EQ(not_once, 0);
  EXPECT_EQ(mismatched, 0);
  for (size_t k = 0; k < thens.size(); ++k) {
    ASSERT_TRUE(thens[k].ready()) << k;
    const int i = static_cast<int>(4 * (k / 2) + 2 + k % 2);
    EXPECT_EQ(thens[k].get(), i);
  }
}

// Several watches of one running future (callbacks, Then, the
// combinators) each fire once when it ends.
TEST_F(ComposeTest, SeveralWatchesOfOneRunningFutureEachFireOnce) {
  ThreadExecutor executor;
  const Future future = Sleep(10000);
  ASSERT_TRUE(WaitUntilRunning(*client_, future.id()));
  // Shared with the callbacks, which outlive a failed test.
  struct Runs {
    std::atomic<int> count[3] = {};
  };
  const auto runs = std::make_shared<Runs>();
  future.OnDone([runs](const Future&) { ++runs->count[0]; }, executor);
  future.OnDone([runs](const Future&) { ++runs->count[1]; }, executor);
  const Continuation<int> then = future.Then(
      [runs](const Future& done) {
        ++runs->count[2];
        return static_cast<int>(done.task().state());
      },
      executor);
  const Continuation<void> all = WhenAll({future, future});
  const Continuation<size_t> any = WhenAny({future});
  AsCompleted completed({future, future});
  EXPECT_FALSE(all.ready());
  ASSERT_TRUE(client_->Cancel(future.id()).ok());
  ASSERT_EQ(then.wait_for(kLongWait), std::future_status::ready);
  EXPECT_EQ(then.get(), static_cast<int>(v1::CANCELLED));
  ASSERT_EQ(all.wait_for(kLongWait), std::future_status::ready);
  EXPECT_EQ(any.get(), 0u);
  for (int i = 0; i < 2; ++i) {
    const std::optional<Future> next = completed.Next(absl::Now() + kLongWait);
    ASSERT_TRUE(next.has_value()) << i;
    EXPECT_EQ(next->id(), future.id());
  }
  EXPECT_EQ(completed.Next(absl::Now()), std::nullopt);
  // One more callback, queued behind any late duplicate.
  std::promise<void> last;
  future.OnDone([&last](const Future&) { last.set_value(); }, executor);
  last.get_future().wait();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(runs->count[i].load(), 1) << i;
}

// A callback added while its task runs fires once when the task ends,
// whether it ends by itself or is cancelled by another client, and other
// callbacks do not wait for it.
TEST_F(ComposeTest, CallbackOnARunningTaskFiresOnceWhenItEnds) {
  HeldExecutor executor;
  const Future long_task = Sleep(30000);
  const Future short_task = Sleep(300);
  ASSERT_TRUE(WaitUntilRunning(*client_, long_task.id()));
  ASSERT_TRUE(WaitUntilRunning(*client_, short_task.id()));
  std::atomic<int> long_runs = 0;
  std::atomic<int> short_runs = 0;
  std::atomic<v1::State> long_state = v1::STATE_UNSPECIFIED;
  std::atomic<v1::State> short_state = v1::STATE_UNSPECIFIED;
  long_task.OnDone(
      [&](const Future& done) {
        long_state = done.task().state();
        ++long_runs;
      },
      executor);
  short_task.OnDone(
      [&](const Future& done) {
        short_state = done.task().state();
        ++short_runs;
      },
      executor);
  // Runs what the watcher hands over until `done`.
  const auto run_until = [&executor](auto done) {
    return WaitUntil(
        [&] {
          executor.RunAll();
          return done();
        },
        kLongWait);
  };
  // The short task ends by itself while the long one is still watched.
  ASSERT_TRUE(run_until([&] { return short_runs.load() == 1; }));
  EXPECT_EQ(short_state.load(), v1::SUCCEEDED);
  EXPECT_EQ(long_runs.load(), 0);
  // Another client cancels the long task: its end reaches the watch.
  Client other(server_->address());
  ASSERT_TRUE(other.Cancel(long_task.id()).ok());
  ASSERT_TRUE(run_until([&] { return long_runs.load() == 1; }));
  EXPECT_EQ(long_state.load(), v1::CANCELLED);
  // Neither fires again.
  const Future last = client_->Submit("echo");
  std::atomic<bool> last_ran = false;
  last.OnDone([&](const Future&) { last_ran = true; }, executor);
  ASSERT_TRUE(run_until([&] { return last_ran.load(); }));
  EXPECT_EQ(long_runs.load(), 1);
  EXPECT_EQ(short_runs.load(), 1);
}

// How many tasks labelled map=`label` the server has not ended, from one
// List call (two, one per state, could count a task twice as it moves on).
int InFlight(Client& client, const std::string& label) {
  v1::ListRequest request;
  request.set_function("sleep");
  request.set_page_size(1000);
  absl::StatusOr<v1::ListResponse> page = client.List(request);
  EXPECT_TRUE(page.ok()) << page.status();
  if (!page.ok()) return 0;
  EXPECT_TRUE(page->next_page_token().empty());  // one page: a snapshot
  int count = 0;
  for (const v1::Task& task : page->tasks()) {
    auto found = task.labels().find("map");
    if (found != task.labels().end() && found->second == label &&
        !IsTerminal(task.state())) {
      ++count;
    }
  }
  return count;
}

TEST_F(ComposeTest, MapKeepsAtMostWindowInFlightAndInputOrder) {
  constexpr size_t kWindow = 2;
  std::vector<google::protobuf::Value> inputs;
  for (int i = 0; i < 8; ++i) {
    inputs.push_back(Json(absl::StrCat(R"({"ms": )", 150 + 10 * i, "}")));
  }
  inputs.push_back(Json(R"({"ms": "not a number"})"));  // refused
  SubmitOptions options;
  options.labels["map"] = "window";
  std::atomic<bool> mapping = true;
  std::atomic<int> most = 0;
  std::thread counter([&] {
    while (mapping) {
      most = std::max(most.load(), InFlight(*client_, "window"));
    }
  });
  const std::vector<absl::StatusOr<TaskResult>> results =
      client_->Map("sleep", inputs, kWindow, options);
  mapping = false;
  counter.join();
  // The window is filled, and never exceeded.
  EXPECT_EQ(most, static_cast<int>(kWindow));
  ASSERT_EQ(results.size(), inputs.size());
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(results[i].ok()) << i << ": " << results[i].status();
    EXPECT_EQ(results[i]
                  ->value()
                  .struct_value()
                  .fields()
                  .at("slept_ms")
                  .number_value(),
              150 + 10 * i);
  }
  EXPECT_EQ(results[8].status().code(), absl::StatusCode::kInvalidArgument)
      << results[8].status();
}

// Tasks that end together are taken together; each result still lands at
// its input's index.
TEST_F(ComposeTest, MapOfManyShortTasksKeepsInputOrder) {
  constexpr int kInputs = 3000;
  std::vector<google::protobuf::Value> inputs;
  for (int i = 0; i < kInputs; ++i) {
    inputs.push_back(Json(absl::StrCat(R"({"i": )", i, "}")));
  }
  const std::vector<absl::StatusOr<TaskResult>> results =
      client_->Map("echo", inputs, /*window=*/256);
  ASSERT_EQ(results.size(), inputs.size());
  for (int i = 0; i < kInputs; ++i) {
    ASSERT_TRUE(results[i].ok()) << i << ": " << results[i].status();
    ASSERT_EQ(
        results[i]->value().struct_value().fields().at("i").number_value(), i);
  }
}

TEST_F(ComposeTest, MapStopsOnStopToken) {
  std::stop_source stop;
  const std::vector<google::protobuf::Value> inputs(5,
                                                    Json(R"({"ms": 10000})"));
  SubmitOptions options;
  options.labels["map"] = "stop";
  std::thread stopper([&] {
    // Once the window is full, stop.
    EXPECT_TRUE(
        WaitUntil([&] { return InFlight(*client_, "stop") == 2; }, kLongWait));
    stop.request_stop();
  });
  const std::vector<absl::StatusOr<TaskResult>> results =
      client_->Map("sleep", inputs, 2, options, stop.get_token());
  stopper.join();
  ASSERT_EQ(results.size(), inputs.size());
  for (const absl::StatusOr<TaskResult>& result : results) {
    EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled)
        << result.status();
  }
}

TEST_F(ComposeTest, StopTokenCancelsTheTask) {
  std::stop_source stop;
  const Future future = Sleep(10000);
  future.CancelOn(stop.get_token());
  ASSERT_TRUE(WaitUntilRunning(*client_, future.id()));
  stop.request_stop();
  ASSERT_EQ(future.wait_for(kLongWait), std::future_status::ready);
  EXPECT_EQ(future.task().state(), v1::CANCELLED);
  EXPECT_EQ(ServerState(future.id()), v1::CANCELLED);

  // A token stopped already cancels at once.
  const Future later = Sleep(10000);
  later.CancelOn(stop.get_token());
  ASSERT_EQ(later.wait_for(kLongWait), std::future_status::ready);
  EXPECT_EQ(later.task().state(), v1::CANCELLED);
}

TEST_F(ComposeTest, DroppedFutureIsCancelledWhenEnabled) {
  ClientOptions options;
  options.cancel_when_dropped = true;
  Client client(server_->address(), options);
  std::string id;
  {
    const Future future = client.Submit("sleep", Json(R"({"ms": 10000})"));
    id = future.id();
    const Future copy = future;  // the last copy counts, not the first
    ASSERT_TRUE(WaitUntilRunning(client, id));
  }
  EXPECT_TRUE(
      WaitUntil([&] { return ServerState(id) == v1::CANCELLED; }, kLongWait));
}

TEST_F(ComposeTest, DroppedFutureRunsOnByDefault) {
  std::string id;
  {
    const Future future = Sleep(10000);
    id = future.id();
    ASSERT_TRUE(WaitUntilRunning(*client_, id));
  }
  // Still running a while after the drop.
  const absl::StatusOr<v1::Task> task =
      client_->Await(id, absl::Milliseconds(500));
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->state(), v1::RUNNING);
  ASSERT_TRUE(client_->Cancel(id).ok());
}

}  // namespace
}  // namespace remex
