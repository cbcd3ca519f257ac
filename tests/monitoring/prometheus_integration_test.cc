// A real Prometheus server (Debian's /usr/bin/prometheus, on 127.0.0.1)
// scrapes a real remex-server while a known mix of tasks runs through the
// SDK; the counts read back through Prometheus's HTTP query API must match
// the mix exactly. Also: the real scrape passes `promtool check metrics`, and
// Prometheus loads the alert rules.
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "remex/remex.h"
#include "tests/monitoring/http_get.h"
#include "tests/testing/free_port.h"
#include "tests/testing/server_process.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

#ifndef PROMETHEUS_PATH
#error "PROMETHEUS_PATH must be the path of the prometheus binary"
#endif
#ifndef PROMTOOL_PATH
#error "PROMTOOL_PATH must be the path of promtool"
#endif
#ifndef REMEX_ALERT_RULES
#error "REMEX_ALERT_RULES must be the path of monitoring/alerts/remex.rules.yml"
#endif

namespace remex {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr absl::Duration kStartTimeout = absl::Seconds(30);
// Long enough for several 1 s scrapes after the mix ends.
constexpr absl::Duration kSettleTimeout = absl::Seconds(30);

// The mix of tasks.
constexpr int kSucceed = 50;
constexpr int kFail = 10;
constexpr int kCancel = 5;
constexpr int kTimeOut = 5;
constexpr int kTasks = kSucceed + kFail + kCancel + kTimeOut;

// A Prometheus server with its own config and storage in a temp dir. The
// destructor stops it (SIGTERM, SIGKILL after 10 s) and removes the dir.
class PrometheusProcess {
 public:
  // Starts Prometheus scraping `target` (HOST:PORT) every second as job
  // "remex", with the remex alert rules loaded, and waits until it is ready.
  static absl::StatusOr<std::unique_ptr<PrometheusProcess>> Start(
      const std::string& target) {
    std::unique_ptr<PrometheusProcess> prometheus(new PrometheusProcess());
    const std::filesystem::path& dir = prometheus->dir_.path();
    std::filesystem::create_directories(dir / "data");
    std::ofstream(dir / "prometheus.yml")
        << "global:\n"
        << "  scrape_interval: 1s\n"
        << "  evaluation_interval: 1s\n"
        << "rule_files:\n"
        << "  - " << REMEX_ALERT_RULES << "\n"
        << "scrape_configs:\n"
        << "  - job_name: remex\n"
        << "    static_configs:\n"
        << "      - targets: ['" << target << "']\n";
    absl::StatusOr<int> port = testing::FreeLoopbackPort();
    if (!port.ok()) return port.status();
    prometheus->address_ = absl::StrCat("127.0.0.1:", *port);
    // Through sh only to send its output to a file: exec keeps the pid.
    const std::string command =
        absl::StrCat("exec ", PROMETHEUS_PATH,
                     " --config.file=", (dir / "prometheus.yml").string(),
                     " --storage.tsdb.path=", (dir / "data").string(),
                     " --web.listen-address=", prometheus->address_, " >",
                     prometheus->log_path().string(), " 2>&1");
    absl::StatusOr<testing::SpawnedProcess> spawned =
        testing::Spawn({"/bin/sh", "-c", command});
    if (!spawned.ok()) return spawned.status();
    close(spawned->stdout_fd);
    close(spawned->stderr_fd);
    prometheus->pid_ = spawned->pid;
    bool ready = false;
    testing::WaitUntil(
        [&] {
          absl::StatusOr<testing::HttpResponse> answer =
              testing::HttpGet(prometheus->address_, "/-/ready");
          ready = answer.ok() && answer->status == 200;
          return ready || kill(prometheus->pid_, 0) != 0;
        },
        kStartTimeout);
    if (ready) return prometheus;
    return absl::UnavailableError(absl::StrCat(
        "prometheus did not get ready; its log:\n", prometheus->Log()));
  }

