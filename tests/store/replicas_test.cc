// Replicas sharing one database (design.md, "Stores"): three real
// remex-server processes on one real PostgreSQL 15, driven as clients
// would. Each test counts: every accepted task reaches exactly one terminal
// state, none runs more often than its attempts allow, and a drain cancels
// nothing.
//
// One PostgreSQL for the binary, a fresh database per test.
#include <signal.h>

#include <atomic>
#include <cstdint>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "remex/remex.h"
#include "tests/testing/postgres_test.h"
#include "tests/testing/sdk_util.h"
#include "tests/testing/server_process.h"
#include "tests/testing/server_test.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace remex::testing {
namespace {

// Small pools, so that a few tasks fill a replica and the rest wait in the
// database for whichever replica has room.
constexpr char kPoolsConfig[] = R"json({
  "pools": [
    {"name": "default", "kind": "thread", "workers": 2},
    {"name": "one", "kind": "thread", "workers": 1},
    {"name": "process", "kind": "process", "workers": 2,
     "cancel_grace": "200ms"}
  ]
})json";

// A lost replica is found within lease + 1 s.
constexpr char kLease[] = "2s";

SubmitOptions InPool(std::string pool, int32_t max_attempts = 1) {
  SubmitOptions options;
  options.pool = std::move(pool);
  options.max_attempts = max_attempts;
  return options;
}

std::string StateNumber(v1::State state) {
  return absl::StrCat(static_cast<int>(state));
}

bool IsTerminal(const std::string& state) {
  return state != StateNumber(v1::QUEUED) && state != StateNumber(v1::RUNNING);
}

// Ids accepted by any replica, from any thread.
class Accepted {
 public:
  void Add(std::string id, int32_t max_attempts) {
    absl::MutexLock lock(&mu_);
    EXPECT_TRUE(ids_.emplace(std::move(id), max_attempts).second)
        << "an id accepted twice";
  }
  std::map<std::string, int32_t> ids() const {
    absl::MutexLock lock(&mu_);
    return ids_;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, int32_t> ids_ ABSL_GUARDED_BY(mu_);
};

class ReplicasTest : public PostgresTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(PostgresTest::SetUp());
    config_ = temp_dir_.Write("config.json", kPoolsConfig);
  }

  void TearDown() override {
    if (HasFailure()) {
      for (const auto& [name, server] : replicas_) {
        if (server != nullptr) {
          std::cerr << "replica " << name << ":\n"
                    << server->ServerOutput() << "\n";
        }
      }
    }
  }

  // Starts (or restarts) replica `name` on this test's database.
  void StartReplica(const std::string& name,
                    std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "--store",          url_,   "--config",         config_,
        "--replica-name",   name,   "--replica-lease",  kLease,
        "--metrics-listen", "none", "--shutdown-grace", "1s"};
    args.insert(args.end(), extra.begin(), extra.end());
    replicas_[name] = StartServer(std::move(args));
    ASSERT_NE(replicas_[name], nullptr);
    ClientOptions options;
    options.rpc_timeout = absl::Seconds(20);
    clients_[name] =
        std::make_unique<Client>(replicas_[name]->address(), options);
  }

  Client& client(const std::string& name) { return *clients_.at(name); }
  ServerProcess& replica(const std::string& name) {
    return *replicas_.at(name);
  }
  // Forgets replica `name` (after it exited or was killed).
  void Forget(const std::string& name) {
    clients_.erase(name);
    replicas_.erase(name);
  }

  // id -> {state, attempt, replica, error_message} of every stored task.
  std::map<std::string, std::vector<std::string>> Stored() const {
    std::map<std::string, std::vector<std::string>> tasks;
    for (std::vector<std::string>& row :
         Query("SELECT id, state, attempt, coalesce(replica, ''),"
               " error_message FROM remex_tasks")) {
      tasks[row[0]] = {row[1], row[2], row[3], row[4]};
    }
    return tasks;
  }

  // Waits until every task of `accepted` is stored and every stored task
  // is terminal.
  bool WaitUntilAllEnded(const std::map<std::string, int32_t>& accepted,
                         absl::Duration timeout) {
    return WaitUntil(
        [&] {
          std::map<std::string, std::vector<std::string>> stored = Stored();
          for (const auto& [id, attempts] : accepted) {
            if (!stored.contains(id)) return false;
          }
          for (const auto& [id, row] : stored) {
            if (!IsTerminal(row[0])) return false;
          }
          return true;
        },
        timeout);
  }

  // Every accepted task has one row, terminal, that ran no more often than
  // its attempts allow; and no task is stored that was not accepted, but
  // for up to `unanswered` submits whose answer was lost (a replica killed
  // after storing the task, before answering: the caller saw an error and
  // cannot know; those rows ended too, see WaitUntilAllEnded).
  void ExpectEachEndedOnce(const std::map<std::string, int32_t>& accepted,
                           int unanswered = 0) {
    std::map<std::string, std::vector<std::string>> stored = Stored();
    EXPECT_GE(stored.size(), accepted.size());
    EXPECT_LE(stored.size(), accepted.size() + static_cast<size_t>(unanswered));
    for (const auto& [id, max_attempts] : accepted) {
      auto it = stored.find(id);
      ASSERT_NE(it, stored.end()) << id << " was accepted and is not stored";
      EXPECT_TRUE(IsTerminal(it->second[0])) << id;
      int attempt = 0;
      ASSERT_TRUE(absl::SimpleAtoi(it->second[1], &attempt));
      EXPECT_LE(attempt, max_attempts) << id << " ran too often";
    }
  }

  TempDir temp_dir_;
  std::string config_;
  std::map<std::string, std::unique_ptr<ServerProcess>> replicas_;
  std::map<std::string, std::unique_ptr<Client>> clients_;
};

