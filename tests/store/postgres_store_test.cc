// PostgresStore against a real PostgreSQL 15 (tests/testing/postgres_server.h):
// one server for the suite, a fresh database per test.
#include "server/store/postgres/postgres_store.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/executor/store.h"
#include "server/executor/task.h"
#include "server/executor/task_query.h"
#include "server/store/postgres/pg.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/postgres_test.h"
#include "tests/testing/wait.h"

namespace remex::store {
namespace {

using executor::Json;
using executor::ListPage;
using executor::ListQuery;
using executor::TaskOutcome;
using executor::TaskSnapshot;
using executor::TaskSpec;
using executor::TaskState;
using executor::Visibility;
using ::testing::HasSubstr;
using ::testing::Not;

// Counts what the store reports. Thread-safe.
class CountingObserver : public executor::StoreObserver {
 public:
  void OnCommit(size_t tasks, absl::Duration latency) override {
    commits_.fetch_add(1);
    committed_tasks_.fetch_add(static_cast<int64_t>(tasks));
  }
  void OnDatabaseError(absl::string_view operation) override {
    errors_.fetch_add(1);
  }
  void OnReconnect() override { reconnects_.fetch_add(1); }
  void OnRequeued(int64_t tasks) override {}
  void OnClaimLag(absl::Duration lag) override {}
  void OnCanCommit(bool can_commit) override {
    (can_commit ? can_commit_true_ : can_commit_false_).fetch_add(1);
  }
  void OnLiveReplicas(int64_t) override {}
  void OnReplicaLost(absl::Duration, int64_t) override {}

  int64_t commits() const { return commits_.load(); }
  int64_t committed_tasks() const { return committed_tasks_.load(); }
  int64_t errors() const { return errors_.load(); }
  int64_t reconnects() const { return reconnects_.load(); }
  int64_t can_commit_false() const { return can_commit_false_.load(); }
  int64_t can_commit_true() const { return can_commit_true_.load(); }

 private:
  std::atomic<int64_t> commits_{0};
  std::atomic<int64_t> committed_tasks_{0};
  std::atomic<int64_t> errors_{0};
  std::atomic<int64_t> reconnects_{0};
  std::atomic<int64_t> can_commit_false_{0};
  std::atomic<int64_t> can_commit_true_{0};
};

// Every byte value, and strings that need escaping in array literals, JSON
// and SQL.
std::string AllBytes() {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  return bytes;
}
constexpr char kHostile[] =
    "q\"u'o,t{e}s\\ \\\\ \"\" NULL null \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"
    " \t\n $1 '; DROP TABLE remex_tasks; --";

// Microsecond precision: what the store keeps.
absl::Time Micros(absl::Time time) {
  return absl::FromUnixMicros(absl::ToUnixMicros(time));
}

TaskSnapshot NewTask(std::string id, std::string owner = "alice",
                     std::string function = "echo",
                     std::string pool = "default") {
  auto spec = std::make_shared<TaskSpec>();
  spec->function = std::move(function);
  spec->pool = std::move(pool);
  spec->owner = std::move(owner);
  spec->args = Json::object({{"n", 1}});
  TaskSnapshot task;
  task.id = std::move(id);
  task.spec = std::move(spec);
  task.created_at = Micros(absl::Now());
  return task;
}

// What a task that succeeded with a result leaves.
std::shared_ptr<TaskOutcome> ResultOutcome() {
  auto outcome = std::make_shared<TaskOutcome>();
  outcome->result = Json::object({{"r", 1}});
  return outcome;
}

class PostgresStoreTest : public testing::PostgresTest {
 protected:
  PostgresStoreOptions Options() {
    PostgresStoreOptions options;
    options.url = url_;
    options.replica_name = "replica-a";
    options.observer = &observer_;
    return options;
  }

  std::unique_ptr<PostgresStore> Open(PostgresStoreOptions options) {
    absl::StatusOr<std::unique_ptr<PostgresStore>> store =
        PostgresStore::Open(std::move(options));
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }
  std::unique_ptr<PostgresStore> Open() { return Open(Options()); }

  int64_t Count(const std::string& table) {
    auto rows = Query(absl::StrCat("SELECT count(*) FROM ", table));
    return rows.empty() ? -1 : std::stoll(rows[0][0]);
  }

