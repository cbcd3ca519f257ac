// The real remex-server's metrics endpoint: --metrics-listen, gRPC calls and
// parked Awaits as the server counts them.
#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "remex/remex.h"
#include "remex/v1/executor.grpc.pb.h"
#include "tests/monitoring/http_get.h"
#include "tests/testing/server_process.h"
#include "tests/testing/server_test.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/wait.h"

namespace remex {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::ServerProcess;

// The value of `series` (exactly as the text format writes it: labels in
// name order) in a scrape of `address`, -1 if it is not there.
double Scrape(const std::string& address, const std::string& series) {
  absl::StatusOr<testing::HttpResponse> answer =
      testing::HttpGet(address, "/metrics");
  if (!answer.ok()) return -1;
  for (absl::string_view line : absl::StrSplit(answer->body, '\n')) {
    double value = 0;
    if (absl::ConsumePrefix(&line, series) && absl::ConsumePrefix(&line, " ") &&
        absl::SimpleAtod(line, &value)) {
      return value;
    }
  }
  return -1;
}

// Polls until `series` reads `expected` (10 s at most); the last value.
double ScrapeUntil(const std::string& address, const std::string& series,
                   double expected) {
  double value = -1;
  testing::WaitUntil(
      [&] {
        value = Scrape(address, series);
        return value == expected;
      },
      absl::Seconds(10));
  return value;
}

// Starts a server and reads its metrics address; fails the test (fatally)
// if either is missing.
void StartWithMetrics(std::unique_ptr<ServerProcess>& server,
                      std::string& metrics) {
  server = testing::StartServer();
  ASSERT_NE(server, nullptr);
  absl::StatusOr<std::string> address = server->MetricsAddress();
  ASSERT_TRUE(address.ok()) << address.status();
  metrics = *address;
}

TEST(ServerMetricsTest, MetricsListenNoneServesNoMetrics) {
  auto server = ServerProcess::Start({"--metrics-listen", "none"});
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->MetricsAddress(absl::Milliseconds(500)).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_THAT((*server)->ServerOutput(), Not(HasSubstr("metrics listening")));
}

TEST(ServerMetricsTest, AMetricsPortInUseExitsOneNamingIt) {
  auto first = ServerProcess::Start();
  ASSERT_TRUE(first.ok()) << first.status();
  auto metrics = (*first)->MetricsAddress();
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  auto second =
      testing::RunProcess({REMEX_SERVER_PATH, "--listen", "127.0.0.1:0",
                           "--metrics-listen", *metrics},
                          absl::Seconds(20));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->exit_code, 1);
  EXPECT_THAT(second->err,
              HasSubstr(absl::StrCat("cannot serve metrics on ", *metrics)));
  EXPECT_THAT(second->out, Not(HasSubstr("listening on")));
}

TEST(ServerMetricsTest, CountsCallsByMethodAndCodeAndParkedAwaits) {
  std::unique_ptr<ServerProcess> server;
  std::string metrics;
  ASSERT_NO_FATAL_FAILURE(StartWithMetrics(server, metrics));
  Client client(server->address());

  ASSERT_TRUE(client.ListFunctions().ok());
  EXPECT_EQ(client.Get("no-such-task").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Scrape(metrics,
                   "remex_grpc_requests_total{code=\"NOT_FOUND\","
                   "method=\"Get\"}"),
            1);
  EXPECT_EQ(Scrape(metrics,
                   "remex_grpc_requests_total{code=\"OK\","
                   "method=\"ListFunctions\"}"),
            1);
  EXPECT_EQ(Scrape(metrics,
                   "remex_grpc_request_seconds_count{method="
                   "\"ListFunctions\"}"),
            1);

  // An Await parked on a running task shows in remex_awaiters until the
  // task ends.
  Future sleeper = client.Submit("sleep", Json(R"({"ms": 600000})"));
  std::thread awaiter([&client, &sleeper] {
    EXPECT_TRUE(client.Await(sleeper.id(), absl::Seconds(60)).ok());
  });
  EXPECT_EQ(ScrapeUntil(metrics, "remex_awaiters", 1), 1);
  EXPECT_EQ(Scrape(metrics, "remex_pool_running{pool=\"default\"}"), 1);
  EXPECT_TRUE(sleeper.cancel());
  awaiter.join();
  EXPECT_EQ(ScrapeUntil(metrics, "remex_awaiters", 0), 0);
  EXPECT_EQ(Scrape(metrics,
                   "remex_grpc_requests_total{code=\"OK\","
                   "method=\"Await\"}"),
            Scrape(metrics,
                   "remex_grpc_request_seconds_count{method="
                   "\"Await\"}"));
  EXPECT_GE(Scrape(metrics,
                   "remex_grpc_requests_total{code=\"OK\","
                   "method=\"Await\"}"),
            1);
  EXPECT_EQ(Scrape(metrics,
                   "remex_tasks_completed_total{function=\"sleep\","
                   "pool=\"default\",state=\"cancelled\"}"),
            1);
}