  ~PrometheusProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      (void)testing::WaitForExit(pid_, absl::Seconds(10));
    }
  }

  // The result of the instant query `promql`: a map from the series' labels
  // (as "k=v,k=v", sorted, without __name__) to the value.
  absl::StatusOr<std::map<std::string, double>> Query(
      const std::string& promql) const {
    absl::StatusOr<testing::HttpResponse> answer = testing::HttpGet(
        address_,
        absl::StrCat("/api/v1/query?query=", testing::UrlEncode(promql)));
    if (!answer.ok()) return answer.status();
    const nlohmann::json json =
        nlohmann::json::parse(answer->body, nullptr,
                              /*allow_exceptions=*/false);
    if (json.is_discarded() || json.value("status", "") != "success") {
      return absl::InternalError(
          absl::StrCat("query ", promql, " failed: ", answer->body));
    }
    std::map<std::string, double> values;
    for (const nlohmann::json& sample : json["data"]["result"]) {
      std::vector<std::string> labels;
      for (const auto& [name, value] : sample["metric"].items()) {
        if (name != "__name__") {
          labels.push_back(absl::StrCat(name, "=", value.get<std::string>()));
        }
      }
      values[absl::StrJoin(labels, ",")] =
          std::stod(sample["value"][1].get<std::string>());
    }
    return values;
  }

  // GET `path` of the Prometheus API, the body.
  std::string Get(const std::string& path) const {
    absl::StatusOr<testing::HttpResponse> answer =
        testing::HttpGet(address_, path);
    return answer.ok() ? answer->body : answer.status().ToString();
  }

  std::string Log() const {
    std::ifstream file(log_path());
    return std::string(std::istreambuf_iterator<char>(file), {});
  }

 private:
  PrometheusProcess() = default;
  std::filesystem::path log_path() const {
    return dir_.path() / "prometheus.log";
  }

  const testing::TempDir dir_;
  std::string address_;
  pid_t pid_ = -1;
};

class PrometheusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Enough workers for every sleeping task of the mix at once.
    const std::string config =
        dir_.Write("config.json", R"({"pools": [{"name": "default",
        "kind": "thread", "workers": 12, "max_queue": 1000}]})");
    auto server = testing::ServerProcess::Start({"--config", config});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    auto metrics = server_->MetricsAddress();
    ASSERT_TRUE(metrics.ok()) << metrics.status() << server_->ServerOutput();
    metrics_address_ = *metrics;
    auto prometheus = PrometheusProcess::Start(metrics_address_);
    ASSERT_TRUE(prometheus.ok()) << prometheus.status();
    prometheus_ = *std::move(prometheus);
  }

  void TearDown() override {
    prometheus_.reset();
    server_.reset();
  }

  // Polls `promql` until it answers `expected` or kSettleTimeout passes;
  // returns the last answer.
  std::map<std::string, double> QueryUntil(
      const std::string& promql,
      const std::map<std::string, double>& expected) {
    absl::StatusOr<std::map<std::string, double>> last;
    testing::WaitUntil(
        [&] {
          last = prometheus_->Query(promql);
          return !last.ok() || *last == expected;
        },
        kSettleTimeout);
    EXPECT_TRUE(last.ok()) << last.status();
    return last.ok() ? *std::move(last) : std::map<std::string, double>();
  }

  const testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::string metrics_address_;
  std::unique_ptr<PrometheusProcess> prometheus_;
};