  static absl::StatusOr<uint64_t> Insert(executor::Store& store,
                                         TaskSnapshot task) {
    absl::Notification done;
    absl::StatusOr<uint64_t> result;
    store.Insert(std::move(task), /*run_here=*/true,
                 [&](absl::StatusOr<uint64_t> position) {
                   result = std::move(position);
                   done.Notify();
                 });
    if (!done.WaitForNotificationWithTimeout(testing::kWaitTimeout)) {
      return absl::DeadlineExceededError("insert did not answer");
    }
    return result;
  }
  static void Update(executor::Store& store, TaskSnapshot task,
                     absl::Time expire_at = absl::InfiniteFuture()) {
    absl::Notification done;
    store.Update(std::move(task), expire_at, /*release=*/false,
                 [&] { done.Notify(); });
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(testing::kWaitTimeout));
  }
  static absl::StatusOr<TaskSnapshot> Get(executor::Store& store,
                                          std::string id,
                                          Visibility visibility = {}) {
    absl::Notification done;
    absl::StatusOr<TaskSnapshot> result;
    store.Get(std::move(id), std::move(visibility),
              [&](absl::StatusOr<TaskSnapshot> task) {
                result = std::move(task);
                done.Notify();
              });
    if (!done.WaitForNotificationWithTimeout(testing::kWaitTimeout)) {
      return absl::DeadlineExceededError("get did not answer");
    }
    return result;
  }
  static absl::StatusOr<ListPage> List(executor::Store& store, ListQuery query,
                                       Visibility visibility = {}) {
    absl::Notification done;
    absl::StatusOr<ListPage> result;
    store.List(std::move(query), std::move(visibility),
               [&](absl::StatusOr<ListPage> page) {
                 result = std::move(page);
                 done.Notify();
               });
    if (!done.WaitForNotificationWithTimeout(testing::kWaitTimeout)) {
      return absl::DeadlineExceededError("list did not answer");
    }
    return result;
  }
  static absl::Status Erase(executor::Store& store, std::string id,
                            Visibility visibility = {}) {
    absl::Notification done;
    absl::Status result;
    store.Erase(std::move(id), std::move(visibility), [&](absl::Status status) {
      result = std::move(status);
      done.Notify();
    });
    if (!done.WaitForNotificationWithTimeout(testing::kWaitTimeout)) {
      return absl::DeadlineExceededError("erase did not answer");
    }
    return result;
  }

  static std::vector<std::string> Ids(const ListPage& page) {
    std::vector<std::string> ids;
    for (const TaskSnapshot& task : page.tasks) ids.push_back(task.id);
    return ids;
  }

