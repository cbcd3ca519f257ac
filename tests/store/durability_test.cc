// The durable store at server level: the real remex-server against a real
// PostgreSQL 15 (tests/testing/postgres_server.h), driven as a client would,
// through kill -9, a database that is down or hangs, refused starts and
// SIGTERM. Each test counts: every accepted task reaches exactly one
// terminal state, no refused submit leaves a row, and no caller hears of an
// end before it is committed.
//
// One PostgreSQL for the binary (initdb takes seconds), a fresh database per
// test.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
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

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "health.grpc.pb.h"
#include "remex/remex.h"
#include "remex/v1/executor.grpc.pb.h"
#include "tests/monitoring/http_get.h"
#include "tests/testing/free_port.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/postgres_test.h"
#include "tests/testing/proc.h"
#include "tests/testing/sdk_util.h"
#include "tests/testing/server_process.h"
#include "tests/testing/server_test.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace remex::testing {
namespace {

// remex.v1.State as the store keeps it (remex_tasks.state).
std::string StateNumber(v1::State state) {
  return absl::StrCat(static_cast<int>(state));
}

// A row of StoredTasks() for a task in `state` at `attempt`, not cancelled.
std::vector<std::string> StoredRow(v1::State state, int attempt) {
  return {StateNumber(state), absl::StrCat(attempt), "f"};
}

bool IsTerminalState(v1::State state) {
  return state != v1::STATE_UNSPECIFIED && state != v1::QUEUED &&
         state != v1::RUNNING;
}

// A pool of each kind for the durable path: "default" (threads), "one" (a
// single thread: a task there keeps the next ones queued) and "process".
constexpr char kPoolsConfig[] = R"json({
  "pools": [
    {"name": "default", "kind": "thread", "workers": 4},
    {"name": "one", "kind": "thread", "workers": 1},
    {"name": "process", "kind": "process", "workers": 2}
  ]
})json";

SubmitOptions InPool(std::string pool, int32_t max_attempts = 1) {
  SubmitOptions options;
  options.pool = std::move(pool);
  options.max_attempts = max_attempts;
  return options;
}

// A 127.0.0.1 port nothing listens on (bound, then closed: nobody else
// takes it in the moment the test uses it, as the kernel hands out ports
// in turn).
int ClosedPort() {
  absl::StatusOr<int> port = FreeLoopbackPort();
  EXPECT_TRUE(port.ok()) << port.status();
  return port.value_or(1);
}

// The non-empty lines of `text`.
std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipWhitespace());
}

class DurabilityTest : public PostgresTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(PostgresTest::SetUp());
    config_ = temp_dir_.Write("config.json", kPoolsConfig);
  }

  void TearDown() override {
    if (HasFailure() && postgres_ != nullptr) {
      std::cerr << "PostgreSQL log:\n" << postgres_->Log() << "\n";
    }
  }

  // A server on this test's database (with /metrics if `metrics`); null
  // (and a failed test) if it does not start.
  std::unique_ptr<ServerProcess> StartDurableServer(
      std::vector<std::string> extra = {}, bool metrics = false) {
    std::vector<std::string> args = {"--store", url_, "--config", config_};
    if (!metrics) args.insert(args.end(), {"--metrics-listen", "none"});
    args.insert(args.end(), extra.begin(), extra.end());
    return StartServer(std::move(args));
  }

  // id -> {state, attempt, cancel_requested} of every stored task.
  std::map<std::string, std::vector<std::string>> StoredTasks() const {
    std::map<std::string, std::vector<std::string>> tasks;
    for (std::vector<std::string>& row : Query(
             "SELECT id, state, attempt, cancel_requested FROM remex_tasks")) {
      const std::string id = row[0];
      EXPECT_FALSE(tasks.contains(id)) << "two rows for " << id;
      tasks[id] = {row[1], row[2], row[3]};
    }
    return tasks;
  }

  // Waits until the stored state of each of `ids` is `state`.
  bool WaitUntilStored(const std::vector<std::string>& ids, v1::State state) {
    return WaitUntil(
        [&] {
          std::map<std::string, std::vector<std::string>> stored =
              StoredTasks();
          for (const std::string& id : ids) {
            auto it = stored.find(id);
            if (it == stored.end() || it->second[0] != StateNumber(state)) {
              return false;
            }
          }
          return true;
        },
        absl::Seconds(10));
  }

  TempDir temp_dir_;
  std::string config_;
};

// Every task the server shows, paging through List.
std::vector<v1::Task> ListAll(Client& client) {
  std::vector<v1::Task> tasks;
  v1::ListRequest request;
  request.set_page_size(1000);
  for (int page = 0; page < 1000; ++page) {
    absl::StatusOr<v1::ListResponse> response = client.List(request);
    EXPECT_TRUE(response.ok()) << response.status();
    if (!response.ok()) break;
    tasks.insert(tasks.end(), response->tasks().begin(),
                 response->tasks().end());
    if (response->next_page_token().empty()) break;
    request.set_page_token(response->next_page_token());
  }
  return tasks;
}

// Submits `function(args)`; the id, or a failed test and "".
std::string MustSubmit(Client& client, const std::string& function,
                       std::string_view args, const SubmitOptions& options) {
  absl::StatusOr<Future> future =
      client.TrySubmit(function, Json(args), options);
  EXPECT_TRUE(future.ok()) << future.status();
  return future.ok() ? future->id() : "";
}

