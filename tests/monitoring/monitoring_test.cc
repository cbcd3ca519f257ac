// Unit tests of remex::monitoring: the task metrics fed by a real Executor,
// the store metrics, the gRPC metrics, the scrape-time stats, the process
// metrics and the /metrics endpoint.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "monitoring/metrics.h"
#include "monitoring/process_collector.h"
#include "monitoring/stats_collector.h"
#include "prometheus/text_serializer.h"
#include "server/executor/executor.h"
#include "server/functions/builtin_functions.h"
#include "tests/executor/executor_test_util.h"
#include "tests/monitoring/http_get.h"
#include "tests/testing/wait.h"

namespace remex::monitoring {
namespace {

using executor::Executor;
using executor::Json;
using executor::TaskState;
using executor::testing::AwaitTerminal;
using executor::testing::MakeSpec;
using executor::testing::ThreadPoolConfig;
using ::remex::testing::WaitUntil;
using ::testing::HasSubstr;
using ::testing::Not;

// Series ("name{label="value",...}", labels sorted as the text format
// writes them) to value, from the text exposition format.
std::map<std::string, double> ParseSamples(const std::string& text) {
  std::map<std::string, double> samples;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    double value = 0;
    if (space == absl::string_view::npos ||
        !absl::SimpleAtod(line.substr(space + 1), &value)) {
      continue;
    }
    samples[std::string(line.substr(0, space))] = value;
  }
  return samples;
}

// The value of `series` in `metrics`, -1 if it is not there.
double Sample(const Metrics& metrics, const std::string& series) {
  const std::map<std::string, double> samples = ParseSamples(metrics.Scrape());
  auto it = samples.find(series);
  return it == samples.end() ? -1 : it->second;
}

std::string Completed(absl::string_view function, absl::string_view state) {
  return absl::StrCat("remex_tasks_completed_total{function=\"", function,
                      "\",pool=\"default\",state=\"", state, "\"}");
}

class TaskMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(functions::RegisterBuiltinFunctions({}, registry_).ok());
  }

  void StartExecutor(std::vector<executor::PoolConfig> pools) {
    executor::ExecutorOptions options;
    options.pools = std::move(pools);
    options.observer = &metrics_.tasks();
    auto created = Executor::Create(std::move(options), registry_);
    ASSERT_TRUE(created.ok()) << created.status();
    executor_ = *std::move(created);
  }

  // Submits and waits for the end; returns the final state.
  TaskState Run(executor::TaskSpec spec) {
    auto task = executor_->Submit(std::move(spec));
    EXPECT_TRUE(task.ok()) << task.status();
    if (!task.ok()) return TaskState::kQueued;
    auto done = AwaitTerminal(*executor_, task->id);
    EXPECT_TRUE(done.ok()) << done.status();
    return done.ok() ? done->state : TaskState::kQueued;
  }

  absl::StatusCode SubmitError(executor::TaskSpec spec) {
    return executor_->Submit(std::move(spec)).status().code();
  }

  executor::FunctionRegistry registry_;
  Metrics metrics_{{.version = "1.2.3", .revision = "abc"}};
  std::unique_ptr<Executor> executor_;
};