  CountingObserver observer_;
};

void ExpectSameSpec(const TaskSpec& got, const TaskSpec& want) {
  EXPECT_EQ(got.function, want.function);
  EXPECT_EQ(got.args, want.args);
  EXPECT_EQ(got.input, want.input);
  EXPECT_EQ(got.pool, want.pool);
  EXPECT_EQ(got.priority, want.priority);
  EXPECT_EQ(got.max_attempts, want.max_attempts);
  EXPECT_EQ(got.queue_timeout, want.queue_timeout);
  EXPECT_EQ(got.run_timeout, want.run_timeout);
  EXPECT_EQ(got.labels, want.labels);
  EXPECT_EQ(got.ttl, want.ttl);
  EXPECT_EQ(got.owner, want.owner);
}

TEST_F(PostgresStoreTest, EveryFieldRoundTripsThroughInsertUpdateAndGet) {
  std::unique_ptr<PostgresStore> store = Open();
  ASSERT_NE(store, nullptr);

  auto spec = std::make_shared<TaskSpec>();
  spec->function = absl::StrCat("fn ", kHostile);
  spec->pool = absl::StrCat("pool ", kHostile);
  spec->owner = absl::StrCat("owner ", kHostile);
  spec->args = Json::object(
      {{kHostile, kHostile},
       {"nested", Json::array({1, 2.5, -3, true, nullptr, "x\\\"{,}"})},
       {"nul", std::string("a\0b", 3)},
       {"big", 9007199254740993LL}});
  spec->input = AllBytes() + AllBytes();
  spec->priority = -7;
  spec->max_attempts = 3;
  spec->queue_timeout = absl::Microseconds(1234567);
  spec->run_timeout = absl::InfiniteDuration();
  spec->labels = {{kHostile, kHostile}, {"k", ""}, {"{a,b}", "\\"}};
  spec->ttl = absl::Minutes(3);
  TaskSnapshot task;
  task.id = "task-1";
  task.spec = spec;
  task.created_at = Micros(absl::Now()) + absl::Microseconds(1);

  absl::StatusOr<uint64_t> position = Insert(*store, task);
  ASSERT_TRUE(position.ok()) << position.status();
  EXPECT_GT(*position, 0u);

  absl::StatusOr<TaskSnapshot> got = Get(*store, "task-1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->id, "task-1");
  EXPECT_EQ(got->list_position, *position);
  ExpectSameSpec(*got->spec, *spec);
  EXPECT_EQ(got->state, TaskState::kQueued);
  EXPECT_EQ(got->attempt, 0);
  EXPECT_FALSE(got->cancel_requested);
  EXPECT_EQ(got->created_at, task.created_at);
  EXPECT_EQ(got->started_at, absl::InfinitePast());
  EXPECT_EQ(got->finished_at, absl::InfinitePast());
  EXPECT_EQ(got->outcome, nullptr);

  TaskSnapshot running = task;
  running.state = TaskState::kRunning;
  running.attempt = 1;
  running.started_at = Micros(absl::Now());
  Update(*store, running);
  got = Get(*store, "task-1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->state, TaskState::kRunning);
  EXPECT_EQ(got->attempt, 1);
  EXPECT_EQ(got->started_at, running.started_at);
  EXPECT_EQ(Query("SELECT replica FROM remex_tasks")[0][0], "replica-a");

  TaskSnapshot ended = running;
  ended.state = TaskState::kSucceeded;
  ended.cancel_requested = true;
  ended.finished_at = running.started_at + absl::Microseconds(987654);
  auto outcome = std::make_shared<TaskOutcome>();
  outcome->result = Json::object({{kHostile, Json::array({kHostile, 1.5})}});
  outcome->output = AllBytes();
  outcome->error = {absl::StatusCode::kDataLoss, kHostile};
  ended.outcome = outcome;
  Update(*store, ended, Micros(absl::Now()) + absl::Hours(1));

  got = Get(*store, "task-1");
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectSameSpec(*got->spec, *spec);
  EXPECT_EQ(got->state, TaskState::kSucceeded);
  EXPECT_EQ(got->attempt, 1);
  EXPECT_TRUE(got->cancel_requested);
  EXPECT_EQ(got->started_at, running.started_at);
  EXPECT_EQ(got->finished_at, ended.finished_at);
  ASSERT_NE(got->outcome, nullptr);
  EXPECT_EQ(got->outcome->result, outcome->result);
  EXPECT_EQ(got->outcome->output, outcome->output);
  EXPECT_EQ(got->outcome->error.code, absl::StatusCode::kDataLoss);
  EXPECT_EQ(got->outcome->error.message, kHostile);
}

TEST_F(PostgresStoreTest, TextThatPostgresCannotHoldIsMadeValid) {
  std::unique_ptr<PostgresStore> store = Open();
  ASSERT_NE(store, nullptr);
  TaskSnapshot task = NewTask("task-bad-text");
  auto spec = std::make_shared<TaskSpec>(*task.spec);
  spec->labels = {{std::string("k\0\xff", 3), std::string("v\0", 2)}};
  task.spec = spec;
  ASSERT_TRUE(Insert(*store, task).ok());
  absl::StatusOr<TaskSnapshot> got = Get(*store, "task-bad-text");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->spec->labels,
            (std::map<std::string, std::string>{
                {"k\xEF\xBF\xBD\xEF\xBF\xBD", "v\xEF\xBF\xBD"}}));
  // And the store still commits.
  EXPECT_TRUE(Insert(*store, NewTask("task-after")).ok());
}

TEST_F(PostgresStoreTest, ListPositionsIncreaseInInsertOrder) {
  std::unique_ptr<PostgresStore> store = Open();
  ASSERT_NE(store, nullptr);
  uint64_t last = 0;
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<uint64_t> position =
        Insert(*store, NewTask(absl::StrCat("t", i)));
    ASSERT_TRUE(position.ok()) << position.status();
    EXPECT_GT(*position, last);
    last = *position;
  }
  // A taken id is refused, not stored twice.
  absl::StatusOr<uint64_t> again = Insert(*store, NewTask("t0"));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Count("remex_tasks"), 5);
}