// kill -9 with tasks finished, running (thread and process pools, attempts
// left and spent) and queued: a new server on the same database answers for
// the finished ones, runs the queued ones, re-runs the running ones that
// have attempts left and ends the others WORKER_LOST.
TEST_F(DurabilityTest, KillNineLosesNoTask) {
  std::unique_ptr<ServerProcess> server = StartDurableServer();
  ASSERT_NE(server, nullptr);
  ClientOptions client_options;
  client_options.rpc_timeout = absl::Seconds(10);
  auto client = std::make_unique<Client>(server->address(), client_options);

  std::vector<v1::Task> finished;
  for (int i = 0; i < 3; ++i) {
    finished.push_back(RunTask(
        *client, "echo", absl::StrCat("{\"i\": ", i, "}"), InPool("default")));
    ASSERT_EQ(finished.back().state(), v1::SUCCEEDED);
  }
  // Running when killed, with an attempt left: run again after the
  // restart. Short, since they run in full twice; "one" first, so that the
  // queued ones wait behind it.
  const std::vector<std::string> rerun = {
      MustSubmit(*client, "sleep", R"({"ms": 3000})", InPool("one", 2)),
      MustSubmit(*client, "sleep", R"({"ms": 3000})", InPool("process", 2)),
  };
  // Running when killed, attempts spent: WORKER_LOST.
  const std::vector<std::string> lost = {
      MustSubmit(*client, "sleep", R"({"ms": 60000})", InPool("default", 1)),
      MustSubmit(*client, "sleep", R"({"ms": 60000})", InPool("process", 1)),
  };
  std::vector<std::string> queued;
  for (int i = 0; i < 3; ++i) {
    queued.push_back(MustSubmit(*client, "echo",
                                absl::StrCat("{\"queued\": ", i, "}"),
                                InPool("one", 1)));
  }
  std::vector<std::string> running = rerun;
  running.insert(running.end(), lost.begin(), lost.end());
  // Committed RUNNING, not just running in memory: a start that was not
  // committed is rightly run again as attempt 1.
  ASSERT_TRUE(WaitUntilStored(running, v1::RUNNING)) << server->ServerOutput();
  ASSERT_TRUE(WaitUntilStored(queued, v1::QUEUED));
  std::vector<std::string> accepted = running;
  accepted.insert(accepted.end(), queued.begin(), queued.end());
  for (const v1::Task& task : finished) accepted.push_back(task.id());

  // A parked Await hears that its server died instead of hanging.
  absl::StatusOr<v1::Task> parked_answer;
  absl::Time parked_answered;
  std::thread parked([&] {
    parked_answer = client->Await(queued.back(), absl::Seconds(30));
    parked_answered = absl::Now();
  });
  const absl::Time killed = absl::Now();
  ASSERT_EQ(server->Signal(SIGKILL), 0);
  absl::StatusOr<int> exit_code = server->Wait(absl::Seconds(10));
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 128 + SIGKILL);
  parked.join();
  EXPECT_FALSE(parked_answer.ok()) << parked_answer->DebugString();
  EXPECT_LT(parked_answered - killed, absl::Seconds(5));
  client.reset();

  // Nothing accepted is lost: every task has its row, unfinished or not.
  std::map<std::string, std::vector<std::string>> stored = StoredTasks();
  EXPECT_EQ(stored.size(), accepted.size());
  for (const std::string& id : accepted) EXPECT_TRUE(stored.contains(id)) << id;
  // As they stood when the server died (a re-run one that had ended would
  // make the checks below fail for another reason than a bug).
  for (const std::string& id : running) {
    EXPECT_EQ(stored[id], StoredRow(v1::RUNNING, 1)) << id;
  }
  for (const std::string& id : queued) {
    EXPECT_EQ(stored[id], StoredRow(v1::QUEUED, 0)) << id;
  }

  server = StartDurableServer();
  ASSERT_NE(server, nullptr);
  client = std::make_unique<Client>(server->address(), client_options);

  // The finished ones are answered from the store as they were.
  for (const v1::Task& before : finished) {
    absl::StatusOr<v1::Task> after = client->Get(before.id());
    ASSERT_TRUE(after.ok()) << after.status();
    EXPECT_EQ(after->state(), v1::SUCCEEDED);
    EXPECT_EQ(after->attempt(), 1);
    EXPECT_EQ(after->result().DebugString(), before.result().DebugString());
    // To the microsecond, as the store keeps it.
    EXPECT_EQ(after->finished_at().seconds(), before.finished_at().seconds());
    EXPECT_EQ(after->finished_at().nanos() / 1000,
              before.finished_at().nanos() / 1000);
  }
  // Await works across the restart, on every unfinished one.
  std::map<std::string, v1::Task> ended;
  for (const std::string& id : running) {
    ended[id] = AwaitTask(*client, id, absl::Seconds(20));
  }
  for (const std::string& id : queued) {
    ended[id] = AwaitTask(*client, id, absl::Seconds(20));
  }
  for (const std::string& id : rerun) {
    EXPECT_EQ(ended[id].state(), v1::SUCCEEDED) << ended[id].DebugString();
    EXPECT_EQ(ended[id].attempt(), 2) << ended[id].DebugString();
    EXPECT_EQ(ended[id]
                  .result()
                  .struct_value()
                  .fields()
                  .at("slept_ms")
                  .number_value(),
              3000);
  }
  for (const std::string& id : lost) {
    EXPECT_EQ(ended[id].state(), v1::WORKER_LOST) << ended[id].DebugString();
    EXPECT_EQ(ended[id].attempt(), 1) << ended[id].DebugString();
  }
  for (const std::string& id : queued) {
    EXPECT_EQ(ended[id].state(), v1::SUCCEEDED) << ended[id].DebugString();
    EXPECT_EQ(ended[id].attempt(), 1) << ended[id].DebugString();
  }

  // Exactly one terminal state each: List shows every accepted task once,
  // ended as Await said, and so does the database.
  std::map<std::string, v1::State> listed;
  std::map<std::string, std::string> listed_results;
  for (const v1::Task& task : ListAll(*client)) {
    EXPECT_FALSE(listed.contains(task.id())) << "listed twice: " << task.id();
    listed[task.id()] = task.state();
    listed_results[task.id()] = task.result().DebugString();
  }
  EXPECT_EQ(listed.size(), accepted.size());
  for (const v1::Task& before : finished) {
    EXPECT_EQ(listed_results[before.id()], before.result().DebugString());
  }
  stored = StoredTasks();
  EXPECT_EQ(stored.size(), accepted.size());
  for (const std::string& id : accepted) {
    ASSERT_TRUE(listed.contains(id)) << id;
    EXPECT_TRUE(IsTerminalState(listed[id])) << id;
    ASSERT_TRUE(stored.contains(id)) << id;
    EXPECT_EQ(stored[id][0], StateNumber(listed[id])) << id;
    if (ended.contains(id)) {
      EXPECT_EQ(listed[id], ended[id].state()) << id;
    }
  }

  client.reset();
  ASSERT_EQ(server->Signal(SIGTERM), 0);
  exit_code = server->Wait(absl::Seconds(15));
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 0) << server->ServerOutput();
}