// Work submitted to one replica beyond its room waits in the database and
// runs on the others; every replica answers Await, Get and List for every
// task, and higher priority runs first across replicas.
TEST_F(ReplicasTest, AnyReplicaRunsAndAnswersForAnyTask) {
  for (const char* name : {"a", "b", "c"}) StartReplica(name);
  // Every replica sees the others live before the submits, so that "a"
  // leaves what it has no room for.
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Query("SELECT count(*) FROM remex_replicas") == Rows{{"3"}};
      },
      absl::Seconds(10)));
  absl::SleepFor(absl::Milliseconds(500));  // a heartbeat round (lease / 5)

  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i) {
    absl::StatusOr<Future> future =
        client("a").TrySubmit("sleep", Json(R"({"ms": 300})"), InPool("one"));
    ASSERT_TRUE(future.ok()) << future.status();
    ids.push_back(future->id());
  }
  std::map<std::string, int> ran_on;
  for (size_t i = 0; i < ids.size(); ++i) {
    // Awaited on another replica than the one that accepted it.
    const v1::Task task = AwaitTask(client(i % 2 == 0 ? "b" : "c"), ids[i]);
    EXPECT_EQ(task.state(), v1::SUCCEEDED) << task.ShortDebugString();
    EXPECT_EQ(task.attempt(), 1);
    // If "c" ran the task, it shows the end once its own commit of it is
    // answered, and "b" may hear of that commit (NOTIFY) first: under load,
    // "c" still said RUNNING here once in 8 runs. So "c" gets a moment.
    absl::StatusOr<v1::Task> got;
    EXPECT_TRUE(WaitUntil(
        [&] {
          got = client("c").Get(ids[i]);
          return !got.ok() || got->state() == v1::SUCCEEDED;
        },
        absl::Seconds(10)));
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->state(), v1::SUCCEEDED) << got->ShortDebugString();
  }
  for (const auto& [id, row] : Stored()) ++ran_on[row[2]];
  // One worker each: 12 sleeps of 300 ms spread over the three.
  EXPECT_GE(ran_on.size(), 2u) << "all ran on one replica";
  v1::ListRequest list;
  list.set_page_size(100);
  absl::StatusOr<v1::ListResponse> listed = client("b").List(list);
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->tasks_size(), 12);

  // Priority across replicas: with every worker busy, a high-priority task
  // submitted last to "c" starts before the low-priority ones from "a".
  std::vector<std::string> blockers;
  for (const char* name : {"a", "b", "c"}) {
    absl::StatusOr<Future> blocker =
        client(name).TrySubmit("sleep", Json(R"({"ms": 800})"), InPool("one"));
    ASSERT_TRUE(blocker.ok());
    blockers.push_back(blocker->id());
  }
  std::vector<std::string> low;
  for (int i = 0; i < 9; ++i) {
    SubmitOptions options = InPool("one");
    options.priority = 0;
    absl::StatusOr<Future> future =
        client("a").TrySubmit("echo", Json(R"({"low": 1})"), options);
    ASSERT_TRUE(future.ok());
    low.push_back(future->id());
  }
  SubmitOptions urgent_options = InPool("one");
  urgent_options.priority = 10;
  absl::StatusOr<Future> urgent =
      client("c").TrySubmit("echo", Json(R"({"urgent": 1})"), urgent_options);
  ASSERT_TRUE(urgent.ok());
  const v1::Task urgent_task = AwaitTask(client("a"), urgent->id());
  int later = 0;
  for (const std::string& id : low) {
    const v1::Task task = AwaitTask(client("b"), id);
    EXPECT_EQ(task.state(), v1::SUCCEEDED);
    if (task.started_at().seconds() * 1000000000 + task.started_at().nanos() >
        urgent_task.started_at().seconds() * 1000000000 +
            urgent_task.started_at().nanos()) {
      ++later;
    }
  }
  // Those kept by "a" for its own room may go first; the rest wait behind
  // the urgent one.
  EXPECT_GE(later, 5) << "the high-priority task did not go first";
}