TEST_F(PostgresStoreTest, GetIsNotFoundForUnknownIdsAndOtherOwnersTasks) {
  std::unique_ptr<PostgresStore> store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(Insert(*store, NewTask("mine", "alice")).ok());

  absl::StatusOr<TaskSnapshot> unknown = Get(*store, "nope");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(unknown.status().message(), HasSubstr("nope"));

  absl::StatusOr<TaskSnapshot> other =
      Get(*store, "mine", Visibility{"bob", /*sees_all_tasks=*/false});
  EXPECT_EQ(other.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Get(*store, "mine", Visibility{"alice", false}).ok());
  EXPECT_TRUE(Get(*store, "mine", Visibility{"bob", true}).ok());
}

TEST_F(PostgresStoreTest, ManyGetsAtOnceAreEachAnswered) {
  std::unique_ptr<PostgresStore> store = Open();
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(Insert(*store, NewTask(absl::StrCat("g", i))).ok());
  }
  absl::Mutex mu;
  int found = 0;
  int not_found = 0;
  for (int i = 0; i < 40; ++i) {
    store->Get(absl::StrCat("g", i), {}, [&](absl::StatusOr<TaskSnapshot> t) {
      absl::MutexLock lock(&mu);
      (t.ok() ? found : not_found) += 1;
    });
  }
  ASSERT_TRUE(testing::WaitUntil([&] {
    absl::MutexLock lock(&mu);
    return found + not_found == 40;
  }));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(found, 20);
  EXPECT_EQ(not_found, 20);
}