// What one submit got, for the outage test's accounting.
struct SubmitRecord {
  int64_t seq = 0;
  absl::Status status;
  std::string id;
  absl::Duration latency;
  bool after_restart = false;
  int submitter = 0;  // which thread
};

// Stops PostgreSQL for 5 s under a steady load of submits (unary calls and
// a Session): the submits in the outage fail with UNAVAILABLE at once, the
// calls that need no database go on answering promptly, submits succeed
// again once it is back, and every accepted task ends exactly once while
// no refused one is stored.
TEST_F(DurabilityTest, DatabaseOutageUnderLoad) {
  std::unique_ptr<ServerProcess> server = StartDurableServer();
  ASSERT_NE(server, nullptr);
  const std::string address = server->address();

  absl::Mutex mu;
  std::vector<SubmitRecord> records;  // Guarded by mu.
  std::atomic<int64_t> next_seq{0};
  std::atomic<bool> restarted{false};
  absl::Notification stop;
  auto submitter = [&](int index, bool use_session) {
    ClientOptions options;
    options.rpc_timeout = absl::Seconds(10);
    options.use_session = use_session;
    Client client(address, options);
    while (!stop.HasBeenNotified()) {
      SubmitRecord record;
      record.seq = next_seq.fetch_add(1);
      record.after_restart = restarted.load();
      record.submitter = index;
      SubmitOptions submit;
      submit.labels["seq"] = absl::StrCat(record.seq);
      const absl::Time start = absl::Now();
      absl::StatusOr<Future> future =
          client.TrySubmit("sleep", Json(R"({"ms": 100})"), submit);
      record.latency = absl::Now() - start;
      record.status = future.status();
      if (future.ok()) record.id = future->id();
      {
        absl::MutexLock lock(&mu);
        records.push_back(std::move(record));
      }
      // Paces the load (about 100 submits a second per thread).
      stop.WaitForNotificationWithTimeout(absl::Milliseconds(10));
    }
  };
  auto count = [&](auto&& predicate) {
    absl::MutexLock lock(&mu);
    int64_t n = 0;
    for (const SubmitRecord& record : records) n += predicate(record) ? 1 : 0;
    return n;
  };
  std::vector<std::thread> threads;
  threads.emplace_back(submitter, 0, false);
  threads.emplace_back(submitter, 1, false);
  threads.emplace_back(submitter, 2, true);  // a Session

  // Calls that need no database, on their own channel.
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  auto executor = v1::Executor::NewStub(channel);
  ClientOptions reader_options;
  reader_options.rpc_timeout = absl::Seconds(10);
  reader_options.use_session = false;
  Client reader(address, reader_options);

  EXPECT_TRUE(WaitUntil(
      [&] { return count([](auto& r) { return r.status.ok(); }) >= 30; },
      absl::Seconds(10)));
  // The first accepted: ended soon, while the later ones still queue, so
  // that the outage comes with tasks running and queued.
  std::string retained_id;
  {
    absl::MutexLock lock(&mu);
    for (const SubmitRecord& record : records) {
      if (!record.status.ok()) continue;
      retained_id = record.id;
      break;
    }
  }
  ASSERT_FALSE(retained_id.empty());
  ASSERT_EQ(AwaitTask(reader, retained_id).state(), v1::SUCCEEDED);

  ASSERT_TRUE(postgres_->Stop().ok());
  const absl::Time outage_start = absl::Now();
  absl::Duration slowest_health, slowest_functions, slowest_get;
  int probes = 0;
  // Probes the server through the outage (the probes pace the loop).
  absl::Notification never;
  while (absl::Now() - outage_start < absl::Seconds(5)) {
    ++probes;
    {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
      grpc::health::v1::HealthCheckResponse response;
      const absl::Time start = absl::Now();
      const grpc::Status status = health->Check(
          &context, grpc::health::v1::HealthCheckRequest(), &response);
      slowest_health = std::max(slowest_health, absl::Now() - start);
      EXPECT_TRUE(status.ok()) << status.error_message();
    }
    {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
      v1::ListFunctionsResponse response;
      const absl::Time start = absl::Now();
      const grpc::Status status = executor->ListFunctions(
          &context, v1::ListFunctionsRequest(), &response);
      slowest_functions = std::max(slowest_functions, absl::Now() - start);
      EXPECT_TRUE(status.ok()) << status.error_message();
      EXPECT_GT(response.functions_size(), 0);
    }
    {
      // A task this server holds is answered from its memory.
      const absl::Time start = absl::Now();
      absl::StatusOr<v1::Task> task = reader.Get(retained_id);
      slowest_get = std::max(slowest_get, absl::Now() - start);
      EXPECT_TRUE(task.ok()) << task.status();
    }
    never.WaitForNotificationWithTimeout(absl::Milliseconds(100));
  }
  EXPECT_GE(probes, 5);
  EXPECT_LT(slowest_health, absl::Seconds(1));
  EXPECT_LT(slowest_functions, absl::Seconds(1));
  EXPECT_LT(slowest_get, absl::Seconds(1));
  const int64_t refused_in_outage =
      count([](auto& r) { return !r.status.ok(); });
  EXPECT_GT(refused_in_outage, 0) << "no submit was refused in the outage";

  ASSERT_TRUE(postgres_->Restart().ok());
  restarted = true;
  // Back within the writer's backoff (2 s at most) and a reconnect, for
  // every submitter (the Session's stream outlived the refusals).
  EXPECT_TRUE(WaitUntil(
      [&] {
        for (int index = 0; index < 3; ++index) {
          if (count([index](auto& r) {
                return r.submitter == index && r.after_restart && r.status.ok();
              }) < 10) {
            return false;
          }
        }
        return true;
      },
      absl::Seconds(15)))
      << server->ServerOutput();
  stop.Notify();
  for (std::thread& thread : threads) thread.join();

  std::vector<SubmitRecord> all;
  {
    absl::MutexLock lock(&mu);
    all = records;
  }
  std::map<std::string, int64_t> accepted;  // id -> seq
  std::set<int64_t> accepted_seqs;
  absl::Duration slowest_submit;
  int64_t refused = 0;
  for (const SubmitRecord& record : all) {
    slowest_submit = std::max(slowest_submit, record.latency);
    if (record.status.ok()) {
      EXPECT_FALSE(accepted.contains(record.id)) << "id given twice";
      accepted[record.id] = record.seq;
      accepted_seqs.insert(record.seq);
      continue;
    }
    ++refused;
    EXPECT_EQ(record.status.code(), absl::StatusCode::kUnavailable)
        << record.status;
    EXPECT_TRUE(absl::StrContains(record.status.message(), "store"))
        << record.status;
  }
  if (refused > 0) {
    for (const SubmitRecord& record : all) {
      if (record.status.ok()) continue;
      std::cerr << "first refusal: " << record.status << "\n";
      break;
    }
  }
  // A refusal comes at once: the store refuses while it cannot commit.
  EXPECT_LT(slowest_submit, absl::Seconds(5));
  std::cerr << all.size() << " submits, " << accepted.size() << " accepted, "
            << refused << " refused; slowest submit "
            << absl::FormatDuration(slowest_submit) << ", health "
            << absl::FormatDuration(slowest_health) << ", ListFunctions "
            << absl::FormatDuration(slowest_functions) << ", Get "
            << absl::FormatDuration(slowest_get) << "\n";

  // Every accepted task ends, SUCCEEDED (they are 100 ms sleeps: some
  // were running or queued through the outage).
  const absl::Time await_deadline = absl::Now() + absl::Seconds(30);
  for (const auto& [id, seq] : accepted) {
    ASSERT_LT(absl::Now(), await_deadline) << "awaiting took too long";
    const v1::Task task = AwaitTask(reader, id, absl::Seconds(10));
    EXPECT_EQ(task.state(), v1::SUCCEEDED) << id << " " << task.DebugString();
  }
  // The database holds exactly the accepted tasks, each once and ended:
  // no refused submit left a row.
  const Rows rows = Query(
      "SELECT t.id, t.state, i.labels->>'seq' FROM remex_tasks t"
      " JOIN remex_task_inputs i ON i.id = t.id");
  std::set<std::string> stored_ids;
  std::set<int64_t> stored_seqs;
  for (const std::vector<std::string>& row : rows) {
    EXPECT_TRUE(stored_ids.insert(row[0]).second) << "two rows for " << row[0];
    EXPECT_TRUE(accepted.contains(row[0])) << "a refused task is stored";
    EXPECT_EQ(row[1], StateNumber(v1::SUCCEEDED)) << row[0];
    int64_t seq = -1;
    EXPECT_TRUE(absl::SimpleAtoi(row[2], &seq)) << row[2];
    stored_seqs.insert(seq);
  }
  EXPECT_EQ(stored_ids.size(), accepted.size());
  EXPECT_EQ(stored_seqs, accepted_seqs);
  // A few refused ones, by label: not there.
  int checked = 0;
  for (const SubmitRecord& record : all) {
    if (record.status.ok() || checked >= 5) continue;
    ++checked;
    EXPECT_TRUE(Query(absl::StrCat("SELECT id FROM remex_task_inputs"
                                   " WHERE labels->>'seq' = '",
                                   record.seq, "'"))
                    .empty());
  }

  ASSERT_EQ(server->Signal(SIGTERM), 0);
  absl::StatusOr<int> exit_code = server->Wait(absl::Seconds(15));
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 0) << server->ServerOutput();
}