TEST_F(TaskMetricsTest, CountsEveryTaskOnceByFinalStateWithItsTimes) {
  ASSERT_NO_FATAL_FAILURE(StartExecutor({ThreadPoolConfig("default", 2)}));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Run(MakeSpec("echo", {{"i", i}})), TaskState::kSucceeded);
  }
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(Run(MakeSpec("fail", {{"message", "no"}})), TaskState::kFailed);
  }
  executor::TaskSpec slow = MakeSpec("sleep", {{"ms", 60000}});
  slow.run_timeout = absl::Milliseconds(20);
  EXPECT_EQ(Run(slow), TaskState::kTimedOut);

  // Cancelled while running: counted once, although the function returns
  // after the cancel.
  auto running = executor_->Submit(MakeSpec("sleep", {{"ms", 60000}}));
  ASSERT_TRUE(running.ok());
  ASSERT_TRUE(WaitUntil([&] {
    return executor_->Get(running->id)->state == TaskState::kRunning;
  }));
  ASSERT_TRUE(executor_->Cancel(running->id).ok());
  ASSERT_TRUE(AwaitTerminal(*executor_, running->id).ok());

  EXPECT_EQ(Sample(metrics_,
                   "remex_tasks_submitted_total{function=\"echo\","
                   "pool=\"default\"}"),
            3);
  EXPECT_EQ(Sample(metrics_, Completed("echo", "succeeded")), 3);
  EXPECT_EQ(Sample(metrics_, Completed("echo", "failed")), 0);
  EXPECT_EQ(Sample(metrics_, Completed("fail", "failed")), 2);
  EXPECT_EQ(Sample(metrics_, Completed("sleep", "timed_out")), 1);
  EXPECT_EQ(Sample(metrics_, Completed("sleep", "cancelled")), 1);
  EXPECT_EQ(Sample(metrics_, Completed("sleep", "worker_lost")), 0);
  EXPECT_EQ(Sample(metrics_,
                   "remex_task_run_seconds_count{function=\"sleep\","
                   "pool=\"default\"}"),
            2);
  EXPECT_EQ(
      Sample(metrics_, "remex_task_queue_seconds_count{pool=\"default\"}"), 7);
  // The timed out task ran at least its run_timeout.
  EXPECT_GE(Sample(metrics_,
                   "remex_task_run_seconds_sum{function=\"sleep\","
                   "pool=\"default\"}"),
            0.02);
  // Every time is within the bucket bounds' range.
  EXPECT_EQ(Sample(metrics_,
                   "remex_task_run_seconds_bucket{function=\"echo\","
                   "pool=\"default\",le=\"3600\"}"),
            3);
}

TEST_F(TaskMetricsTest, QueuedTaskCancelledCountsNoQueueOrRunTime) {
  ASSERT_NO_FATAL_FAILURE(StartExecutor({ThreadPoolConfig("default", 1)}));
  auto blocker = executor_->Submit(MakeSpec("sleep", {{"ms", 60000}}));
  ASSERT_TRUE(blocker.ok());
  ASSERT_TRUE(WaitUntil([&] {
    return executor_->Get(blocker->id)->state == TaskState::kRunning;
  }));
  auto queued = executor_->Submit(MakeSpec("echo"));
  ASSERT_TRUE(queued.ok());
  ASSERT_TRUE(executor_->Cancel(queued->id).ok());
  ASSERT_TRUE(executor_->Cancel(blocker->id).ok());
  ASSERT_TRUE(AwaitTerminal(*executor_, blocker->id).ok());
  EXPECT_EQ(Sample(metrics_, Completed("echo", "cancelled")), 1);
  EXPECT_EQ(Sample(metrics_,
                   "remex_task_run_seconds_count{function=\"echo\","
                   "pool=\"default\"}"),
            0);
  EXPECT_EQ(
      Sample(metrics_, "remex_task_queue_seconds_count{pool=\"default\"}"),
      1);  // the blocker only
}