TEST_F(PostgresStoreTest, ListFiltersPagesAndRefusesForeignTokens) {
  std::unique_ptr<PostgresStore> store = Open();
  ASSERT_NE(store, nullptr);
  // a0..a9 alice/echo/default; b0..b4 bob/sleep/slow.
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(Insert(*store, NewTask(absl::StrCat("a", i))).ok());
  }
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(
        Insert(*store, NewTask(absl::StrCat("b", i), "bob", "sleep", "slow"))
            .ok());
  }
  TaskSnapshot running = NewTask("a3");
  running.state = TaskState::kRunning;
  running.attempt = 1;
  running.started_at = Micros(absl::Now());
  Update(*store, running);

  absl::StatusOr<ListPage> all = List(*store, {});
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->tasks.size(), 15u);
  EXPECT_EQ(all->next_page_token, "");
  EXPECT_EQ(all->tasks.front().id, "a0");
  EXPECT_EQ(all->tasks.back().id, "b4");

  ListQuery by_function;
  by_function.function = "sleep";
  EXPECT_THAT(Ids(*List(*store, by_function)),
              ::testing::ElementsAre("b0", "b1", "b2", "b3", "b4"));
  ListQuery by_pool;
  by_pool.pool = "default";
  EXPECT_EQ(List(*store, by_pool)->tasks.size(), 10u);
  ListQuery by_state;
  by_state.state = TaskState::kRunning;
  EXPECT_THAT(Ids(*List(*store, by_state)), ::testing::ElementsAre("a3"));
  EXPECT_EQ(List(*store, {}, Visibility{"bob", false})->tasks.size(), 5u);

  // Pages of 4: 4 + 4 + 4 + 3, tokens as ListPageToken makes them.
  std::vector<std::string> paged;
  ListQuery query;
  query.page_size = 4;
  for (int page = 0; page < 10; ++page) {
    absl::StatusOr<ListPage> got = List(*store, query);
    ASSERT_TRUE(got.ok()) << got.status();
    for (const std::string& id : Ids(*got)) paged.push_back(id);
    if (got->next_page_token.empty()) break;
    EXPECT_EQ(got->tasks.size(), 4u);
    EXPECT_EQ(got->next_page_token,
              executor::ListPageToken(got->tasks.back().list_position));
    query.page_token = got->next_page_token;
  }
  EXPECT_EQ(paged, Ids(*all));

  // Page sizes are clamped: 0 is the default, too large is the maximum.
  ListQuery huge;
  huge.page_size = 1 << 20;
  EXPECT_EQ(List(*store, huge)->tasks.size(), 15u);

  for (const char* bad :
       {"x", "p", "p0", "p-1", "p12a", "99", "p99999999999999999999"}) {
    ListQuery foreign;
    foreign.page_token = bad;
    absl::StatusOr<ListPage> refused = List(*store, foreign);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST_F(PostgresStoreTest, EraseDeletesAllThreeRows) {
  std::unique_ptr<PostgresStore> store = Open();
  ASSERT_NE(store, nullptr);
  TaskSnapshot task = NewTask("gone", "alice");
  ASSERT_TRUE(Insert(*store, task).ok());
  task.state = TaskState::kSucceeded;
  task.finished_at = Micros(absl::Now());
  task.outcome = ResultOutcome();
  Update(*store, task, absl::Now() + absl::Hours(1));
  ASSERT_EQ(Count("remex_task_results"), 1);

  EXPECT_EQ(Erase(*store, "gone", Visibility{"bob", false}).code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(Erase(*store, "gone", Visibility{"alice", false}).ok());
  EXPECT_EQ(Get(*store, "gone").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Erase(*store, "gone").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Count("remex_tasks"), 0);
  EXPECT_EQ(Count("remex_task_inputs"), 0);
  EXPECT_EQ(Count("remex_task_results"), 0);
}

TEST_F(PostgresStoreTest, LoadUnfinishedReturnsExactlyTheUnfinishedInOrder) {
  std::vector<TaskSnapshot> inserted;
  {
    std::unique_ptr<PostgresStore> store = Open();
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 6; ++i) {
      TaskSnapshot task = NewTask(absl::StrCat("u", i));
      auto spec = std::make_shared<TaskSpec>(*task.spec);
      spec->input = absl::StrCat("in", i, std::string(1, '\0'));
      spec->labels = {{"i", absl::StrCat(i)}};
      spec->priority = i;
      spec->max_attempts = i + 1;
      spec->run_timeout = absl::Seconds(i + 1);
      spec->ttl = absl::Seconds(30);
      task.spec = spec;
      ASSERT_TRUE(Insert(*store, task).ok());
      inserted.push_back(task);
    }
    // u1 runs, u2 succeeded, u4 was cancelled; u0, u3, u5 stay queued.
    inserted[1].state = TaskState::kRunning;
    inserted[1].attempt = 2;
    inserted[1].started_at = Micros(absl::Now());
    Update(*store, inserted[1]);
    for (int i : {2, 4}) {
      TaskSnapshot ended = inserted[i];
      ended.state = i == 2 ? TaskState::kSucceeded : TaskState::kCancelled;
      ended.finished_at = Micros(absl::Now());
      ended.outcome = std::make_shared<TaskOutcome>();
      Update(*store, ended, absl::Now() + absl::Hours(1));
    }
  }
  std::unique_ptr<PostgresStore> store = Open();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::vector<TaskSnapshot>> unfinished =
      store->LoadUnfinished();
  ASSERT_TRUE(unfinished.ok()) << unfinished.status();
  ASSERT_EQ(unfinished->size(), 4u);
  const int expected[] = {0, 1, 3, 5};
  for (size_t i = 0; i < 4; ++i) {
    const TaskSnapshot& got = (*unfinished)[i];
    const TaskSnapshot& want = inserted[expected[i]];
    EXPECT_EQ(got.id, want.id);
    ExpectSameSpec(*got.spec, *want.spec);
    EXPECT_EQ(got.state, want.state);
    EXPECT_EQ(got.attempt, want.attempt);
    EXPECT_EQ(got.created_at, want.created_at);
    EXPECT_EQ(got.started_at, want.started_at);
    if (i > 0) {
      EXPECT_GT(got.list_position, (*unfinished)[i - 1].list_position);
    }
  }
}

TEST_F(PostgresStoreTest, InsertsFromManyThreadsShareCommits) {
  std::unique_ptr<PostgresStore> store = Open();
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 250;
  std::atomic<int> ok{0};
  std::atomic<int> answered{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        store->Insert(NewTask(absl::StrCat("m", t, "-", i)), /*run_here=*/true,
                      [&](absl::StatusOr<uint64_t> position) {
                        if (position.ok()) ok.fetch_add(1);
                        answered.fetch_add(1);
                      });
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return answered.load() == kThreads * kPerThread; }));
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  EXPECT_EQ(Count("remex_tasks"), kThreads * kPerThread);
  EXPECT_EQ(Count("remex_task_inputs"), kThreads * kPerThread);
  EXPECT_EQ(observer_.committed_tasks(), kThreads * kPerThread);
  EXPECT_LT(observer_.commits(), kThreads * kPerThread);
  // Positions are unique.
  EXPECT_EQ(std::stoll(Query("SELECT count(DISTINCT list_position) FROM "
                             "remex_tasks")[0][0]),
            kThreads * kPerThread);
}