// A database nobody listens for: exit 1 and one line naming the store,
// without the password of its URL.
TEST_F(DurabilityTest, UnreachableDatabaseStopsTheStart) {
  const int port = ClosedPort();
  const std::string url =
      absl::StrCat("postgresql://remex:pw-s3cret-9@127.0.0.1:", port, "/remex");
  const ProcessResult result = RunServerExpectingExit(
      {"--listen", "127.0.0.1:0", "--metrics-listen", "none", "--store", url},
      absl::Seconds(20));
  EXPECT_EQ(result.exit_code, 1) << result.err;
  const std::vector<std::string> lines = Lines(result.err);
  ASSERT_EQ(lines.size(), 1u) << result.err;
  EXPECT_TRUE(absl::StrContains(lines[0], absl::StrCat("127.0.0.1:", port)))
      << lines[0];
  EXPECT_FALSE(absl::StrContains(result.err, "pw-s3cret-9")) << result.err;
  EXPECT_FALSE(absl::StrContains(result.out, "pw-s3cret-9")) << result.out;
  EXPECT_FALSE(absl::StrContains(result.out, "listening on")) << result.out;
}

// A server that owns its server process on its own thread until Stop():
// servers tie their life to the thread that started them (pdeathsig), and
// starting two at once takes two threads.
class ServerOnThread {
 public:
  explicit ServerOnThread(std::vector<std::string> args)
      : thread_([this, args = std::move(args)]() mutable {
          absl::StatusOr<std::unique_ptr<ServerProcess>> server =
              ServerProcess::Start(std::move(args));
          {
            absl::MutexLock lock(&mu_);
            start_ = server.status();
            if (server.ok()) output_ = &**server;
          }
          started_.Notify();
          stop_.WaitForNotification();
          if (!server.ok()) return;
          (*server)->Signal(SIGTERM);
          absl::StatusOr<int> exit_code = (*server)->Wait(absl::Seconds(15));
          absl::MutexLock lock(&mu_);
          exit_code_ = exit_code;
          log_ = (*server)->ServerOutput();
          output_ = nullptr;
        }) {}
  ~ServerOnThread() { Join(); }

