// What one client can take from the others, against the real remex-server:
// List pages bounded in bytes, the open files limit, idle connections.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "remex/v1/executor.grpc.pb.h"
#include "tests/monitoring/http_get.h"
#include "tests/testing/free_port.h"
#include "tests/testing/server_test.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/wait.h"

namespace remex {
namespace {

using ::remex::v1::Executor;

constexpr absl::Duration kRpcDeadline = absl::Seconds(30);
constexpr absl::Duration kLongestShutdown = absl::Seconds(10);
// gRPC's default receive limit: what grpcurl and a default client read.
constexpr int kDefaultClientLimit = 4 << 20;
constexpr size_t kBigInput = size_t{40} << 20;

void SetDeadline(grpc::ClientContext* context) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + kRpcDeadline));
}

class LimitsTest : public testing::ServerTest {
 protected:
  LimitsTest() : ServerTest(kLongestShutdown) {}

  // A client that sends and reads up to `limit` bytes per message.
  std::unique_ptr<Executor::Stub> Stub(int limit) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(limit);
    args.SetMaxSendMessageSize(limit);
    return Executor::NewStub(grpc::CreateCustomChannel(
        server().address(), grpc::InsecureChannelCredentials(), args));
  }

  // Submits `echo` with `input` and waits for its end; returns its id.
  std::string EchoAndAwait(Executor::Stub& stub, std::string input) {
    v1::SubmitRequest submit;
    submit.set_function("echo");
    submit.set_input(std::move(input));
    v1::Task task;
    grpc::ClientContext submit_context;
    SetDeadline(&submit_context);
    EXPECT_TRUE(stub.Submit(&submit_context, submit, &task).ok());
    v1::AwaitRequest await;
    await.set_id(task.id());
    grpc::ClientContext await_context;
    SetDeadline(&await_context);
    v1::Task done;
    const grpc::Status status = stub.Await(&await_context, await, &done);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(done.state(), v1::SUCCEEDED);
    return task.id();
  }
};

TEST_F(LimitsTest, ListPagesStayReadableByDefaultClients) {
  StartServer({});
  std::unique_ptr<Executor::Stub> big = Stub(64 << 20);
  absl::flat_hash_set<std::string> small;
  absl::flat_hash_set<std::string> large;
  for (int i = 0; i < 3; ++i) small.insert(EchoAndAwait(*big, "small"));
  for (int i = 0; i < 2; ++i) {
    large.insert(EchoAndAwait(*big, std::string(kBigInput, 'x')));
  }
  for (int i = 0; i < 3; ++i) small.insert(EchoAndAwait(*big, "small"));

  // Paged through with the default page by a default client.
  std::unique_ptr<Executor::Stub> stub = Stub(kDefaultClientLimit);
  absl::flat_hash_set<std::string> listed;
  absl::flat_hash_set<std::string> trimmed;
  v1::ListRequest request;
  int pages = 0;
  do {
    ASSERT_LT(++pages, 100) << "List does not page on";
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::ListResponse response;
    const grpc::Status status = stub->List(&context, request, &response);
    ASSERT_TRUE(status.ok())
        << status.error_code() << " " << status.error_message();
    for (const v1::Task& task : response.tasks()) {
      EXPECT_TRUE(listed.insert(task.id()).second) << "twice: " << task.id();
      EXPECT_EQ(task.state(), v1::SUCCEEDED);
      const bool is_large = large.contains(task.id());
      EXPECT_EQ(task.output(), is_large ? "" : "small") << task.id();
    }
    trimmed.insert(response.trimmed_task_ids().begin(),
                   response.trimmed_task_ids().end());
    request.set_page_token(response.next_page_token());
  } while (!request.page_token().empty());
  EXPECT_EQ(listed.size(), small.size() + large.size());
  for (const std::string& id : small) EXPECT_TRUE(listed.contains(id)) << id;
  EXPECT_EQ(trimmed, large);

  // Get still returns a large task whole.
  v1::GetRequest get;
  get.set_id(*large.begin());
  grpc::ClientContext context;
  SetDeadline(&context);
  v1::Task whole;
  ASSERT_TRUE(big->Get(&context, get, &whole).ok());
  EXPECT_EQ(whole.output().size(), kBigInput);

  absl::StatusOr<testing::ProcessResult> cli = testing::RunProcess(
      {REMEX_CLI_PATH, "--server", server().address(), "list"}, kRpcDeadline);
  ASSERT_TRUE(cli.ok()) << cli.status();
  EXPECT_EQ(cli->exit_code, 0) << cli->err;
  EXPECT_TRUE(absl::StrContains(cli->out, *small.begin())) << cli->out;
}