// Runs the mix through the SDK; each task is awaited to its end. Unary
// calls, not the SDK's default Session stream, so that every task is one
// Submit in remex_grpc_requests_total.
void RunTheMix(const std::string& address) {
  Client client(address, {.use_session = false});
  std::vector<Future> futures;
  for (int i = 0; i < kSucceed; ++i) {
    futures.push_back(
        client.Submit("echo", Json(absl::StrCat("{\"i\":", i, "}"))));
  }
  for (int i = 0; i < kFail; ++i) {
    futures.push_back(client.Submit("fail", Json(R"({"message": "planned"})")));
  }
  const google::protobuf::Value long_sleep = Json(R"({"ms": 600000})");
  for (int i = 0; i < kTimeOut; ++i) {
    futures.push_back(client.Submit("sleep", long_sleep,
                                    {.run_timeout = absl::Milliseconds(100)}));
  }
  for (int i = 0; i < kCancel; ++i) {
    Future future = client.Submit("sleep", long_sleep);
    // Running before the cancel, so that it has a run time too.
    testing::WaitUntil(
        [&] { return client.Get(future.id())->state() == v1::RUNNING; });
    EXPECT_TRUE(future.cancel());
    futures.push_back(future);
  }
  std::map<std::string, int> states;
  for (const Future& future : futures) {
    future.wait();
    ++states[v1::State_Name(future.task().state())];
  }
  EXPECT_EQ(states, (std::map<std::string, int>{{"SUCCEEDED", kSucceed},
                                                {"FAILED", kFail},
                                                {"CANCELLED", kCancel},
                                                {"TIMED_OUT", kTimeOut}}));
  // One refusal: an unknown function, counted with no pool.
  EXPECT_FALSE(client.TrySubmit("no_such_function").ok());
}

TEST_F(PrometheusTest, CountsOfAKnownMixMatchExactlyThroughPrometheus) {
  // The target is up before any task runs.
  EXPECT_EQ(QueryUntil("up{job=\"remex\"}",
                       {{"instance=" + metrics_address_ + ",job=remex", 1}}),
            (std::map<std::string, double>{
                {"instance=" + metrics_address_ + ",job=remex", 1}}));
  RunTheMix(server_->address());

  EXPECT_EQ(QueryUntil("sum by (state) (remex_tasks_completed_total)",
                       {{"state=succeeded", kSucceed},
                        {"state=failed", kFail},
                        {"state=cancelled", kCancel},
                        {"state=timed_out", kTimeOut},
                        {"state=worker_lost", 0}}),
            (std::map<std::string, double>{{"state=succeeded", kSucceed},
                                           {"state=failed", kFail},
                                           {"state=cancelled", kCancel},
                                           {"state=timed_out", kTimeOut},
                                           {"state=worker_lost", 0}}));
  const std::map<std::string, double> submitted = {
      {"function=echo", kSucceed}, {"function=fail", kFail},
      {"function=sha256", 0},      {"function=primes", 0},
      {"function=spin", 0},        {"function=sleep", kCancel + kTimeOut}};
  EXPECT_EQ(
      QueryUntil("sum by (function) (remex_tasks_submitted_total)", submitted),
      submitted);
  // Every task of the mix started (so has a queue time) and ran.
  EXPECT_EQ(
      QueryUntil("sum by (function) (remex_task_run_seconds_count)", submitted),
      submitted);
  EXPECT_EQ(QueryUntil("sum(remex_task_queue_seconds_count)", {{"", kTasks}}),
            (std::map<std::string, double>{{"", kTasks}}));
  EXPECT_EQ(QueryUntil("sum(remex_task_queue_seconds_bucket{le=\"+Inf\"})",
                       {{"", kTasks}}),
            (std::map<std::string, double>{{"", kTasks}}));
  // The timed-out tasks ran their 100 ms: past the 50 ms bucket.
  const auto quick_sleeps = prometheus_->Query(
      "sum(remex_task_run_seconds_bucket{function=\"sleep\",le=\"0.05\"})");
  ASSERT_TRUE(quick_sleeps.ok()) << quick_sleeps.status();
  EXPECT_LE(quick_sleeps->at(""), kCancel);
  // The refusal has no pool label (an empty value is no label).
  const std::map<std::string, double> rejected = {{"", 1}, {"pool=default", 0}};
  EXPECT_EQ(QueryUntil("sum by (pool) (remex_tasks_rejected_total"
                       "{reason=\"not_found\"})",
                       rejected),
            rejected);
  EXPECT_EQ(QueryUntil("sum by (code) (remex_grpc_requests_total{method="
                       "\"Submit\",code=~\"OK|NOT_FOUND\"})",
                       {{"code=OK", kTasks}, {"code=NOT_FOUND", 1}}),
            (std::map<std::string, double>{{"code=OK", kTasks},
                                           {"code=NOT_FOUND", 1}}));
  EXPECT_EQ(QueryUntil("sum(remex_grpc_request_seconds_count{method="
                       "\"Submit\"})",
                       {{"", kTasks + 1}}),
            (std::map<std::string, double>{{"", kTasks + 1}}));
  // Nothing is left queued or running, and no Await is parked.
  EXPECT_EQ(QueryUntil("sum(remex_pool_queue_depth) + sum(remex_pool_running) "
                       "+ sum(remex_awaiters)",
                       {{"", 0}}),
            (std::map<std::string, double>{{"", 0}}));
  EXPECT_EQ(QueryUntil("sum(remex_pool_workers)", {{"", 12}}),
            (std::map<std::string, double>{{"", 12}}));
  EXPECT_EQ(QueryUntil("count(remex_build_info == 1)", {{"", 1}}),
            (std::map<std::string, double>{{"", 1}}));
  const auto memory = prometheus_->Query("process_resident_memory_bytes");
  ASSERT_TRUE(memory.ok());
  ASSERT_EQ(memory->size(), 1u);
  EXPECT_GT(memory->begin()->second, 1 << 20);

  // Prometheus loaded the alert rules, and none fires for a healthy server.
  const std::string rules = prometheus_->Get("/api/v1/rules");
  EXPECT_THAT(rules, HasSubstr("\"RemexDown\""));
  EXPECT_THAT(rules, HasSubstr("\"RemexTasksFailing\""));
  EXPECT_THAT(rules, Not(HasSubstr("\"health\":\"err\"")));
}