TEST_F(PostgresStoreTest, SeveralUpdatesOfATaskInOneBatchEndInTheLast) {
  PostgresStoreOptions options = Options();
  std::unique_ptr<PostgresStore> store = Open(options);
  ASSERT_NE(store, nullptr);
  TaskSnapshot task = NewTask("u");
  // Insert and updates handed over together: likely one batch; in any case
  // applied in order.
  std::atomic<int> done{0};
  store->Insert(task, /*run_here=*/true,
                [&](absl::StatusOr<uint64_t> p) { done.fetch_add(1); });
  TaskSnapshot running = task;
  running.state = TaskState::kRunning;
  running.attempt = 1;
  running.started_at = Micros(absl::Now());
  store->Update(running, absl::InfiniteFuture(), /*release=*/false,
                [&] { done.fetch_add(1); });
  TaskSnapshot ended = running;
  ended.state = TaskState::kTimedOut;
  ended.finished_at = Micros(absl::Now());
  ended.outcome =
      executor::ErrorOutcome(absl::StatusCode::kDeadlineExceeded, "late");
  store->Update(ended, absl::Now() + absl::Hours(1), /*release=*/false,
                [&] { done.fetch_add(1); });
  ASSERT_TRUE(testing::WaitUntil([&] { return done.load() == 3; }));
  absl::StatusOr<TaskSnapshot> got = Get(*store, "u");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->state, TaskState::kTimedOut);
  EXPECT_EQ(got->outcome->error.message, "late");
}

TEST_F(PostgresStoreTest, RetentionDeletesExpiredTasksInBatches) {
  PostgresStoreOptions options = Options();
  options.retention_interval = absl::Milliseconds(100);
  options.retention_batch = 10;
  std::unique_ptr<PostgresStore> store = Open(options);
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 37; ++i) {
    TaskSnapshot task = NewTask(absl::StrCat("e", i));
    ASSERT_TRUE(Insert(*store, task).ok());
    task.state = TaskState::kSucceeded;
    task.finished_at = Micros(absl::Now());
    task.outcome = ResultOutcome();
    Update(*store, task, absl::Now() - absl::Seconds(1));
  }
  TaskSnapshot kept = NewTask("kept");
  ASSERT_TRUE(Insert(*store, kept).ok());
  kept.state = TaskState::kSucceeded;
  kept.finished_at = Micros(absl::Now());
  kept.outcome = ResultOutcome();
  Update(*store, kept, absl::Now() + absl::Hours(1));
  ASSERT_TRUE(Insert(*store, NewTask("queued")).ok());

  EXPECT_TRUE(testing::WaitUntil([&] { return Count("remex_tasks") == 2; }));
  EXPECT_EQ(Count("remex_task_inputs"), 2);
  EXPECT_EQ(Count("remex_task_results"), 1);
  EXPECT_TRUE(Get(*store, "kept").ok());
  EXPECT_TRUE(Get(*store, "queued").ok());
}

TEST_F(PostgresStoreTest, ATaskWithoutPayloadHasNoInputsNorResultsRow) {
  std::unique_ptr<PostgresStore> store = Open();
  ASSERT_NE(store, nullptr);
  TaskSnapshot bare = NewTask("bare");
  auto spec = std::make_shared<TaskSpec>(*bare.spec);
  spec->args = Json();
  bare.spec = spec;
  ASSERT_TRUE(Insert(*store, bare).ok());
  TaskSnapshot labelled = NewTask("labelled");
  spec = std::make_shared<TaskSpec>(*bare.spec);
  spec->labels = {{"k", "v"}};
  labelled.spec = spec;
  ASSERT_TRUE(Insert(*store, labelled).ok());
  EXPECT_EQ(Count("remex_task_inputs"), 1);  // the labelled one
  bare.state = TaskState::kSucceeded;
  bare.finished_at = Micros(absl::Now());
  bare.outcome = std::make_shared<TaskOutcome>();
  Update(*store, bare, absl::Now() + absl::Hours(1));
  EXPECT_EQ(Count("remex_task_results"), 0);

  absl::StatusOr<TaskSnapshot> read = Get(*store, "bare");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(read->spec->args.is_null());
  EXPECT_TRUE(read->spec->input.empty());
  EXPECT_TRUE(read->spec->labels.empty());
  ASSERT_NE(read->outcome, nullptr);
  EXPECT_TRUE(read->outcome->result.is_null());
  EXPECT_TRUE(read->outcome->output.empty());
  read = Get(*store, "labelled");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->spec->labels.at("k"), "v");
}