// The soft limit of open files of process `pid`, from /proc/PID/limits.
rlim_t SoftOpenFilesLimit(pid_t pid) {
  std::ifstream limits(absl::StrCat("/proc/", pid, "/limits"));
  std::string line;
  while (std::getline(limits, line)) {
    if (!absl::StartsWith(line, "Max open files")) continue;
    const std::vector<std::string> fields =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    uint64_t soft = 0;
    if (fields.size() > 3 && absl::SimpleAtoi(fields[3], &soft)) return soft;
  }
  ADD_FAILURE() << "no open files limit for " << pid;
  return 0;
}

TEST_F(LimitsTest, RaisesItsOpenFilesLimitToTheHardLimit) {
  rlimit ours{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &ours), 0);
  // Started with a soft limit below the hard one (as shells give), if the
  // hard one allows.
  const rlimit original = ours;
  if (ours.rlim_max > 1024) ours.rlim_cur = 1024;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &ours), 0);
  StartServer({});
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &original), 0);
  EXPECT_EQ(SoftOpenFilesLimit(server_pid()), ours.rlim_max);
}

// Reads (and drops) what the server sends until it closes the connection;
// false if it is still open at `deadline`.
bool ClosedByPeerBefore(int fd, absl::Time deadline) {
  char buffer[4096];
  while (absl::Now() < deadline) {
    pollfd entry{fd, POLLIN, 0};
    const int ms =
        static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()) + 1);
    if (poll(&entry, 1, ms) <= 0) continue;
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n <= 0) return true;  // EOF or reset
  }
  return false;
}

// What a client sends first: the HTTP/2 preface and an empty SETTINGS
// frame (sizeof less the terminating NUL).
constexpr char kHello[] =
    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    "\x00\x00\x00\x04\x00\x00\x00\x00\x00";

// Connects to `address`, says hello, then nothing: expects the server to
// close the connection (bounded).
void ExpectIdleConnectionClosed(const std::string& address) {
  const int fd = testing::ConnectLoopback(address);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, kHello, sizeof(kHello) - 1),
            static_cast<ssize_t>(sizeof(kHello) - 1));
  EXPECT_TRUE(ClosedByPeerBefore(fd, absl::Now() + absl::Seconds(20)));
  close(fd);
}

TEST_F(LimitsTest, ClosesIdleConnections) {
  StartServer({"--max-connection-idle", "500ms"});
  ExpectIdleConnectionClosed(server().address());
}

TEST_F(LimitsTest, ConfigSetsTheIdleTime) {
  StartServer(
      {"--config", WriteFile("idle.yaml", "max_connection_idle: 500ms\n")});
  ExpectIdleConnectionClosed(server().address());
}

// Open file descriptors of `pid`.
int OpenFds(pid_t pid) {
  int count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(
           absl::StrCat("/proc/", pid, "/fd"))) {
    ++count;
  }
  return count;
}

// The value of the sample named `name` in a /metrics text; -1 if absent.
double Sample(const std::string& metrics, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(metrics, '\n')) {
    if (!absl::StartsWith(line, name + " ")) continue;
    double value = 0;
    if (absl::SimpleAtod(line.substr(name.size() + 1), &value)) return value;
  }
  return -1;
}