  // Whether it started (waits for the start).
  absl::Status WaitStarted() {
    started_.WaitForNotification();
    absl::MutexLock lock(&mu_);
    return start_;
  }
  // SIGTERM; its exit code once it has exited.
  absl::StatusOr<int> Stop() {
    Join();
    absl::MutexLock lock(&mu_);
    return exit_code_;
  }
  std::string log() {
    absl::MutexLock lock(&mu_);
    return output_ != nullptr ? output_->ServerOutput() : log_;
  }

 private:
  void Join() {
    if (!thread_.joinable()) return;
    stop_.Notify();
    thread_.join();
  }

  absl::Mutex mu_;
  absl::Status start_ ABSL_GUARDED_BY(mu_);
  absl::StatusOr<int> exit_code_ ABSL_GUARDED_BY(mu_) =
      absl::UnknownError("not stopped");
  const ServerProcess* output_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::string log_ ABSL_GUARDED_BY(mu_);
  absl::Notification started_;
  absl::Notification stop_;
  std::thread thread_;  // Last: it uses the members above.
};

// Two servers started together on a fresh database both start (one
// migrates under the advisory lock, the other waits for it); a schema newer
// than the server knows then stops the next start with one line.
TEST_F(DurabilityTest, MigrationsRunOnceAndANewerSchemaIsRefused) {
  const std::vector<std::string> args = {
      "--store", url_, "--config", config_, "--metrics-listen", "none"};
  {
    ServerOnThread first(args);
    ServerOnThread second(args);
    const absl::Status first_started = first.WaitStarted();
    const absl::Status second_started = second.WaitStarted();
    EXPECT_TRUE(first_started.ok()) << first_started;
    EXPECT_TRUE(second_started.ok()) << second_started;
    const absl::StatusOr<int> first_exit = first.Stop();
    const absl::StatusOr<int> second_exit = second.Stop();
    EXPECT_TRUE(first_exit.ok() && *first_exit == 0) << first.log();
    EXPECT_TRUE(second_exit.ok() && *second_exit == 0) << second.log();
  }
  const Rows version = Query("SELECT version FROM remex_schema");
  ASSERT_EQ(version.size(), 1u);
  int known = 0;
  ASSERT_TRUE(absl::SimpleAtoi(version[0][0], &known));
  EXPECT_GE(known, 1);

  Query("UPDATE remex_schema SET version = version + 1");
  const ProcessResult result = RunServerExpectingExit(
      {"--listen", "127.0.0.1:0", "--metrics-listen", "none", "--store", url_},
      absl::Seconds(20));
  EXPECT_EQ(result.exit_code, 1) << result.err;
  const std::vector<std::string> lines = Lines(result.err);
  ASSERT_EQ(lines.size(), 1u) << result.err;
  EXPECT_TRUE(absl::StrContains(lines[0], absl::StrCat("version ", known + 1)))
      << lines[0];
  EXPECT_TRUE(absl::StrContains(lines[0], "newer")) << lines[0];
  // Refused, not downgraded.
  EXPECT_EQ(Query("SELECT version FROM remex_schema"),
            Rows({{absl::StrCat(known + 1)}}));
}