TEST_F(TaskMetricsTest, RejectionsCarryAKnownPoolOrNoneNeverTheCallersString) {
  ASSERT_NO_FATAL_FAILURE(StartExecutor(
      {ThreadPoolConfig("default", 1), ThreadPoolConfig("small", 1, 1)}));
  const auto rejected = [this](absl::string_view pool,
                               absl::string_view reason) {
    return Sample(metrics_, absl::StrCat("remex_tasks_rejected_total{pool=\"",
                                         pool, "\",reason=\"", reason, "\"}"));
  };

  EXPECT_EQ(SubmitError(MakeSpec("no_such_function_xyz")),
            absl::StatusCode::kNotFound);
  executor::TaskSpec bad_pool = MakeSpec("echo");
  bad_pool.pool = "no_such_pool_xyz";
  EXPECT_EQ(SubmitError(bad_pool), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SubmitError(MakeSpec("sleep", {{"ms", "not a number"}})),
            absl::StatusCode::kInvalidArgument);

  // Pool "small": one running, one queued, the third refused.
  executor::TaskSpec on_small = MakeSpec("sleep", {{"ms", 60000}});
  on_small.pool = "small";
  auto first = executor_->Submit(on_small);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(WaitUntil(
      [&] { return executor_->Get(first->id)->state == TaskState::kRunning; }));
  ASSERT_TRUE(executor_->Submit(on_small).ok());
  EXPECT_EQ(SubmitError(on_small), absl::StatusCode::kResourceExhausted);

  executor_->StartDrain();
  EXPECT_EQ(SubmitError(MakeSpec("echo")), absl::StatusCode::kUnavailable);
  EXPECT_EQ(SubmitError(MakeSpec("no_such_function_xyz")),
            absl::StatusCode::kNotFound);

  EXPECT_EQ(rejected("", "not_found"), 2);
  EXPECT_EQ(rejected("", "invalid"), 1);
  EXPECT_EQ(rejected("default", "invalid"), 1);
  EXPECT_EQ(rejected("small", "queue_full"), 1);
  EXPECT_EQ(rejected("default", "draining"), 1);
  EXPECT_EQ(rejected("default", "queue_full"), 0);
  const std::string text = metrics_.Scrape();
  EXPECT_THAT(text, Not(HasSubstr("no_such_function_xyz")));
  EXPECT_THAT(text, Not(HasSubstr("no_such_pool_xyz")));
  executor_->CancelAll("test over");
}

TEST(MetricsTest, BuildInfoIsOneWithVersionAndRevision) {
  Metrics metrics({.version = "1.2.3", .revision = "abc"});
  EXPECT_EQ(
      Sample(metrics, "remex_build_info{revision=\"abc\",version=\"1.2.3\"}"),
      1);
}

TEST(GrpcMetricsTest, CountsByMethodAndCodeAndTimesByMethod) {
  Metrics metrics({});
  metrics.grpc().Record(RpcMethod::kSubmit, absl::StatusCode::kOk,
                        absl::Milliseconds(2));
  metrics.grpc().Record(RpcMethod::kSubmit, absl::StatusCode::kNotFound,
                        absl::Milliseconds(1));
  metrics.grpc().Record(RpcMethod::kListFunctions, absl::StatusCode::kOk,
                        absl::Microseconds(50));
  metrics.grpc().Record(RpcMethod::kGet, static_cast<absl::StatusCode>(99),
                        absl::ZeroDuration());
  EXPECT_EQ(Sample(metrics,
                   "remex_grpc_requests_total{code=\"OK\","
                   "method=\"Submit\"}"),
            1);
  EXPECT_EQ(Sample(metrics,
                   "remex_grpc_requests_total{code=\"NOT_FOUND\","
                   "method=\"Submit\"}"),
            1);
  EXPECT_EQ(Sample(metrics,
                   "remex_grpc_requests_total{code=\"UNKNOWN\","
                   "method=\"Get\"}"),
            1);
  EXPECT_EQ(
      Sample(metrics, "remex_grpc_request_seconds_count{method=\"Submit\"}"),
      2);
  EXPECT_EQ(Sample(metrics,
                   "remex_grpc_request_seconds_bucket{"
                   "method=\"ListFunctions\",le=\"0.0001\"}"),
            1);
  EXPECT_NEAR(
      Sample(metrics, "remex_grpc_request_seconds_sum{method=\"Submit\"}"),
      0.003, 1e-9);
}