TEST_F(PrometheusTest, TheRealScrapePassesPromtoolCheckMetrics) {
  RunTheMix(server_->address());
  absl::StatusOr<testing::HttpResponse> scrape =
      testing::HttpGet(metrics_address_, "/metrics");
  ASSERT_TRUE(scrape.ok()) << scrape.status();
  ASSERT_EQ(scrape->status, 200);
  // Every remex family has samples by now.
  for (const char* family :
       {"remex_tasks_submitted_total{", "remex_tasks_rejected_total{",
        "remex_tasks_completed_total{", "remex_task_queue_seconds_bucket{",
        "remex_task_run_seconds_bucket{", "remex_pool_queue_depth{",
        "remex_pool_running{", "remex_pool_workers{", "remex_tasks_retained ",
        "remex_awaiters ", "remex_grpc_requests_total{",
        "remex_grpc_request_seconds_bucket{", "remex_build_info{",
        "process_resident_memory_bytes ", "process_open_fds ",
        "process_cpu_seconds_total ", "process_start_time_seconds ",
        "process_threads "}) {
    EXPECT_THAT(scrape->body, HasSubstr(family));
  }
  const std::string path =
      absl::StrCat(::testing::TempDir(), "remex_scrape_", getpid(), ".txt");
  std::ofstream(path) << scrape->body;
  absl::StatusOr<testing::ProcessResult> check = testing::RunProcess(
      {"/bin/sh", "-c", absl::StrCat(PROMTOOL_PATH, " check metrics < ", path)},
      absl::Seconds(30));
  std::remove(path.c_str());
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_EQ(check->exit_code, 0) << check->out << check->err;
  EXPECT_THAT(check->out + check->err, IsEmpty());
}

}  // namespace
}  // namespace remex