// SIGTERM hands the queued tasks back: the server exits 0 leaving them
// QUEUED (not cancelled) in the database, for any replica, and the next
// server runs them. A running task ends within the grace as usual; those
// that outlive it are stopped and handed back QUEUED when attempts are
// left (the next server runs them again), or end WORKER_LOST.
TEST_F(DurabilityTest, SigtermHandsQueuedTasksBack) {
  std::unique_ptr<ServerProcess> server =
      StartDurableServer({"--shutdown-grace", "2s"});
  ASSERT_NE(server, nullptr);
  ClientOptions client_options;
  client_options.rpc_timeout = absl::Seconds(10);
  auto client = std::make_unique<Client>(server->address(), client_options);

  const std::string ends_in_grace =
      MustSubmit(*client, "sleep", R"({"ms": 1200})", InPool("default"));
  // Outlive the grace: "one"'s keeps the queued ones waiting.
  const std::string outlives_retried =
      MustSubmit(*client, "sleep", R"({"ms": 4000})", InPool("one", 2));
  const std::string outlives_lost =
      MustSubmit(*client, "sleep", R"({"ms": 4000})", InPool("process", 1));
  ASSERT_TRUE(WaitUntilStored({ends_in_grace, outlives_retried, outlives_lost},
                              v1::RUNNING));
  std::vector<std::string> queued;
  for (int i = 0; i < 4; ++i) {
    queued.push_back(MustSubmit(*client, "echo",
                                absl::StrCat("{\"handed_back\": ", i, "}"),
                                InPool("one")));
  }
  for (const std::string& id : queued) {
    absl::StatusOr<v1::Task> task = client->Get(id);
    ASSERT_TRUE(task.ok()) << task.status();
    ASSERT_EQ(task->state(), v1::QUEUED);
  }
  client.reset();

  ASSERT_EQ(server->Signal(SIGTERM), 0);
  absl::StatusOr<int> exit_code = server->Wait(absl::Seconds(20));
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 0) << server->ServerOutput();

  std::map<std::string, std::vector<std::string>> stored = StoredTasks();
  EXPECT_EQ(stored.size(), queued.size() + 3);
  ASSERT_TRUE(stored.contains(ends_in_grace));
  EXPECT_EQ(stored[ends_in_grace][0], StateNumber(v1::SUCCEEDED));
  ASSERT_TRUE(stored.contains(outlives_retried));
  EXPECT_EQ(stored[outlives_retried], StoredRow(v1::QUEUED, 1));
  ASSERT_TRUE(stored.contains(outlives_lost));
  EXPECT_EQ(stored[outlives_lost], StoredRow(v1::WORKER_LOST, 1));
  for (const std::string& id : queued) {
    ASSERT_TRUE(stored.contains(id)) << id;
    EXPECT_EQ(stored[id], StoredRow(v1::QUEUED, 0)) << id;
  }

  server = StartDurableServer();
  ASSERT_NE(server, nullptr);
  client = std::make_unique<Client>(server->address(), client_options);
  for (const std::string& id : queued) {
    const v1::Task task = AwaitTask(*client, id, absl::Seconds(20));
    EXPECT_EQ(task.state(), v1::SUCCEEDED) << task.DebugString();
    EXPECT_EQ(task.attempt(), 1);
    EXPECT_FALSE(task.cancel_requested());
  }
  // Ahead of the queued ones in "one": ended by now.
  const v1::Task retried = AwaitTask(*client, outlives_retried);
  EXPECT_EQ(retried.state(), v1::SUCCEEDED) << retried.DebugString();
  EXPECT_EQ(retried.attempt(), 2);
  const v1::Task lost = AwaitTask(*client, outlives_lost);
  EXPECT_EQ(lost.state(), v1::WORKER_LOST) << lost.DebugString();
  EXPECT_EQ(lost.attempt(), 1);
  const v1::Task finished = AwaitTask(*client, ends_in_grace);
  EXPECT_EQ(finished.state(), v1::SUCCEEDED) << finished.DebugString();
  EXPECT_EQ(finished.attempt(), 1);

  stored = StoredTasks();
  EXPECT_EQ(stored.size(), queued.size() + 3);
  for (const auto& [id, row] : stored) {
    EXPECT_TRUE(IsTerminalState(static_cast<v1::State>(std::stoi(row[0]))))
        << id;
  }

  client.reset();
  ASSERT_EQ(server->Signal(SIGTERM), 0);
  exit_code = server->Wait(absl::Seconds(15));
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 0) << server->ServerOutput();
}

// Freezes PostgreSQL (SIGSTOP to the postmaster and each of its children:
// the backends are process groups of their own): a database that hangs
// rather than refuses. Thawed by Thaw() or the destructor. Not thread-safe.
class FrozenDatabase {
 public:
  explicit FrozenDatabase(pid_t postmaster) {
    // The postmaster first, so that it starts no child meanwhile.
    if (kill(postmaster, SIGSTOP) == 0) stopped_.push_back(postmaster);
    for (const ProcEntry& child : ChildrenOf(postmaster)) {
      if (child.state != 'Z' && kill(child.pid, SIGSTOP) == 0) {
        stopped_.push_back(child.pid);
      }
    }
    EXPECT_GT(stopped_.size(), 1u);
  }
  ~FrozenDatabase() { Thaw(); }
  FrozenDatabase(const FrozenDatabase&) = delete;
  FrozenDatabase& operator=(const FrozenDatabase&) = delete;

  void Thaw() {
    for (pid_t pid : stopped_) kill(pid, SIGCONT);
    stopped_.clear();
  }

 private:
  std::vector<pid_t> stopped_;
};

// The value of the counter of tasks of `function` in `pool` that ended
// `state` (lower case), read from the server's /metrics; -1 if unreadable.
double CompletedTasks(const std::string& metrics_address,
                      const std::string& pool, const std::string& function,
                      const std::string& state) {
  absl::StatusOr<HttpResponse> response = HttpGet(metrics_address, "/metrics");
  if (!response.ok() || response->status != 200) return -1;
  for (absl::string_view line : absl::StrSplit(response->body, '\n')) {
    if (!absl::StartsWith(line, "remex_tasks_completed_total{") ||
        !absl::StrContains(line, absl::StrCat("pool=\"", pool, "\"")) ||
        !absl::StrContains(line, absl::StrCat("function=\"", function, "\"")) ||
        !absl::StrContains(line, absl::StrCat("state=\"", state, "\""))) {
      continue;
    }
    double value = -1;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &value)) {
      return value;
    }
  }
  return -1;
}