TEST(StoreMetricsTest, StartIdleWithCanCommitOneAndEveryKnownErrorAtZero) {
  Metrics metrics({});
  EXPECT_EQ(Sample(metrics, "remex_store_can_commit"), 1);
  for (const char* operation : {"commit", "read", "connect", "retention"}) {
    EXPECT_EQ(Sample(metrics, absl::StrCat("remex_store_errors_total{"
                                           "operation=\"",
                                           operation, "\"}")),
              0)
        << operation;
  }
  EXPECT_EQ(Sample(metrics, "remex_store_reconnects_total"), 0);
  EXPECT_EQ(Sample(metrics, "remex_store_requeued_tasks_total"), 0);
  EXPECT_EQ(Sample(metrics, "remex_store_commit_seconds_count"), 0);
  EXPECT_EQ(Sample(metrics, "remex_store_commit_batch_tasks_count"), 0);
  EXPECT_EQ(Sample(metrics, "remex_store_claim_lag_seconds_count"), 0);
}

TEST(StoreMetricsTest, EveryObserverCallMovesItsSeries) {
  Metrics metrics({});
  executor::StoreObserver& store = metrics.store();

  // Commit latency, 100 µs to 1 s, and batch size, 1 to 4096.
  store.OnCommit(1, absl::Microseconds(80));
  store.OnCommit(64, absl::Microseconds(700));
  store.OnCommit(5000, absl::Seconds(2));
  EXPECT_EQ(Sample(metrics, "remex_store_commit_seconds_count"), 3);
  EXPECT_EQ(Sample(metrics, "remex_store_commit_seconds_bucket{le=\"0.0001\"}"),
            1);
  EXPECT_EQ(Sample(metrics, "remex_store_commit_seconds_bucket{le=\"0.001\"}"),
            2);
  EXPECT_EQ(Sample(metrics, "remex_store_commit_seconds_bucket{le=\"1\"}"), 2);
  EXPECT_EQ(Sample(metrics, "remex_store_commit_seconds_bucket{le=\"+Inf\"}"),
            3);
  EXPECT_EQ(Sample(metrics, "remex_store_commit_seconds_bucket{le=\"2.5\"}"),
            -1);
  EXPECT_NEAR(Sample(metrics, "remex_store_commit_seconds_sum"), 2.00078, 1e-9);
  EXPECT_EQ(Sample(metrics, "remex_store_commit_batch_tasks_bucket{le=\"1\"}"),
            1);
  EXPECT_EQ(Sample(metrics, "remex_store_commit_batch_tasks_bucket{le=\"32\"}"),
            1);
  EXPECT_EQ(Sample(metrics, "remex_store_commit_batch_tasks_bucket{le=\"64\"}"),
            2);
  EXPECT_EQ(
      Sample(metrics, "remex_store_commit_batch_tasks_bucket{le=\"4096\"}"), 2);
  EXPECT_EQ(
      Sample(metrics, "remex_store_commit_batch_tasks_bucket{le=\"+Inf\"}"), 3);
  EXPECT_EQ(Sample(metrics, "remex_store_commit_batch_tasks_sum"), 5065);

  store.OnClaimLag(absl::Milliseconds(3));
  EXPECT_EQ(Sample(metrics, "remex_store_claim_lag_seconds_count"), 1);
  EXPECT_EQ(
      Sample(metrics, "remex_store_claim_lag_seconds_bucket{le=\"0.0025\"}"),
      0);
  EXPECT_EQ(
      Sample(metrics, "remex_store_claim_lag_seconds_bucket{le=\"0.005\"}"), 1);

  store.OnRequeued(3);
  store.OnRequeued(0);
  store.OnRequeued(2);
  EXPECT_EQ(Sample(metrics, "remex_store_requeued_tasks_total"), 5);

  store.OnDatabaseError("commit");
  store.OnDatabaseError("commit");
  store.OnDatabaseError("connect");
  store.OnDatabaseError("listen");
  EXPECT_EQ(Sample(metrics, "remex_store_errors_total{operation=\"commit\"}"),
            2);
  EXPECT_EQ(Sample(metrics, "remex_store_errors_total{operation=\"connect\"}"),
            1);
  EXPECT_EQ(Sample(metrics, "remex_store_errors_total{operation=\"read\"}"), 0);
  EXPECT_EQ(Sample(metrics, "remex_store_errors_total{operation=\"listen\"}"),
            1);

  store.OnCanCommit(false);
  EXPECT_EQ(Sample(metrics, "remex_store_can_commit"), 0);
  store.OnReconnect();
  store.OnCanCommit(true);
  EXPECT_EQ(Sample(metrics, "remex_store_can_commit"), 1);
  EXPECT_EQ(Sample(metrics, "remex_store_reconnects_total"), 1);
}