// A cancel sent to one replica stops a task running on another: a process
// pool task is killed there.
TEST_F(ReplicasTest, CancelThroughAnotherReplicaStopsTheTask) {
  StartReplica("a");
  const absl::StatusOr<Future> running = client("a").TrySubmit(
      "sleep", Json(R"({"ms": 60000})"), InPool("process"));
  ASSERT_TRUE(running.ok()) << running.status();
  ASSERT_TRUE(WaitUntilRunning(client("a"), running->id()));
  StartReplica("b");

  const absl::Time asked = absl::Now();
  absl::StatusOr<v1::Task> cancelled = client("b").Cancel(running->id());
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_TRUE(cancelled->cancel_requested());
  const v1::Task ended = AwaitTask(client("b"), running->id());
  EXPECT_EQ(ended.state(), v1::CANCELLED) << ended.ShortDebugString();
  EXPECT_LT(absl::Now() - asked, absl::Seconds(5));
  EXPECT_EQ(AwaitTask(client("a"), running->id()).state(), v1::CANCELLED);
  // Killed on "a": its worker was replaced after the cancel.
  EXPECT_TRUE(WaitUntil(
      [&] {
        absl::StatusOr<v1::Task> next = client("a").Get(running->id());
        return next.ok() && next->state() == v1::CANCELLED;
      },
      absl::Seconds(5)));
  const v1::Task after =
      RunTask(client("a"), "sleep", R"({"ms": 10})", InPool("process"));
  EXPECT_EQ(after.state(), v1::SUCCEEDED);

  // A queued task no replica holds ends at once when cancelled anywhere.
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Query("SELECT count(*) FROM remex_replicas") == Rows{{"2"}};
      },
      absl::Seconds(10)));
  absl::SleepFor(absl::Milliseconds(500));  // a heartbeat round
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(client("a")
                    .TrySubmit("sleep", Json(R"({"ms": 3000})"), InPool("one"))
                    .ok());
  }
  Rows unclaimed;
  ASSERT_TRUE(WaitUntil(
      [&] {
        unclaimed = Query(
            "SELECT id FROM remex_tasks WHERE state = 1 AND replica IS NULL");
        return !unclaimed.empty();
      },
      absl::Seconds(10)));
  absl::StatusOr<v1::Task> at_once = client("b").Cancel(unclaimed[0][0]);
  ASSERT_TRUE(at_once.ok()) << at_once.status();
  EXPECT_EQ(at_once->state(), v1::CANCELLED) << at_once->ShortDebugString();
  EXPECT_EQ(at_once->attempt(), 0);
  EXPECT_EQ(AwaitTask(client("a"), unclaimed[0][0]).state(), v1::CANCELLED);
}