TEST_F(PostgresStoreTest, OpenFailsFastAndClearlyOnAnUnreachableDatabase) {
  PostgresStoreOptions options = Options();
  // A port nothing listens on (the fixture's port + 1 is as good as any: a
  // closed port is refused at once).
  options.url = absl::StrCat("postgresql://postgres:s3cret@127.0.0.1:",
                             postgres_->port() + 1, "/remex");
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<PostgresStore>> store =
      PostgresStore::Open(options);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(
      store.status().message(),
      HasSubstr("cannot reach the store postgresql://postgres@127.0.0.1"));
  EXPECT_THAT(store.status().message(), Not(HasSubstr("s3cret")));
  EXPECT_THAT(std::string(store.status().message()), Not(HasSubstr("\n")));

  options.url = absl::StrCat("host=127.0.0.1 port=", postgres_->port() + 1,
                             " password='s3cret' user=postgres");
  store = PostgresStore::Open(options);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), Not(HasSubstr("s3cret")));
}

TEST_F(PostgresStoreTest, OpensAKeyValueConnectionString) {
  PostgresStoreOptions options = Options();
  options.url =
      absl::StrCat("host=127.0.0.1 port=", postgres_->port(),
                   " user=postgres dbname=", url_.substr(url_.rfind('/') + 1));
  std::unique_ptr<PostgresStore> store = Open(options);
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(Insert(*store, NewTask("kv")).ok());
  EXPECT_EQ(Count("remex_tasks"), 1);
}

TEST_F(PostgresStoreTest, ASchemaNewerThanKnownIsRefused) {
  { ASSERT_NE(Open(), nullptr); }
  Query("UPDATE remex_schema SET version = 99");
  absl::StatusOr<std::unique_ptr<PostgresStore>> store =
      PostgresStore::Open(Options());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store.status().message(),
            "the store's schema is version 99, newer than this server knows "
            "(1): upgrade the server");
}

TEST_F(PostgresStoreTest, MigrationsRunOnceAcrossOpens) {
  {
    // Two replicas starting together: the advisory lock makes one wait.
    std::unique_ptr<PostgresStore> second;
    std::thread other([&] { second = Open(); });
    std::unique_ptr<PostgresStore> first = Open();
    other.join();
    ASSERT_NE(first, nullptr);
    ASSERT_NE(second, nullptr);
    ASSERT_TRUE(Insert(*first, NewTask("x")).ok());
  }
  std::unique_ptr<PostgresStore> again = Open();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(Query("SELECT version FROM remex_schema")[0][0], "1");
  EXPECT_EQ(Count("remex_schema"), 1);
  EXPECT_TRUE(Get(*again, "x").ok());
  // The heartbeat names the replica.
  EXPECT_EQ(Query("SELECT name FROM remex_replicas")[0][0], "replica-a");
}