// Connections past the fd ceiling are refused at once; pools keep their
// reserve (a crashed process worker is replaced); the listener outlives
// the flood (with gRPC 1.51 alone, one EMFILE on accept stopped it for
// good).
TEST_F(LimitsTest, ConnectionsStopShortOfTheFdReserveAndTheListenerLives) {
  constexpr rlim_t kLimit = 400;
  StartServer(
      {"--enable-test-functions", "--config", WriteFile("fds.yaml", R"(pools:
  - {name: default, kind: thread, workers: 2}
  - {name: process, kind: process, workers: 1}
)")});
  // Lowered from outside, as an operator would with prlimit(1): the guard
  // reads the limit as it is.
  const rlimit low{.rlim_cur = kLimit, .rlim_max = kLimit};
  ASSERT_EQ(prlimit(server_pid(), RLIMIT_NOFILE, &low, nullptr), 0)
      << strerror(errno);
  // 64 + 8 per worker.
  constexpr int kCeiling = kLimit - (64 + 8 * 3);
  // Connected before the flood, and kept.
  std::unique_ptr<Executor::Stub> stub = Stub(kDefaultClientLimit);
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::ListFunctionsResponse functions;
    ASSERT_TRUE(
        stub->ListFunctions(&context, v1::ListFunctionsRequest(), &functions)
            .ok());
  }
  const absl::StatusOr<std::string> metrics_address = server().MetricsAddress();
  ASSERT_TRUE(metrics_address.ok()) << metrics_address.status();

  std::vector<int> flood;
  for (int i = 0; i < static_cast<int>(kLimit) + 100; ++i) {
    const int fd = testing::ConnectLoopback(server().address());
    ASSERT_GE(fd, 0);
    flood.push_back(fd);
    // Written blindly: a refused connection may be reset already.
    (void)send(fd, kHello, sizeof(kHello) - 1, MSG_NOSIGNAL);
  }
  EXPECT_TRUE(testing::WaitUntil([&] {
    const absl::StatusOr<testing::HttpResponse> page =
        testing::HttpGet(*metrics_address, "/metrics");
    return page.ok() &&
           Sample(page->body, "remex_connections_refused_total") >= 100;
  })) << "the flood was not refused";
  EXPECT_LE(OpenFds(server_pid()), kCeiling + 8);
  const absl::StatusOr<testing::HttpResponse> page =
      testing::HttpGet(*metrics_address, "/metrics");
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(Sample(page->body, "remex_connections_limit"), kCeiling);
  EXPECT_EQ(Sample(page->body, "remex_fd_reserve"), kLimit - kCeiling);
  EXPECT_GE(Sample(page->body, "remex_connections_open"), 100);

  // Again, while the process pool's worker crashes and is replaced: its
  // channel and pidfd come out of the reserve.
  for (const int fd : flood) close(fd);
  flood.clear();
  std::vector<int> second_flood;
  v1::SubmitRequest crash;
  crash.set_function("crash");
  crash.set_pool("process");
  (*crash.mutable_args()->mutable_struct_value()->mutable_fields())["how"]
      .set_string_value("exit");
  v1::Task task;
  grpc::ClientContext crash_context;
  SetDeadline(&crash_context);
  ASSERT_TRUE(stub->Submit(&crash_context, crash, &task).ok());
  for (int i = 0; i < static_cast<int>(kLimit) + 100; ++i) {
    const int fd = testing::ConnectLoopback(server().address());
    ASSERT_GE(fd, 0);
    second_flood.push_back(fd);
    (void)send(fd, kHello, sizeof(kHello) - 1, MSG_NOSIGNAL);
  }
  v1::SubmitRequest echo;
  echo.set_function("echo");
  echo.set_pool("process");
  echo.set_input("after the crash");
  grpc::ClientContext echo_context;
  SetDeadline(&echo_context);
  grpc::Status status = stub->Submit(&echo_context, echo, &task);
  ASSERT_TRUE(status.ok()) << status.error_message();
  v1::AwaitRequest await;
  await.set_id(task.id());
  grpc::ClientContext await_context;
  SetDeadline(&await_context);
  v1::Task done;
  status = stub->Await(&await_context, await, &done);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(done.state(), v1::SUCCEEDED) << done.error().message();
  EXPECT_EQ(done.output(), "after the crash");
  for (const int fd : second_flood) close(fd);

  // A new client is served once the flood is gone.
  EXPECT_TRUE(testing::WaitUntil([&] {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::ListFunctionsRequest request;
    v1::ListFunctionsResponse response;
    return Stub(kDefaultClientLimit)
        ->ListFunctions(&context, request, &response)
        .ok();
  }));
}

TEST_F(LimitsTest, HelpDocumentsTheLimitFlags) {
  const testing::ProcessResult result =
      testing::RunServerExpectingExit({"--help"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(result.out, "--max-connection-idle"));
  std::ifstream readme(REMEX_README_PATH);
  const std::string text((std::istreambuf_iterator<char>(readme)),
                         std::istreambuf_iterator<char>());
  EXPECT_TRUE(absl::StrContains(text, "| `--max-connection-idle"));
}

}  // namespace
}  // namespace remex