// kill -9 one of three replicas during a mixed load of thread and process
// tasks: the others find it lost within the lease, run its running tasks
// again (attempts left) or end them WORKER_LOST, and every accepted task
// ends exactly once, none run more often than its attempts allow.
TEST_F(ReplicasTest, KillNineOneOfThreeLosesNoTask) {
  for (const char* name : {"a", "b", "c"}) StartReplica(name);
  Accepted accepted;
  std::atomic<bool> stop{false};
  std::atomic<bool> b_dead{false};
  std::atomic<int> refused{0};
  auto load = [&](const std::string& name, int seed) {
    Client& to = client(name);
    for (int i = 0; !stop.load() && i < 400; ++i) {
      if (name == "b" && b_dead.load()) return;
      const int kind = (seed + i) % 4;
      const int32_t attempts = 1 + (i % 3);
      absl::StatusOr<Future> future =
          kind == 0   ? to.TrySubmit("echo", Json(R"({"x": 1})"),
                                     InPool("default", attempts))
          : kind == 1 ? to.TrySubmit("sleep", Json(R"({"ms": 150})"),
                                     InPool("default", attempts))
          : kind == 2 ? to.TrySubmit("sleep", Json(R"({"ms": 400})"),
                                     InPool("process", attempts))
                      : to.TrySubmit("sleep", Json(R"({"ms": 1500})"),
                                     InPool("process", attempts));
      if (future.ok()) {
        accepted.Add(future->id(), attempts);
      } else {
        // A submit to "b" as it dies may fail: then it was not accepted,
        // though "b" may have stored it before it died.
        ++refused;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  };
  std::vector<std::thread> loaders;
  loaders.emplace_back(load, "a", 0);
  loaders.emplace_back(load, "b", 1);
  loaders.emplace_back(load, "c", 2);
  // Until "b" runs process tasks.
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Query(
                   "SELECT count(*) FROM remex_tasks WHERE replica = 'b' "
                   "AND state = 2 AND pool = 'process'") != Rows{{"0"}};
      },
      absl::Seconds(20)));
  absl::SleepFor(absl::Milliseconds(500));
  b_dead = true;
  ASSERT_EQ(replica("b").Signal(SIGKILL), 0);
  (void)replica("b").Wait(absl::Seconds(10));
  absl::SleepFor(absl::Seconds(2));
  stop = true;
  for (std::thread& loader : loaders) loader.join();

  const std::map<std::string, int32_t> ids = accepted.ids();
  ASSERT_GT(ids.size(), 50u);
  ASSERT_TRUE(WaitUntilAllEnded(ids, absl::Seconds(60)));
  ExpectEachEndedOnce(ids, refused.load());
  // The kill mattered: "b"'s running tasks were found lost.
  int lost = 0;
  int retried = 0;
  for (const auto& [id, row] : Stored()) {
    if (absl::StrContains(row[3], "replica b was lost")) ++lost;
    if (row[1] != "1" && row[1] != "0") ++retried;
    EXPECT_NE(row[0], StateNumber(v1::CANCELLED)) << id;
  }
  EXPECT_GT(lost + retried, 0) << "no task of the killed replica was seen";
  std::cout << ids.size() << " tasks accepted (" << refused.load()
            << " refused), " << lost << " ended WORKER_LOST with replica b, "
            << retried << " ran more than once\n";
  // Awaits answer on the survivors, for tasks of every replica.
  for (const auto& [id, attempts] : ids) {
    const v1::Task task = AwaitTask(client("c"), id, absl::Seconds(5));
    EXPECT_TRUE(task.state() == v1::SUCCEEDED ||
                task.state() == v1::WORKER_LOST)
        << task.ShortDebugString();
  }
  EXPECT_EQ(Query("SELECT name FROM remex_replicas ORDER BY name"),
            (Rows{{"a"}, {"c"}}));
}