TEST_F(PostgresStoreTest, SurvivesADatabaseRestart) {
  std::unique_ptr<PostgresStore> store = Open();
  ASSERT_NE(store, nullptr);
  TaskSnapshot task = NewTask("before");
  ASSERT_TRUE(Insert(*store, task).ok());
  ASSERT_TRUE(store->CanCommit());

  ASSERT_TRUE(postgres_->Stop().ok());
  // The first insert finds the database gone; it and those after it fail
  // at once while it is away.
  absl::StatusOr<uint64_t> refused = Insert(*store, NewTask("during"));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(refused.status().message(), HasSubstr("the store cannot commit"));
  EXPECT_FALSE(store->CanCommit());
  const absl::Time refused_at = absl::Now();
  EXPECT_EQ(Insert(*store, NewTask("during2")).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - refused_at, absl::Seconds(1));
  EXPECT_EQ(Get(*store, "before").status().code(),
            absl::StatusCode::kUnavailable);

  // An update handed over while it is away is committed once it is back.
  std::atomic<bool> updated{false};
  task.state = TaskState::kSucceeded;
  task.finished_at = Micros(absl::Now());
  task.outcome = std::make_shared<TaskOutcome>();
  store->Update(task, absl::Now() + absl::Hours(1), /*release=*/false,
                [&] { updated.store(true); });
  EXPECT_FALSE(updated.load());

  ASSERT_TRUE(postgres_->Restart().ok());
  EXPECT_TRUE(testing::WaitUntil([&] { return store->CanCommit(); }));
  EXPECT_TRUE(testing::WaitUntil([&] { return updated.load(); }));
  EXPECT_GE(observer_.reconnects(), 1);
  EXPECT_GE(observer_.can_commit_false(), 1);
  EXPECT_GE(observer_.can_commit_true(), 1);
  EXPECT_GE(observer_.errors(), 1);

  absl::StatusOr<TaskSnapshot> got;
  EXPECT_TRUE(testing::WaitUntil([&] {
    got = Get(*store, "before");
    return got.ok();
  }));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->state, TaskState::kSucceeded);
  EXPECT_TRUE(Insert(*store, NewTask("after")).ok());
  EXPECT_EQ(Get(*store, "during").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(PostgresStoreTest, AnIdleConnectionLostToARestartCostsNoSubmit) {
  std::unique_ptr<PostgresStore> store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(Insert(*store, NewTask("one")).ok());
  ASSERT_TRUE(postgres_->Stop().ok());
  ASSERT_TRUE(postgres_->Restart().ok());
  // The writer's connection died meanwhile: it reconnects and commits.
  EXPECT_TRUE(Insert(*store, NewTask("two")).ok());
  EXPECT_TRUE(Get(*store, "two").ok());
}

TEST_F(PostgresStoreTest, TheDestructorCommitsWhatIsPending) {
  std::atomic<int> ok{0};
  {
    std::unique_ptr<PostgresStore> store = Open();
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 200; ++i) {
      store->Insert(NewTask(absl::StrCat("d", i)), /*run_here=*/true,
                    [&](absl::StatusOr<uint64_t> position) {
                      if (position.ok()) ok.fetch_add(1);
                    });
    }
  }
  EXPECT_EQ(ok.load(), 200);
  EXPECT_EQ(Count("remex_tasks"), 200);
}

TEST_F(PostgresStoreTest, TheDestructorGivesUpOnAnAbsentDatabaseInTime) {
  PostgresStoreOptions options = Options();
  options.drain_timeout = absl::Milliseconds(500);
  std::unique_ptr<PostgresStore> store = Open(options);
  ASSERT_NE(store, nullptr);
  TaskSnapshot task = NewTask("stuck");
  ASSERT_TRUE(Insert(*store, task).ok());
  ASSERT_TRUE(postgres_->Stop().ok());
  std::atomic<bool> updated{false};
  task.state = TaskState::kCancelled;
  task.finished_at = Micros(absl::Now());
  task.outcome = std::make_shared<TaskOutcome>();
  store->Update(task, absl::Now() + absl::Hours(1), /*release=*/false,
                [&] { updated.store(true); });
  ASSERT_TRUE(testing::WaitUntil([&] { return !store->CanCommit(); }));
  const absl::Time start = absl::Now();
  store.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_FALSE(updated.load());
  ASSERT_TRUE(postgres_->Restart().ok());
  EXPECT_EQ(Query("SELECT state FROM remex_tasks")[0][0], "1");
}

TEST(RedactUrlTest, DropsEveryFormOfPassword) {
  using internal::RedactUrl;
  EXPECT_EQ(RedactUrl("postgresql://u:s3cret@db:5432/remex"),
            "postgresql://u@db:5432/remex");
  EXPECT_EQ(RedactUrl("postgres://u:p@ss@db/remex?sslmode=require"),
            "postgres://u@db/remex?sslmode=require");
  EXPECT_EQ(RedactUrl("postgresql://db/remex?password=s3cret&user=u"),
            "postgresql://db/remex?user=u");
  EXPECT_EQ(RedactUrl("host=db password='s3 cret' user=u"), "host=db user=u");
  EXPECT_EQ(RedactUrl("host=db password = s3cret"), "host=db ");
  EXPECT_EQ(RedactUrl("postgresql://u@db/remex"), "postgresql://u@db/remex");
}

}  // namespace
}  // namespace remex::store