// A database that hangs (frozen, not down): the calls that need it wait,
// on no poller (one poller here: a call that held it would stop every
// other), while the others answer promptly; and a task that ends meanwhile
// is not told ended (Get, Await) before its end is committed — a crash
// then would run it again or end it WORKER_LOST.
TEST_F(DurabilityTest, HungDatabaseBlocksNoPollerAndHidesUncommittedEnds) {
  std::unique_ptr<ServerProcess> server =
      StartDurableServer(std::vector<std::string>{"--pollers", "1"},
                         /*metrics=*/true);
  ASSERT_NE(server, nullptr);
  absl::StatusOr<std::string> metrics = server->MetricsAddress();
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  const std::string address = server->address();
  ClientOptions client_options;
  client_options.rpc_timeout = absl::Seconds(20);
  client_options.use_session = false;
  Client client(address, client_options);

  const v1::Task held = RunTask(client, "echo", R"({"held": true})");
  ASSERT_EQ(held.state(), v1::SUCCEEDED);
  const std::string ending =
      MustSubmit(client, "sleep", R"({"ms": 1000})", InPool("one"));
  ASSERT_TRUE(WaitUntilStored({ending}, v1::RUNNING));

  FrozenDatabase frozen(postgres_->pid());
  ASSERT_EQ(CompletedTasks(*metrics, "one", "sleep", "succeeded"), 0)
      << "the sleep ended before the database froze";
  // Calls that need the database, each on a connection of its own: they
  // wait for it, on the store's threads.
  struct Pending {
    std::string what;
    absl::Status status;
    std::string submitted;  // the id, for a submit
    absl::Notification done;
  };
  std::vector<std::unique_ptr<Pending>> pending;
  std::vector<std::thread> callers;
  auto call = [&](std::string what, auto&& body) {
    pending.push_back(std::make_unique<Pending>());
    Pending* slot = pending.back().get();
    slot->what = std::move(what);
    callers.emplace_back([slot, body, address, client_options] {
      Client own(address, client_options);
      body(own, *slot);
      slot->done.Notify();
    });
  };
  for (int i = 0; i < 3; ++i) {
    call("Get of a task not held", [](Client& own, Pending& slot) {
      slot.status = own.Get("t-0123456789abcdef0123456789abcdef").status();
    });
    call("List", [](Client& own, Pending& slot) {
      slot.status = own.List(v1::ListRequest()).status();
    });
    call("Submit", [](Client& own, Pending& slot) {
      absl::StatusOr<Future> future = own.TrySubmit("echo", Json("{}"));
      slot.status = future.status();
      if (future.ok()) slot.submitted = future->id();
    });
  }

  // The sleep ends in memory (the metrics say so, without the database);
  // its end waits for the commit.
  EXPECT_TRUE(WaitUntil(
      [&] {
        return CompletedTasks(*metrics, "one", "sleep", "succeeded") >= 1;
      },
      absl::Seconds(10)));
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  auto executor = v1::Executor::NewStub(channel);
  absl::Duration slowest;
  for (int round = 0; round < 5; ++round) {
    const absl::Time start = absl::Now();
    {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
      grpc::health::v1::HealthCheckResponse response;
      const grpc::Status status = health->Check(
          &context, grpc::health::v1::HealthCheckRequest(), &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
    }
    {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
      v1::ListFunctionsResponse response;
      const grpc::Status status = executor->ListFunctions(
          &context, v1::ListFunctionsRequest(), &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
    }
    absl::StatusOr<v1::Task> task = client.Get(held.id());
    EXPECT_TRUE(task.ok()) << task.status();
    // Its end is not committed: nobody hears of it yet.
    absl::StatusOr<v1::Task> uncommitted = client.Get(ending);
    ASSERT_TRUE(uncommitted.ok()) << uncommitted.status();
    EXPECT_EQ(uncommitted->state(), v1::RUNNING) << uncommitted->DebugString();
    slowest = std::max(slowest, absl::Now() - start);
  }
  absl::StatusOr<v1::Task> awaited = client.Await(ending, absl::Seconds(1));
  ASSERT_TRUE(awaited.ok()) << awaited.status();
  EXPECT_EQ(awaited->state(), v1::RUNNING) << awaited->DebugString();
  EXPECT_LT(slowest, absl::Seconds(1)) << "a call that needs no database "
                                          "waited for it";
  for (const std::unique_ptr<Pending>& slot : pending) {
    EXPECT_FALSE(slot->done.HasBeenNotified() && slot->status.ok())
        << slot->what << " answered OK from a frozen database";
  }

  frozen.Thaw();
  const v1::Task ended = AwaitTask(client, ending, absl::Seconds(20));
  EXPECT_EQ(ended.state(), v1::SUCCEEDED) << ended.DebugString();
  EXPECT_EQ(ended.attempt(), 1);
  for (std::thread& caller : callers) caller.join();
  std::vector<std::string> submitted;
  for (const std::unique_ptr<Pending>& slot : pending) {
    // The reads may have given up on the hung connection (UNAVAILABLE);
    // a submit is accepted or refused, and an accepted one runs.
    EXPECT_TRUE(slot->status.ok() || absl::IsUnavailable(slot->status) ||
                (slot->what == "Get of a task not held" &&
                 absl::IsNotFound(slot->status)))
        << slot->what << ": " << slot->status;
    if (!slot->submitted.empty()) submitted.push_back(slot->submitted);
  }
  for (const std::string& id : submitted) {
    EXPECT_EQ(AwaitTask(client, id, absl::Seconds(20)).state(), v1::SUCCEEDED);
  }
  // Stored once each: the held task, the sleep and the accepted submits.
  EXPECT_EQ(StoredTasks().size(), submitted.size() + 2);

  ASSERT_EQ(server->Signal(SIGTERM), 0);
  absl::StatusOr<int> exit_code = server->Wait(absl::Seconds(15));
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 0) << server->ServerOutput();
}

// SIGTERM while the database is down: the server still exits 0 within a
// bound, and what it could not commit is not lost: a task whose end was not
// committed runs again at the next start, a queued one runs.
TEST_F(DurabilityTest, SigtermDuringAnOutageLosesNothing) {
  std::unique_ptr<ServerProcess> server = StartDurableServer(
      std::vector<std::string>{"--shutdown-grace", "1s"}, /*metrics=*/true);
  ASSERT_NE(server, nullptr);
  absl::StatusOr<std::string> metrics = server->MetricsAddress();
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  ClientOptions client_options;
  client_options.rpc_timeout = absl::Seconds(10);
  client_options.use_session = false;
  auto client = std::make_unique<Client>(server->address(), client_options);
  // Long enough to outlast the database's stop, even on a loaded machine
  // (2 s was not, once, at a load of 5).
  const std::string ends_uncommitted =
      MustSubmit(*client, "sleep", R"({"ms": 4000})", InPool("one", 2));
  ASSERT_TRUE(WaitUntilStored({ends_uncommitted}, v1::RUNNING));
  const std::string queued =
      MustSubmit(*client, "echo", R"({"behind": 1})", InPool("one"));

  ASSERT_TRUE(postgres_->Stop().ok());
  ASSERT_EQ(CompletedTasks(*metrics, "one", "sleep", "succeeded"), 0)
      << "the sleep ended before the database stopped";
  // The sleep ends, then the echo runs, in memory only: neither end can be
  // committed, so neither is shown.
  // (/metrics counts ends in memory).
  EXPECT_TRUE(WaitUntil(
      [&] { return CompletedTasks(*metrics, "one", "echo", "succeeded") >= 1; },
      absl::Seconds(20)));
  for (const std::string& id : {ends_uncommitted, queued}) {
    absl::StatusOr<v1::Task> task = client->Get(id);
    ASSERT_TRUE(task.ok()) << task.status();
    EXPECT_FALSE(IsTerminalState(task->state())) << task->DebugString();
  }
  client.reset();

  const absl::Time stopping = absl::Now();
  ASSERT_EQ(server->Signal(SIGTERM), 0);
  absl::StatusOr<int> exit_code = server->Wait(absl::Seconds(30));
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 0) << server->ServerOutput();
  std::cerr << "exited " << absl::FormatDuration(absl::Now() - stopping)
            << " after SIGTERM with the database down\n";

  ASSERT_TRUE(postgres_->Restart().ok());
  std::map<std::string, std::vector<std::string>> stored = StoredTasks();
  EXPECT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[ends_uncommitted], StoredRow(v1::RUNNING, 1));
  EXPECT_FALSE(
      IsTerminalState(static_cast<v1::State>(std::stoi(stored[queued].at(0)))));

  server = StartDurableServer();
  ASSERT_NE(server, nullptr);
  client = std::make_unique<Client>(server->address(), client_options);
  const v1::Task rerun = AwaitTask(*client, ends_uncommitted);
  EXPECT_EQ(rerun.state(), v1::SUCCEEDED) << rerun.DebugString();
  EXPECT_EQ(rerun.attempt(), 2);
  const v1::Task ran = AwaitTask(*client, queued);
  EXPECT_EQ(ran.state(), v1::SUCCEEDED) << ran.DebugString();
  client.reset();
  ASSERT_EQ(server->Signal(SIGTERM), 0);
  exit_code = server->Wait(absl::Seconds(15));
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 0) << server->ServerOutput();
}