TEST(ServerMetricsTest, ASessionStreamCountsOnceWhenItEnds) {
  std::unique_ptr<ServerProcess> server;
  std::string metrics;
  ASSERT_NO_FATAL_FAILURE(StartWithMetrics(server, metrics));
  const std::string session_ok =
      "remex_grpc_requests_total{code=\"OK\",method=\"Session\"}";
  {
    Client client(server->address());  // the SDK's default: a Session
    for (int i = 0; i < 3; ++i) {
      EXPECT_TRUE(client.Submit("echo", Json(R"({"x": 1})")).result().ok());
    }
    // Open, so not counted yet; its tasks go through no unary Submit.
    EXPECT_EQ(Scrape(metrics, session_ok), 0);
    EXPECT_EQ(Scrape(metrics,
                     "remex_grpc_requests_total{code=\"OK\","
                     "method=\"Submit\"}"),
              0);
  }
  // The client half-closed its stream; the server ends it OK.
  EXPECT_EQ(ScrapeUntil(metrics, session_ok, 1), 1);
  EXPECT_EQ(
      Scrape(metrics, "remex_grpc_request_seconds_count{method=\"Session\"}"),
      1);
}

TEST(ServerMetricsTest, AnAwaitTheClientGaveUpOnCountsOnceAsCancelled) {
  std::unique_ptr<ServerProcess> server;
  std::string metrics;
  ASSERT_NO_FATAL_FAILURE(StartWithMetrics(server, metrics));
  // Raw calls only, so that every Await is this test's.
  auto stub = v1::Executor::NewStub(grpc::CreateChannel(
      server->address(), grpc::InsecureChannelCredentials()));
  v1::Task sleeper;
  {
    grpc::ClientContext context;
    v1::SubmitRequest request;
    request.set_function("sleep");
    (*request.mutable_args()->mutable_struct_value()->mutable_fields())["ms"]
        .set_number_value(600000);
    ASSERT_TRUE(stub->Submit(&context, request, &sleeper).ok());
  }
  {
    // No timeout of its own: cut by its RPC deadline.
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
    v1::AwaitRequest request;
    request.set_id(sleeper.id());
    v1::Task task;
    EXPECT_EQ(stub->Await(&context, request, &task).error_code(),
              grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  EXPECT_EQ(ScrapeUntil(metrics,
                        "remex_grpc_requests_total{code=\"CANCELLED\","
                        "method=\"Await\"}",
                        1),
            1);
  {
    grpc::ClientContext context;
    v1::CancelRequest request;
    request.set_id(sleeper.id());
    v1::Task task;
    ASSERT_TRUE(stub->Cancel(&context, request, &task).ok());
    EXPECT_EQ(task.state(), v1::CANCELLED);
  }
  EXPECT_EQ(ScrapeUntil(metrics, "remex_awaiters", 0), 0);
  // Counted once: the task's end later finds the call gone.
  EXPECT_EQ(
      Scrape(metrics, "remex_grpc_request_seconds_count{method=\"Await\"}"), 1);
  EXPECT_EQ(Scrape(metrics,
                   "remex_grpc_requests_total{code=\"OK\",method=\"Await\"}"),
            0);
}

}  // namespace
}  // namespace remex