TEST(StatsCollectorTest, ReportsPoolsAtScrapeTimeAndRestartsOfProcessPools) {
  Metrics metrics({});
  int scrapes = 0;
  metrics.SetStatsSource([&scrapes] {
    ++scrapes;
    const absl::Time now = absl::FromUnixSeconds(1000);
    executor::PoolStats threads{
        .name = "default",
        .kind = executor::PoolKind::kThread,
        .workers = 4,
        .busy = 3,
        .queued = 7,
        .oldest_queued_created_at = now - absl::Seconds(42),
        .max_queue = 100};
    executor::PoolStats processes{
        .name = "process",
        .kind = executor::PoolKind::kProcess,
        .workers = 2,
        .busy = 0,
        .worker_restarts = {{"crash", 5}, {"oom", 1}}};
    return ServerStats{
        .pools = {threads, processes},
        .retained_tasks = 11,
        .awaiters = 2,
        .open_sessions = 3,
        .now = now,
        .max_connection_idle = absl::Minutes(5),
        .memory = {.limit = 1000,
                   .queued = 10,
                   .running = 20,
                   .retained = 30,
                   .rejected = 4},
        .connections = {
            .open = 5, .limit = 900, .fd_reserve = 100, .refused = 6}};
  });
  const std::map<std::string, double> samples = ParseSamples(metrics.Scrape());
  EXPECT_EQ(scrapes, 1);
  EXPECT_EQ(samples.at("remex_pool_queue_depth{pool=\"default\"}"), 7);
  EXPECT_EQ(samples.at("remex_pool_queue_capacity{pool=\"default\"}"), 100);
  EXPECT_EQ(samples.at("remex_pool_running{pool=\"default\"}"), 3);
  EXPECT_EQ(samples.at("remex_pool_workers{pool=\"default\",state=\"busy\"}"),
            3);
  EXPECT_EQ(samples.at("remex_pool_workers{pool=\"default\",state=\"idle\"}"),
            1);
  EXPECT_EQ(samples.at("remex_pool_workers{pool=\"process\",state=\"idle\"}"),
            2);
  EXPECT_EQ(samples.at("remex_worker_restarts_total{pool=\"process\","
                       "reason=\"crash\"}"),
            5);
  EXPECT_EQ(samples.at("remex_worker_restarts_total{pool=\"process\","
                       "reason=\"oom\"}"),
            1);
  // Known reasons exist before their first restart.
  EXPECT_EQ(samples.at("remex_worker_restarts_total{pool=\"process\","
                       "reason=\"timeout\"}"),
            0);
  EXPECT_FALSE(samples.contains(
      "remex_worker_restarts_total{pool=\"default\",reason=\"crash\"}"));
  EXPECT_EQ(samples.at("remex_tasks_retained"), 11);
  EXPECT_EQ(samples.at("remex_awaiters"), 2);
  EXPECT_EQ(samples.at("remex_max_connection_idle_seconds"), 300);
  EXPECT_EQ(samples.at("remex_pool_oldest_queued_seconds{pool=\"default\"}"),
            42);
  EXPECT_EQ(samples.at("remex_pool_oldest_queued_seconds{pool=\"process\"}"),
            0);
  EXPECT_EQ(samples.at("remex_sessions_open"), 3);
  EXPECT_EQ(samples.at("remex_memory_budget_bytes"), 1000);
  EXPECT_EQ(samples.at("remex_memory_used_bytes{part=\"queued\"}"), 10);
  EXPECT_EQ(samples.at("remex_memory_used_bytes{part=\"running\"}"), 20);
  EXPECT_EQ(samples.at("remex_memory_used_bytes{part=\"retained\"}"), 30);
  EXPECT_EQ(samples.at("remex_memory_rejected_total"), 4);
  EXPECT_EQ(samples.at("remex_connections_open"), 5);
  EXPECT_EQ(samples.at("remex_connections_limit"), 900);
  EXPECT_EQ(samples.at("remex_fd_reserve"), 100);
  EXPECT_EQ(samples.at("remex_connections_refused_total"), 6);

  metrics.SetStatsSource(nullptr);
  EXPECT_THAT(metrics.Scrape(), Not(HasSubstr("remex_pool_queue_depth")));
  EXPECT_EQ(scrapes, 1);
}