// SIGTERM while the database hangs, with calls waiting on it: the server
// should still exit within a bound.
TEST_F(DurabilityTest, SigtermWhileTheDatabaseHangsExitsWithinABound) {
  // A database that hangs (here frozen; in life a stuck host whose kernel
  // still ACKs, so that the keepalives and TCP user timeout of pg.cc never
  // fire) keeps a statement in PQgetResult: the writer's commit, then the
  // calls queued behind it, are not answered, and the drain waits for them.
  // The server gives up 20 s after its grace and exits 1 with one line; the
  // database keeps what it accepted, and the next start recovers it.
  std::unique_ptr<ServerProcess> server =
      StartDurableServer({"--shutdown-grace", "1s"});
  ASSERT_NE(server, nullptr);
  const std::string address = server->address();
  ClientOptions client_options;
  client_options.rpc_timeout = absl::Seconds(60);
  client_options.use_session = false;
  const std::string running = [&] {
    Client client(address, client_options);
    return MustSubmit(client, "sleep", R"({"ms": 300})", InPool("one", 2));
  }();
  ASSERT_TRUE(WaitUntilStored({running}, v1::RUNNING));
  FrozenDatabase frozen(postgres_->pid());
  std::vector<std::thread> callers;
  for (int i = 0; i < 3; ++i) {
    callers.emplace_back([&] {
      Client own(address, client_options);
      (void)own.Get("t-0123456789abcdef0123456789abcdef");
    });
    callers.emplace_back([&] {
      Client own(address, client_options);
      (void)own.List(v1::ListRequest());
    });
    callers.emplace_back([&] {
      Client own(address, client_options);
      (void)own.TrySubmit("echo", Json("{}"));
    });
  }
  Client probe(address, client_options);
  ASSERT_TRUE(probe.ListFunctions().ok());
  const absl::Time stopping = absl::Now();
  ASSERT_EQ(server->Signal(SIGTERM), 0);
  absl::StatusOr<int> exit_code = server->Wait(absl::Seconds(40));
  const absl::Duration took = absl::Now() - stopping;
  frozen.Thaw();
  for (std::thread& caller : callers) caller.join();
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 1) << server->ServerOutput();
  EXPECT_GE(took, absl::Seconds(20));  // the grace (1 s) and 20 s
  EXPECT_TRUE(absl::StrContains(server->ServerOutput(),
                                "still stopping 21s after the signal"))
      << server->ServerOutput();

  server = StartDurableServer();
  ASSERT_NE(server, nullptr);
  Client client(server->address(), client_options);
  const v1::Task ran = AwaitTask(client, running);
  EXPECT_EQ(ran.state(), v1::SUCCEEDED) << ran.DebugString();
}

}  // namespace
}  // namespace remex::testing