// SIGTERM a replica that holds queued work: all of it completes on the
// others, none cancelled; then a rolling update of the three under load
// completes every task.
TEST_F(ReplicasTest, DrainsAndARollingUpdateLoseNothing) {
  StartReplica("a");
  Accepted accepted;
  // Alone, "a" keeps everything it accepts.
  absl::StatusOr<Future> outlives =
      client("a").TrySubmit("sleep", Json(R"({"ms": 3000})"), InPool("one", 2));
  ASSERT_TRUE(outlives.ok());
  accepted.Add(outlives->id(), 2);
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<Future> future = client("a").TrySubmit(
        "echo", Json(absl::StrCat("{\"held\": ", i, "}")), InPool("one"));
    ASSERT_TRUE(future.ok());
    accepted.Add(future->id(), 1);
  }
  EXPECT_EQ(Query("SELECT count(*) FROM remex_tasks WHERE replica = 'a' AND "
                  "state = 1"),
            Rows{{"20"}});
  StartReplica("b");
  StartReplica("c");
  ASSERT_EQ(replica("a").Signal(SIGTERM), 0);
  absl::StatusOr<int> exit_code = replica("a").Wait(absl::Seconds(20));
  ASSERT_TRUE(exit_code.ok());
  EXPECT_EQ(*exit_code, 0);
  Forget("a");
  ASSERT_TRUE(WaitUntilAllEnded(accepted.ids(), absl::Seconds(30)));
  for (const auto& [id, attempts] : accepted.ids()) {
    const v1::Task task = AwaitTask(client("b"), id, absl::Seconds(5));
    EXPECT_EQ(task.state(), v1::SUCCEEDED) << task.ShortDebugString();
  }
  EXPECT_EQ(AwaitTask(client("c"), outlives->id()).attempt(), 2);
  // "a" left the replicas when it stopped: nothing waits for its lease.
  EXPECT_EQ(Query("SELECT count(*) FROM remex_replicas WHERE name = 'a'"),
            Rows{{"0"}});

  // Rolling update: a, b, c replaced one at a time while clients submit
  // to whichever replicas are up.
  StartReplica("a");
  std::atomic<bool> stop{false};
  absl::Mutex live_mu;
  std::set<std::string> live = {"a", "b", "c"};
  std::map<std::string, std::string> addresses;
  for (const char* name : {"a", "b", "c"}) {
    addresses[name] = replica(name).address();
  }
  std::thread loader([&] {
    int i = 0;
    while (!stop.load()) {
      std::string name;
      std::string address;
      {
        absl::MutexLock lock(&live_mu);
        auto it = live.begin();
        std::advance(it, i % live.size());
        name = *it;
        address = addresses[name];
      }
      Client to(address);
      absl::StatusOr<Future> future =
          to.TrySubmit("sleep", Json(R"({"ms": 100})"), InPool("default", 2));
      if (future.ok()) accepted.Add(future->id(), 2);
      ++i;
      absl::SleepFor(absl::Milliseconds(10));
    }
  });
  for (const char* name : {"a", "b", "c"}) {
    {
      absl::MutexLock lock(&live_mu);
      live.erase(name);
    }
    ASSERT_EQ(replica(name).Signal(SIGTERM), 0);
    absl::StatusOr<int> code = replica(name).Wait(absl::Seconds(20));
    ASSERT_TRUE(code.ok());
    EXPECT_EQ(*code, 0);
    Forget(name);
    StartReplica(name);
    absl::MutexLock lock(&live_mu);
    addresses[name] = replica(name).address();
    live.insert(name);
  }
  stop = true;
  loader.join();
  const std::map<std::string, int32_t> ids = accepted.ids();
  ASSERT_TRUE(WaitUntilAllEnded(ids, absl::Seconds(60)));
  ExpectEachEndedOnce(ids);
  for (const auto& [id, row] : Stored()) {
    EXPECT_EQ(row[0], StateNumber(v1::SUCCEEDED))
        << id << " " << row[3] << " (a drain must cancel nothing)";
  }
}

// An outage of the database longer than the lease makes every heartbeat
// old: when it is back, no replica takes the others for lost (each waits a
// lease of its own heartbeats first), so nothing runs twice.
TEST_F(ReplicasTest, AnOutageLongerThanTheLeaseLosesNoReplica) {
  StartReplica("a");
  StartReplica("b");
  const absl::StatusOr<Future> running = client("a").TrySubmit(
      "sleep", Json(R"({"ms": 5000})"), InPool("process", 2));
  ASSERT_TRUE(running.ok()) << running.status();
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Query(absl::StrCat("SELECT state FROM remex_tasks WHERE id = '",
                                  running->id(), "'")) == Rows{{"2"}};
      },
      absl::Seconds(10)));
  ASSERT_TRUE(postgres_->Stop().ok());
  absl::SleepFor(absl::Seconds(4));  // twice the lease
  ASSERT_TRUE(postgres_->Restart().ok());
  const v1::Task ended = AwaitTask(client("b"), running->id());
  EXPECT_EQ(ended.state(), v1::SUCCEEDED) << ended.ShortDebugString();
  EXPECT_EQ(ended.attempt(), 1)
      << "run again: a live replica was taken for lost";
  absl::SleepFor(absl::Seconds(3));  // past a lease of heartbeats
  for (const char* name : {"a", "b"}) {
    EXPECT_FALSE(absl::StrContains(replica(name).ServerOutput(), "lost ("))
        << replica(name).ServerOutput();
  }
  EXPECT_EQ(Query("SELECT name FROM remex_replicas ORDER BY name"),
            (Rows{{"a"}, {"b"}}));
}

}  // namespace
}  // namespace remex::testing