TEST(ProcessCollectorTest, ReadsThisProcessFromProc) {
  const std::string text =
      prometheus::TextSerializer().Serialize(ProcessCollector().Collect());
  const std::map<std::string, double> samples = ParseSamples(text);
  ASSERT_TRUE(samples.contains("process_resident_memory_bytes")) << text;
  EXPECT_GT(samples.at("process_resident_memory_bytes"), 1 << 20);
  EXPECT_GE(samples.at("process_virtual_memory_bytes"),
            samples.at("process_resident_memory_bytes"));
  EXPECT_GE(samples.at("process_cpu_seconds_total"), 0);
  EXPECT_GE(samples.at("process_threads"), 1);
  EXPECT_GE(samples.at("process_open_fds"), 3);  // stdin, stdout, stderr
  EXPECT_GT(samples.at("process_max_fds"), samples.at("process_open_fds"));
  const double now = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  EXPECT_LE(samples.at("process_start_time_seconds"), now + 1);
  EXPECT_GT(samples.at("process_start_time_seconds"), now - 3600);
  EXPECT_THAT(text, HasSubstr("# TYPE process_cpu_seconds_total counter"));
}

TEST(MetricsServerTest, ServesTheMetricsOnAFreePort) {
  Metrics metrics({.version = "1.2.3", .revision = "abc"});
  auto server = MetricsServer::Start("127.0.0.1:0", metrics);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->port(), 0);
  EXPECT_EQ((*server)->address(),
            absl::StrCat("127.0.0.1:", (*server)->port()));
  const absl::StatusOr<testing::HttpResponse> answer =
      testing::HttpGet((*server)->address(), "/metrics");
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->status, 200);
  EXPECT_THAT(answer->body, HasSubstr("remex_build_info{revision=\"abc\""));
  EXPECT_THAT(answer->body, HasSubstr("process_resident_memory_bytes"));
}

TEST(MetricsServerTest, StopsWithoutWaitingForItsPollInterval) {
  Metrics metrics({});
  auto server = MetricsServer::Start("127.0.0.1:0", metrics);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE(testing::HttpGet((*server)->address(), "/metrics").ok());
  const absl::Time start = absl::Now();
  server->reset();
  // Without the knock on its port, the HTTP server's wait takes a second.
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(500));
}

TEST(MetricsServerTest, APortInUseIsUnavailableNamingTheAddress) {
  Metrics metrics({});
  auto first = MetricsServer::Start("127.0.0.1:0", metrics);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = MetricsServer::Start((*first)->address(), metrics);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(
      second.status().message(),
      HasSubstr(absl::StrCat("cannot serve metrics on ", (*first)->address())));
}

}  // namespace
}  // namespace remex::monitoring
