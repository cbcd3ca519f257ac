// Integration tests of the remex.v1.Executor gRPC API. Each test starts the
// real remex-server on 127.0.0.1 port 0 and talks to it through the generated
// stubs, exactly as any client would. Every RPC carries a deadline. The
// task-model cases (TaskModelTest) are the store conformance suite: each
// runs with --store memory and with a fresh PostgreSQL database.
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/types.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "health.grpc.pb.h"
#include "remex/v1/executor.grpc.pb.h"
#include "server/auth/principals.h"
#include "tests/testing/server_process.h"
#include "tests/testing/server_test.h"
#include "tests/testing/store_param.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace remex {
namespace {

using ::grpc::StatusCode;
using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckResponse;
using ::remex::testing::RunServerExpectingExit;
using ::remex::testing::ServerProcess;
using ::remex::testing::StoreKind;
using ::remex::testing::WaitUntil;
using ::remex::v1::Executor;
using ::remex::v1::State;
using ::remex::v1::Task;

// Deadline of every unary RPC that is not meant to wait.
constexpr absl::Duration kRpcDeadline = absl::Seconds(10);
// Room for timing checks: the machine is shared and may be loaded.
constexpr absl::Duration kSlack = absl::Seconds(3);
// Threads the server may start while many calls are parked (gRPC internals).
constexpr int kThreadSlack = 4;
// Bound on a clean shutdown at the end of a test (grace 1 s by default).
constexpr absl::Duration kLongestShutdown = absl::Seconds(10);
// Bound on a server run that must end by itself (bad flags, --help).
constexpr absl::Duration kServerRunTimeout = absl::Seconds(20);
// A sleep that outlives every test unless something ends it.
constexpr absl::string_view kLongSleep = R"({"ms":600000})";

void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

::testing::AssertionResult HasCode(const grpc::Status& status,
                                   StatusCode code) {
  if (status.error_code() == code) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "RPC status " << status.error_code() << " ("
         << status.error_message() << "), want " << code;
}

::testing::AssertionResult IsOk(const grpc::Status& status) {
  return HasCode(status, StatusCode::OK);
}

google::protobuf::Value JsonValue(absl::string_view json) {
  google::protobuf::Value value;
  EXPECT_TRUE(
      google::protobuf::util::JsonStringToMessage(std::string(json), &value)
          .ok())
      << json;
  return value;
}

google::protobuf::Duration ProtoDuration(absl::Duration duration) {
  google::protobuf::Duration proto;
  proto.set_seconds(absl::ToInt64Seconds(duration));
  proto.set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(duration % absl::Seconds(1))));
  return proto;
}

absl::Time ToTime(const google::protobuf::Timestamp& timestamp) {
  return absl::FromUnixSeconds(timestamp.seconds()) +
         absl::Nanoseconds(timestamp.nanos());
}

v1::SubmitRequest Request(absl::string_view function, absl::string_view args) {
  v1::SubmitRequest request;
  request.set_function(std::string(function));
  *request.mutable_args() = JsonValue(args);
  return request;
}

// A request of type Request for task `id`.
template <typename Request>
Request WithId(const std::string& id) {
  Request request;
  request.set_id(id);
  return request;
}

// Threads of process `pid` (the "Threads:" line of /proc/PID/status), or -1.
int ThreadCount(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    absl::string_view rest = line;
    if (!absl::ConsumePrefix(&rest, "Threads:")) continue;
    int threads = -1;
    return absl::SimpleAtoi(rest, &threads) ? threads : -1;
  }
  return -1;
}

std::vector<std::string> Ids(
    const google::protobuf::RepeatedPtrField<Task>& tasks) {
  std::vector<std::string> ids;
  for (const Task& task : tasks) ids.push_back(task.id());
  return ids;
}

// Await calls parked on one completion queue: as many as wanted, without a
// thread each. Not thread-safe; pending calls are cancelled on destruction.
class ParkedAwaits {
 public:
  struct Call {
    grpc::ClientContext context;
    Task task;
    grpc::Status status;
    bool done = false;
    std::unique_ptr<grpc::ClientAsyncResponseReader<Task>> reader;
  };

  explicit ParkedAwaits(Executor::Stub* stub) : stub_(stub) {}
  ParkedAwaits(const ParkedAwaits&) = delete;
  ParkedAwaits& operator=(const ParkedAwaits&) = delete;
  ~ParkedAwaits();

  // Starts an Await of task `id` with no timeout.
  void Park(const std::string& id);
  // Waits until every call has returned or `deadline` passes, calling `tick`
  // about every 50 ms meanwhile. Returns whether every call returned.
  bool WaitAll(absl::Time deadline, absl::FunctionRef<void()> tick);
  bool WaitAll(absl::Time deadline) {
    return WaitAll(deadline, [] {});
  }

  const std::vector<std::unique_ptr<Call>>& calls() const { return calls_; }

 private:
  Executor::Stub* const stub_;
  grpc::CompletionQueue cq_;
  std::vector<std::unique_ptr<Call>> calls_;
  int pending_ = 0;
};

ParkedAwaits::~ParkedAwaits() {
  for (const auto& call : calls_) {
    if (!call->done) call->context.TryCancel();
  }
  cq_.Shutdown();
  void* tag;
  bool ok;
  while (cq_.Next(&tag, &ok)) {
  }
}

void ParkedAwaits::Park(const std::string& id) {
  auto call = std::make_unique<Call>();
  SetDeadline(&call->context, absl::Seconds(90));
  v1::AwaitRequest request;
  request.set_id(id);
  call->reader = stub_->AsyncAwait(&call->context, request, &cq_);
  call->reader->Finish(&call->task, &call->status, call.get());
  calls_.push_back(std::move(call));
  ++pending_;
}

bool ParkedAwaits::WaitAll(absl::Time deadline,
                           absl::FunctionRef<void()> tick) {
  while (pending_ > 0 && absl::Now() < deadline) {
    void* tag;
    bool ok;
    const absl::Time until =
        std::min(deadline, absl::Now() + absl::Milliseconds(50));
    if (cq_.AsyncNext(&tag, &ok, absl::ToChronoTime(until)) ==
        grpc::CompletionQueue::GOT_EVENT) {
      static_cast<Call*>(tag)->done = true;
      --pending_;
    } else {
      tick();
    }
  }
  return pending_ == 0;
}

// A test against one remex-server (or several in turn), talking to it
// through the generated stubs. Not thread-safe: the test's thread uses it.
class RpcFixture : public testing::ServerTest {
 protected:
  RpcFixture() : ServerTest(kLongestShutdown) {}

  // Starts remex-server with `args` (after --listen 127.0.0.1:0), the store
  // of store_args_ and a short --shutdown-grace unless `args` choose one,
  // and connects to it (replacing any server started before).
  void StartServer(std::vector<std::string> args = {}) {
    if (std::find(args.begin(), args.end(), "--shutdown-grace") == args.end()) {
      args.insert(args.end(), {"--shutdown-grace", "1s"});
    }
    args.insert(args.end(), store_args_.begin(), store_args_.end());
    ASSERT_NO_FATAL_FAILURE(ServerTest::StartServer(std::move(args)));
    auto channel = grpc::CreateChannel(server().address(),
                                       grpc::InsecureChannelCredentials());
    stub_ = Executor::NewStub(channel);
    health_ = Health::NewStub(channel);
  }

  // The bearer token every call sends from now on; none if empty.
  void UseToken(std::string token) { token_ = std::move(token); }
  // Adds the token of UseToken to a call's metadata.
  void Authorize(grpc::ClientContext* context) const {
    if (!token_.empty()) {
      context->AddMetadata("authorization", absl::StrCat("Bearer ", token_));
    }
  }

  // Starts it with `config_json` as its --config file.
  void StartServerWithConfig(absl::string_view config_json,
                             std::vector<std::string> args = {}) {
    args.insert(
        args.end(),
        {"--config",
         WriteFile(absl::StrCat("config_", ++configs_, ".json"), config_json)});
    StartServer(std::move(args));
  }

  // Starts it with one thread pool, "default", of the given size.
  void StartServerWithPool(int workers, int max_queue,
                           std::vector<std::string> args = {}) {
    StartServerWithConfig(
        absl::StrCat(R"({"pools":[{"name":"default","kind":"thread",)",
                     R"("workers":)", workers, R"(,"max_queue":)", max_queue,
                     "}]}"),
        std::move(args));
  }

  // Calls a unary method of the Executor stub with a deadline.
  template <typename Request, typename Response>
  grpc::Status Call(grpc::Status (Executor::Stub::*method)(grpc::ClientContext*,
                                                           const Request&,
                                                           Response*),
                    const Request& request, Response* response,
                    absl::Duration deadline = kRpcDeadline) {
    grpc::ClientContext context;
    SetDeadline(&context, deadline);
    Authorize(&context);
    return (stub_.get()->*method)(&context, request, response);
  }

  Task Submit(const v1::SubmitRequest& request) {
    Task task;
    EXPECT_TRUE(IsOk(Call(&Executor::Stub::Submit, request, &task)))
        << request.ShortDebugString();
    return task;
  }
  Task Submit(absl::string_view function, absl::string_view args) {
    return Submit(Request(function, args));
  }
  grpc::Status TrySubmit(absl::string_view function, absl::string_view args) {
    Task task;
    return Call(&Executor::Stub::Submit, Request(function, args), &task);
  }

  grpc::Status TryAwait(const std::string& id, Task* task,
                        absl::Duration timeout = absl::ZeroDuration()) {
    v1::AwaitRequest request;
    request.set_id(id);
    if (timeout > absl::ZeroDuration()) {
      *request.mutable_timeout() = ProtoDuration(timeout);
    }
    return Call(&Executor::Stub::Await, request, task, timeout + kRpcDeadline);
  }
  // Waits until task `id` is terminal.
  Task Await(const std::string& id) {
    Task task;
    EXPECT_TRUE(IsOk(TryAwait(id, &task))) << id;
    return task;
  }

  grpc::Status TryGet(const std::string& id, Task* task) {
    return Call(&Executor::Stub::Get, WithId<v1::GetRequest>(id), task);
  }
  Task Get(const std::string& id) {
    Task task;
    EXPECT_TRUE(IsOk(TryGet(id, &task))) << id;
    return task;
  }
  grpc::Status TryCancel(const std::string& id, Task* task) {
    return Call(&Executor::Stub::Cancel, WithId<v1::CancelRequest>(id), task);
  }
  Task Cancel(const std::string& id) {
    Task task;
    EXPECT_TRUE(IsOk(TryCancel(id, &task))) << id;
    return task;
  }
  grpc::Status TryDelete(const std::string& id) {
    google::protobuf::Empty empty;
    return Call(&Executor::Stub::Delete, WithId<v1::DeleteRequest>(id), &empty);
  }

  v1::ListResponse List(const v1::ListRequest& request) {
    v1::ListResponse response;
    EXPECT_TRUE(IsOk(Call(&Executor::Stub::List, request, &response)));
    return response;
  }
  // Ids of the tasks List returns (first page) for these filters.
  std::vector<std::string> ListIds(State state, absl::string_view function,
                                   absl::string_view pool) {
    v1::ListRequest request;
    request.set_state(state);
    request.set_function(std::string(function));
    request.set_pool(std::string(pool));
    return Ids(List(request).tasks());
  }

  v1::ListFunctionsResponse ListFunctions() {
    v1::ListFunctionsResponse response;
    EXPECT_TRUE(IsOk(Call(&Executor::Stub::ListFunctions,
                          v1::ListFunctionsRequest(), &response)));
    return response;
  }

  // The server's overall health; UNKNOWN when the check itself fails.
  HealthCheckResponse::ServingStatus HealthStatus() {
    grpc::ClientContext context;
    SetDeadline(&context, kRpcDeadline);
    HealthCheckResponse response;
    const grpc::Status status = health_->Check(
        &context, grpc::health::v1::HealthCheckRequest(), &response);
    return status.ok() ? response.status() : HealthCheckResponse::UNKNOWN;
  }

  // Polls task `id` until it is in `state`; false if it is not in time.
  bool WaitForState(const std::string& id, State state) {
    Task task;
    if (WaitUntil(
            [&] { return TryGet(id, &task).ok() && task.state() == state; },
            kRpcDeadline)) {
      return true;
    }
    ADD_FAILURE() << id << " never reached " << State_Name(state)
                  << "; last seen " << task.ShortDebugString();
    return false;
  }

  // Starts a long sleep and waits until it runs.
  Task StartBlocker() {
    Task task = Submit("sleep", kLongSleep);
    EXPECT_TRUE(WaitForState(task.id(), v1::RUNNING));
    return task;
  }

  Executor::Stub* stub() { return stub_.get(); }

  // Empty for the default store (memory).
  std::vector<std::string> store_args_;

 private:
  // The server waits for open connections (up to 250 ms) when it stops.
  void CloseConnections() override {
    stub_.reset();
    health_.reset();
  }

  int configs_ = 0;
  std::string token_;
  std::unique_ptr<Executor::Stub> stub_;
  std::unique_ptr<Health::Stub> health_;
};

// What does not depend on where tasks live (functions, health, checks of the
// request, start-up): the default store only.
class RpcTest : public RpcFixture {};

// The task model, once per store: the same cases against `--store memory`
// and against a fresh PostgreSQL database (one PostgreSQL per binary).
class TaskModelTest : public RpcFixture,
                      public ::testing::WithParamInterface<StoreKind> {
 protected:
  void SetUp() override {
    store_url_ = FreshStoreUrl(GetParam());
    ASSERT_TRUE(store_url_.ok()) << store_url_.status();
    store_args_ = {"--store", *store_url_};
  }

  bool durable() const { return GetParam() == StoreKind::kPostgres; }
  // The --store value of this test's servers.
  const std::string& store_url() const { return *store_url_; }

  // Rows of `sql` on this test's database (durable() only).
  std::vector<std::vector<std::string>> QueryStore(const std::string& sql) {
    absl::StatusOr<testing::PostgresServer*> postgres =
        testing::SharedPostgres();
    EXPECT_TRUE(postgres.ok()) << postgres.status();
    if (!postgres.ok()) return {};
    absl::StatusOr<std::vector<std::vector<std::string>>> rows =
        (*postgres)->Query(store_url(), sql);
    EXPECT_TRUE(rows.ok()) << rows.status();
    return rows.ok() ? *std::move(rows)
                     : std::vector<std::vector<std::string>>{};
  }

  // Watches (seq 1) and cancels (seq 2) task `id` over one Session stream,
  // with the token of UseToken; returns the code each was answered with
  // (OK for accepted or done), by seq. A seq missing: no answer in time.
  absl::flat_hash_map<uint64_t, StatusCode> WatchAndCancelOverSession(
      const std::string& id);

  // SigtermDrain... with the durable store: queued tasks are handed back,
  // running ones stopped for the next start.
  void ExpectDrainHandsQueuedTasksBack();

 private:
  absl::StatusOr<std::string> store_url_;
};

absl::flat_hash_map<uint64_t, StatusCode>
TaskModelTest::WatchAndCancelOverSession(const std::string& id) {
  grpc::ClientContext context;
  SetDeadline(&context, kRpcDeadline);
  Authorize(&context);
  std::unique_ptr<
      grpc::ClientReaderWriter<v1::SessionRequest, v1::SessionResponse>>
      stream = stub()->Session(&context);
  v1::SessionRequest request;
  v1::SessionWatch* watch = request.add_watches();
  watch->set_seq(1);
  watch->set_id(id);
  v1::SessionCancel* cancel = request.add_cancels();
  cancel->set_seq(2);
  cancel->set_id(id);
  absl::flat_hash_map<uint64_t, StatusCode> answers;
  if (!stream->Write(request)) {
    ADD_FAILURE() << "the Session stream refused the request";
    return answers;
  }
  v1::SessionResponse response;
  while (answers.size() < 2 && stream->Read(&response)) {
    for (const auto& item : response.accepted()) {
      answers.emplace(item.seq(), StatusCode::OK);
    }
    for (const auto& item : response.done()) {
      answers.emplace(item.seq(), StatusCode::OK);
    }
    for (const auto& item : response.failed()) {
      answers[item.seq()] = static_cast<StatusCode>(item.error().code());
    }
  }
  context.TryCancel();
  (void)stream->Finish();
  return answers;
}

INSTANTIATE_TEST_SUITE_P(Stores, TaskModelTest,
                         ::testing::ValuesIn(testing::kAllStores),
                         testing::StoreKindName);

// --- Methods -----------------------------------------------------------------

TEST_P(TaskModelTest, SubmitEchoThenAwaitSucceedsWithArgsAsResult) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  v1::SubmitRequest request = Request("echo", R"({"x":1,"y":["a",true]})");
  request.set_input("raw bytes");
  (*request.mutable_labels())["team"] = "core";

  const Task submitted = Submit(request);
  EXPECT_FALSE(submitted.id().empty());
  EXPECT_EQ(submitted.function(), "echo");
  EXPECT_EQ(submitted.pool(), "default");
  EXPECT_TRUE(submitted.state() == v1::QUEUED ||
              submitted.state() == v1::RUNNING ||
              submitted.state() == v1::SUCCEEDED)
      << State_Name(submitted.state());

  const Task done = Await(submitted.id());
  EXPECT_EQ(done.id(), submitted.id());
  EXPECT_EQ(done.state(), v1::SUCCEEDED);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
      done.result(), request.args()))
      << done.result().ShortDebugString();
  EXPECT_EQ(done.output(), "raw bytes");
  const auto label = done.labels().find("team");
  ASSERT_NE(label, done.labels().end());
  EXPECT_EQ(label->second, "core");
  EXPECT_EQ(done.attempt(), 1);
  EXPECT_LE(ToTime(done.created_at()), ToTime(done.started_at()));
  EXPECT_LE(ToTime(done.started_at()), ToTime(done.finished_at()));
}

TEST_P(TaskModelTest, BuiltinsComputeTheirResults) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const Task sha = Await(Submit("sha256", R"({"text":"abc"})").id());
  EXPECT_EQ(sha.result().string_value(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const Task primes = Await(Submit("primes", R"({"n":100})").id());
  EXPECT_EQ(primes.result().number_value(), 25);
  EXPECT_EQ(Await(Submit("spin", R"({"ms":10})").id()).state(), v1::SUCCEEDED);
}

TEST_P(TaskModelTest, AwaitWithTimeoutReturnsTaskAsItStands) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const Task sleeping = Submit("sleep", R"({"ms":5000})");
  constexpr absl::Duration kTimeout = absl::Milliseconds(300);

  const absl::Time start = absl::Now();
  Task task;
  ASSERT_TRUE(IsOk(TryAwait(sleeping.id(), &task, kTimeout)));
  const absl::Duration waited = absl::Now() - start;

  EXPECT_TRUE(task.state() == v1::QUEUED || task.state() == v1::RUNNING)
      << State_Name(task.state());
  EXPECT_GE(waited, kTimeout - absl::Milliseconds(50));
  EXPECT_LT(waited, kTimeout + kSlack);
  Cancel(sleeping.id());
}

TEST_P(TaskModelTest, CancelOfRunningSleepEndsItCancelled) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const Task running = StartBlocker();
  const absl::Time start = absl::Now();

  const Task answer = Cancel(running.id());
  EXPECT_TRUE(answer.cancel_requested());
  const Task done = Await(running.id());
  EXPECT_EQ(done.state(), v1::CANCELLED);
  EXPECT_TRUE(done.cancel_requested());
  EXPECT_LT(absl::Now() - start, kSlack);
}

TEST_P(TaskModelTest, CancelOfQueuedTaskEndsItAtOnceWithoutStarting) {
  ASSERT_NO_FATAL_FAILURE(StartServerWithPool(1, 10));
  const Task blocker = StartBlocker();
  const Task queued = Submit("echo", "{}");

  const Task answer = Cancel(queued.id());
  EXPECT_EQ(answer.state(), v1::CANCELLED);
  EXPECT_EQ(answer.attempt(), 0);
  EXPECT_FALSE(answer.has_started_at());
  Cancel(blocker.id());
}

TEST_P(TaskModelTest, CancelOfFinishedTaskLeavesItAsItIs) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const Task done = Await(Submit("echo", R"({"x":1})").id());
  ASSERT_EQ(done.state(), v1::SUCCEEDED);

  EXPECT_EQ(Cancel(done.id()).state(), v1::SUCCEEDED);
  EXPECT_EQ(Get(done.id()).state(), v1::SUCCEEDED);
}

TEST_P(TaskModelTest, GetReturnsTheTask) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const Task submitted = Submit("echo", R"({"x":1})");
  const Task done = Await(submitted.id());

  const Task got = Get(submitted.id());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(got, done))
      << got.ShortDebugString() << " vs " << done.ShortDebugString();
}

TEST_P(TaskModelTest, ListFiltersByStateFunctionAndPool) {
  ASSERT_NO_FATAL_FAILURE(StartServerWithConfig(
      R"({"pools":[{"name":"default","kind":"thread","workers":2},)"
      R"({"name":"other","kind":"thread","workers":1}]})"));
  std::vector<std::string> echoes, failures;
  for (int i = 0; i < 3; ++i) echoes.push_back(Submit("echo", "{}").id());
  for (int i = 0; i < 2; ++i) {
    failures.push_back(Submit("fail", R"({"message":"no"})").id());
  }
  v1::SubmitRequest elsewhere = Request("echo", "{}");
  elsewhere.set_pool("other");
  const std::string other = Submit(elsewhere).id();
  for (const auto& id : echoes) Await(id);
  for (const auto& id : failures) Await(id);
  Await(other);

  EXPECT_EQ(ListIds(v1::FAILED, "", ""), failures);
  EXPECT_EQ(ListIds(v1::STATE_UNSPECIFIED, "fail", ""), failures);
  EXPECT_EQ(ListIds(v1::STATE_UNSPECIFIED, "", "other"),
            std::vector<std::string>{other});
  EXPECT_EQ(ListIds(v1::SUCCEEDED, "echo", "default"), echoes);
  EXPECT_TRUE(ListIds(v1::RUNNING, "", "").empty());
  EXPECT_EQ(ListIds(v1::STATE_UNSPECIFIED, "", "").size(), 6u);
}

TEST_P(TaskModelTest, ListPagesCoverEveryTaskOnceOldestFirst) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  constexpr int kTasks = 7;
  constexpr int kPageSize = 3;
  std::vector<std::string> submitted;
  for (int i = 0; i < kTasks; ++i)
    submitted.push_back(Submit("echo", "{}").id());

  std::vector<std::string> listed;
  v1::ListRequest request;
  request.set_page_size(kPageSize);
  for (int page = 0; page <= kTasks; ++page) {
    const v1::ListResponse response = List(request);
    EXPECT_LE(response.tasks_size(), kPageSize);
    for (const Task& task : response.tasks()) listed.push_back(task.id());
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
  }
  EXPECT_EQ(listed, submitted);
}

TEST_P(TaskModelTest, ListRefusesAPageTokenTheServerDidNotMake) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string first = Submit("echo", "{}").id();
  const std::string second = Submit("echo", "{}").id();
  v1::ListRequest request;
  request.set_page_size(1);
  const v1::ListResponse page = List(request);
  ASSERT_EQ(Ids(page.tasks()), std::vector<std::string>{first});
  ASSERT_FALSE(page.next_page_token().empty());

  // An id (what tokens were before), garbage, and a token from the future.
  for (const std::string& token :
       {first, std::string("garbage"), std::string("p99999999")}) {
    request.set_page_token(token);
    v1::ListResponse response;
    const grpc::Status status = Call(&Executor::Stub::List, request, &response);
    EXPECT_TRUE(HasCode(status, StatusCode::INVALID_ARGUMENT)) << token;
    EXPECT_TRUE(absl::StrContains(status.error_message(), "page_token"))
        << status.error_message();
  }
  request.set_page_token(page.next_page_token());
  EXPECT_EQ(Ids(List(request).tasks()), std::vector<std::string>{second});
}

TEST_P(TaskModelTest, DeleteForgetsTheTask) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const Task done = Await(Submit("echo", "{}").id());
  ASSERT_TRUE(IsOk(TryDelete(done.id())));

  Task task;
  EXPECT_TRUE(HasCode(TryGet(done.id(), &task), StatusCode::NOT_FOUND));
  EXPECT_TRUE(HasCode(TryAwait(done.id(), &task), StatusCode::NOT_FOUND));
  EXPECT_TRUE(ListIds(v1::STATE_UNSPECIFIED, "", "").empty());
}

TEST_P(TaskModelTest, DeleteOfRunningTaskCancelsAndForgetsIt) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const Task running = StartBlocker();
  ParkedAwaits awaits(stub());
  awaits.Park(running.id());

  ASSERT_TRUE(IsOk(TryDelete(running.id())));
  Task task;
  EXPECT_TRUE(HasCode(TryGet(running.id(), &task), StatusCode::NOT_FOUND));
  // Whoever awaited it still learns how it ended.
  ASSERT_TRUE(awaits.WaitAll(absl::Now() + kSlack));
  const auto& call = *awaits.calls().front();
  if (call.status.ok()) {
    EXPECT_EQ(call.task.state(), v1::CANCELLED);
  } else {
    EXPECT_TRUE(HasCode(call.status, StatusCode::NOT_FOUND));
  }
}

TEST_F(RpcTest, ListFunctionsShowsBuiltinsAndPools) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const v1::ListFunctionsResponse response = ListFunctions();

  absl::flat_hash_set<std::string> names;
  for (const v1::FunctionInfo& function : response.functions()) {
    names.insert(function.name());
    EXPECT_FALSE(function.default_pool().empty()) << function.name();
  }
  for (const char* name :
       {"echo", "sleep", "fail", "sha256", "primes", "spin"}) {
    EXPECT_TRUE(names.contains(name)) << name;
  }
  EXPECT_FALSE(names.contains("crash"));
  EXPECT_FALSE(names.contains("ignore_cancel"));

  const auto pool = std::find_if(
      response.pools().begin(), response.pools().end(),
      [](const v1::PoolInfo& info) { return info.name() == "default"; });
  ASSERT_NE(pool, response.pools().end());
  EXPECT_EQ(pool->kind(), "thread");
  EXPECT_GT(pool->workers(), 0);
}

TEST_F(RpcTest, CrashIsListedOnlyWithTestFunctions) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--enable-test-functions"}));
  const v1::ListFunctionsResponse response = ListFunctions();
  EXPECT_TRUE(std::any_of(
      response.functions().begin(), response.functions().end(),
      [](const v1::FunctionInfo& info) { return info.name() == "crash"; }));
}

TEST_F(RpcTest, HealthIsServing) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  EXPECT_EQ(HealthStatus(), HealthCheckResponse::SERVING);
}

// --- Errors of the request ---------------------------------------------------

TEST_P(TaskModelTest, UnknownTaskIdIsNotFound) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string id = "no-such-task";
  Task task;
  EXPECT_TRUE(HasCode(TryGet(id, &task), StatusCode::NOT_FOUND));
  EXPECT_TRUE(HasCode(TryAwait(id, &task), StatusCode::NOT_FOUND));
  EXPECT_TRUE(HasCode(TryCancel(id, &task), StatusCode::NOT_FOUND));
  EXPECT_TRUE(HasCode(TryDelete(id), StatusCode::NOT_FOUND));
}

TEST_F(RpcTest, UnknownFunctionIsNotFound) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  EXPECT_TRUE(
      HasCode(TrySubmit("no_such_function", "{}"), StatusCode::NOT_FOUND));
  EXPECT_TRUE(
      HasCode(TrySubmit("crash", R"({"how":"exit"})"), StatusCode::NOT_FOUND));
}

TEST_F(RpcTest, ArgsThatDoNotFitAreInvalidArgumentNamingTheField) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const grpc::Status status = TrySubmit("sleep", R"({"ms":"x"})");
  EXPECT_TRUE(HasCode(status, StatusCode::INVALID_ARGUMENT));
  EXPECT_TRUE(absl::StrContains(status.error_message(), "ms"))
      << status.error_message();
}

TEST_F(RpcTest, UnknownPoolIsInvalidArgument) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  v1::SubmitRequest request = Request("echo", "{}");
  request.set_pool("no_such_pool");
  Task task;
  EXPECT_TRUE(HasCode(Call(&Executor::Stub::Submit, request, &task),
                      StatusCode::INVALID_ARGUMENT));
}

TEST_P(TaskModelTest, FullQueueIsResourceExhausted) {
  constexpr int kMaxQueue = 2;
  ASSERT_NO_FATAL_FAILURE(StartServerWithPool(1, kMaxQueue));
  StartBlocker();
  for (int i = 0; i < kMaxQueue; ++i) Submit("sleep", kLongSleep);

  EXPECT_TRUE(
      HasCode(TrySubmit("sleep", kLongSleep), StatusCode::RESOURCE_EXHAUSTED));
}

TEST_P(TaskModelTest, SubmitWhileDrainingIsUnavailable) {
  constexpr absl::Duration kGrace = absl::Seconds(2);
  ASSERT_NO_FATAL_FAILURE(StartServer({"--shutdown-grace", "2s"}));
  StartBlocker();
  ASSERT_EQ(server().Signal(SIGTERM), 0);

  // The signal lands asynchronously: submit until the server refuses.
  grpc::Status status;
  WaitUntil(
      [&] {
        status = TrySubmit("echo", "{}");
        return !status.ok();
      },
      kSlack);
  EXPECT_TRUE(HasCode(status, StatusCode::UNAVAILABLE));
  EXPECT_NE(HealthStatus(), HealthCheckResponse::SERVING);

  ExpectExitsZero(kGrace + kSlack);
}

// --- Errors and scheduling of tasks -----------------------------------------

TEST_P(TaskModelTest, FailingTaskIsFailedWithItsMessage) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const Task submitted = Submit("fail", R"({"message":"boom 42"})");
  const Task done = Await(submitted.id());

  EXPECT_EQ(done.state(), v1::FAILED);
  EXPECT_NE(done.error().code(), 0);
  EXPECT_TRUE(absl::StrContains(done.error().message(), "boom 42"))
      << done.error().message();
}

TEST_P(TaskModelTest, HigherPriorityQueuedLaterRunsFirstFifoWithin) {
  ASSERT_NO_FATAL_FAILURE(StartServerWithPool(1, 10));
  const Task blocker = StartBlocker();
  std::vector<std::string> ids;
  for (int priority : {0, 0, 10}) {
    v1::SubmitRequest request = Request("echo", "{}");
    request.set_priority(priority);
    ids.push_back(Submit(request).id());
  }
  Cancel(blocker.id());

  const Task low_first = Await(ids[0]);
  const Task low_second = Await(ids[1]);
  const Task high = Await(ids[2]);
  EXPECT_LT(ToTime(high.started_at()), ToTime(low_first.started_at()));
  EXPECT_LT(ToTime(low_first.started_at()), ToTime(low_second.started_at()));
}

TEST_P(TaskModelTest, QueueTimeoutEndsTaskTimedOut) {
  ASSERT_NO_FATAL_FAILURE(StartServerWithPool(1, 10));
  const Task blocker = StartBlocker();
  v1::SubmitRequest request = Request("echo", "{}");
  *request.mutable_queue_timeout() = ProtoDuration(absl::Milliseconds(200));

  const Task done = Await(Submit(request).id());
  EXPECT_EQ(done.state(), v1::TIMED_OUT);
  EXPECT_EQ(done.attempt(), 0);
  Cancel(blocker.id());
}

TEST_P(TaskModelTest, RunTimeoutEndsTaskTimedOut) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  v1::SubmitRequest request = Request("sleep", kLongSleep);
  *request.mutable_run_timeout() = ProtoDuration(absl::Milliseconds(200));
  const absl::Time start = absl::Now();

  const Task done = Await(Submit(request).id());
  EXPECT_EQ(done.state(), v1::TIMED_OUT);
  EXPECT_EQ(done.attempt(), 1);
  EXPECT_LT(absl::Now() - start, kSlack);
}

// --- Many waiters, shutdown
// ----------------------------------------------------

TEST_P(TaskModelTest, ThousandParkedAwaitsCostNoThreadsAndAllReturn) {
  constexpr int kTasks = 10;
  constexpr int kAwaits = 1000;
  ASSERT_NO_FATAL_FAILURE(StartServerWithPool(kTasks, 100));
  std::vector<std::string> ids;
  for (int i = 0; i < kTasks; ++i) {
    ids.push_back(Submit("sleep", R"({"ms":2000})").id());
  }
  for (const auto& id : ids) ASSERT_TRUE(WaitForState(id, v1::RUNNING));
  const int baseline = ThreadCount(server_pid());
  ASSERT_GT(baseline, 0);

  ParkedAwaits awaits(stub());
  for (int i = 0; i < kAwaits; ++i) awaits.Park(ids[i % kTasks]);
  int most = baseline;
  ASSERT_TRUE(awaits.WaitAll(absl::Now() + absl::Seconds(60), [&] {
    most = std::max(most, ThreadCount(server_pid()));
  }));

  RecordProperty("server_threads_before", baseline);
  RecordProperty("server_threads_most", most);
  EXPECT_LE(most, baseline + kThreadSlack) << "baseline " << baseline;
  for (const auto& call : awaits.calls()) {
    ASSERT_TRUE(IsOk(call->status));
    EXPECT_EQ(call->task.state(), v1::SUCCEEDED) << call->task.id();
  }
}

// The memory store cancels what is queued when the server drains; the
// durable store hands it back: QUEUED in the database, run by the next
// server on it.
TEST_P(TaskModelTest, SigtermDrainCancelsOrHandsBackQueuedTasksAndExitsZero) {
  if (durable()) {
    ExpectDrainHandsQueuedTasksBack();
    return;
  }
  constexpr int kTasks = 20;
  constexpr absl::Duration kGrace = absl::Seconds(2);
  ASSERT_NO_FATAL_FAILURE(
      StartServerWithPool(2, 100, {"--shutdown-grace", "2s"}));
  std::vector<std::string> ids;
  for (int i = 0; i < kTasks; ++i) {
    ids.push_back(Submit("sleep", R"({"ms":1500})").id());
  }
  ASSERT_TRUE(WaitForState(ids[0], v1::RUNNING));
  ParkedAwaits awaits(stub());
  for (const auto& id : ids) awaits.Park(id);
  // Gives the awaits time to reach the server; none may return meanwhile.
  ASSERT_FALSE(awaits.WaitAll(absl::Now() + absl::Milliseconds(300)));

  ASSERT_EQ(server().Signal(SIGTERM), 0);
  const absl::Time signalled = absl::Now();
  ASSERT_TRUE(awaits.WaitAll(signalled + kGrace + kSlack));
  ExpectExitsZero(kSlack);
  EXPECT_LT(absl::Now() - signalled, kGrace + kSlack);

  int cancelled = 0;
  for (const auto& call : awaits.calls()) {
    ASSERT_TRUE(IsOk(call->status));
    const State state = call->task.state();
    EXPECT_TRUE(state == v1::CANCELLED || state == v1::SUCCEEDED)
        << call->task.ShortDebugString();
    cancelled += state == v1::CANCELLED;
  }
  RecordProperty("cancelled", cancelled);
  EXPECT_GE(cancelled, kTasks - 4);
}

// --- Retries, retention, ownership, drain of the durable store --------------

// A worker lost mid-run is retried within max_attempts; the last loss ends
// the task WORKER_LOST, naming the attempt.
TEST_P(TaskModelTest, WorkerLossIsRetriedUpToMaxAttemptsThenEndsWorkerLost) {
  ASSERT_NO_FATAL_FAILURE(StartServerWithConfig(
      R"({"pools":[{"name":"default","kind":"thread","workers":2},)"
      R"({"name":"process","kind":"process","workers":1}]})",
      {"--enable-test-functions"}));
  v1::SubmitRequest poison = Request("crash", R"({"how":"abort"})");
  poison.set_pool("process");
  poison.set_max_attempts(3);
  v1::SubmitRequest once = poison;
  once.set_max_attempts(1);

  const Task done = Await(Submit(poison).id());
  EXPECT_EQ(done.state(), v1::WORKER_LOST);
  EXPECT_EQ(done.attempt(), 3);
  EXPECT_EQ(done.max_attempts(), 3);
  EXPECT_TRUE(absl::StrContains(done.error().message(), "attempt 3 of 3"))
      << done.error().message();
  const Task got = Get(done.id());
  EXPECT_EQ(got.state(), v1::WORKER_LOST);
  EXPECT_EQ(got.attempt(), 3);

  const Task single = Await(Submit(once).id());
  EXPECT_EQ(single.state(), v1::WORKER_LOST);
  EXPECT_EQ(single.attempt(), 1);
  // The pool is whole again.
  v1::SubmitRequest echo = Request("echo", R"({"after":"crash"})");
  echo.set_pool("process");
  EXPECT_EQ(Await(Submit(echo).id()).state(), v1::SUCCEEDED);
}

// A finished task is kept for its ttl, then NOT_FOUND everywhere and gone
// from List; a task with the default ttl stays.
TEST_P(TaskModelTest, FinishedTaskIsForgottenAfterItsTtl) {
  constexpr absl::Duration kTtl = absl::Seconds(1);
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const Task kept = Await(Submit("echo", R"({"keep":true})").id());
  v1::SubmitRequest request = Request("echo", R"({"keep":false})");
  *request.mutable_ttl() = ProtoDuration(kTtl);
  const Task done = Await(Submit(request).id());
  ASSERT_EQ(done.state(), v1::SUCCEEDED);

  Task task;
  // Retention sweeps every second (both stores).
  ASSERT_TRUE(WaitUntil(
      [&] {
        return TryGet(done.id(), &task).error_code() == StatusCode::NOT_FOUND;
      },
      kTtl + absl::Seconds(2) + kSlack))
      << "still there: " << task.ShortDebugString();
  EXPECT_GE(absl::Now(), ToTime(done.finished_at()) + kTtl);
  EXPECT_TRUE(HasCode(TryAwait(done.id(), &task), StatusCode::NOT_FOUND));
  EXPECT_TRUE(HasCode(TryCancel(done.id(), &task), StatusCode::NOT_FOUND));
  EXPECT_TRUE(HasCode(TryDelete(done.id()), StatusCode::NOT_FOUND));
  EXPECT_EQ(ListIds(v1::STATE_UNSPECIFIED, "", ""),
            std::vector<std::string>{kept.id()});
  EXPECT_EQ(Get(kept.id()).state(), v1::SUCCEEDED);
  if (durable()) {
    EXPECT_TRUE(
        QueryStore(absl::StrCat("SELECT id FROM remex_tasks WHERE id = '",
                                done.id(), "'"))
            .empty());
  }
}

constexpr char kAliceToken[] = "alice-token-0123456789";
constexpr char kBobToken[] = "bob-token-0123456789";
constexpr char kOpsToken[] = "ops-token-0123456789";

// alice and bob (submit and read), ops (admin), as an --auth file.
std::string OwnershipAuthFile() {
  std::string text = "principals:\n";
  for (const auto& [name, token, roles] :
       {std::tuple{"alice", kAliceToken, ""}, std::tuple{"bob", kBobToken, ""},
        std::tuple{"ops", kOpsToken, "    roles: [admin]\n"}}) {
    absl::StrAppend(&text, "  - name: ", name,
                    "\n    token_sha256: ", auth::TokenSha256Hex(token), "\n",
                    roles);
  }
  return text;
}

// A task belongs to whoever submitted it: another principal gets NOT_FOUND
// for it in every method and on the Session stream, and does not see it in
// List; an admin sees and acts on every task.
TEST_P(TaskModelTest, OthersSeeNotFoundForATaskEverywhereAndAdminSeesAll) {
  ASSERT_NO_FATAL_FAILURE(
      StartServer({"--auth", WriteFile("auth.yaml", OwnershipAuthFile())}));
  UseToken(kAliceToken);
  const Task done = Await(Submit("echo", R"({"secret":"a"})").id());
  EXPECT_EQ(done.owner(), "alice");
  const Task running = StartBlocker();
  UseToken(kBobToken);
  const Task bobs = Await(Submit("echo", "{}").id());
  EXPECT_EQ(bobs.owner(), "bob");

  for (const std::string& id : {done.id(), running.id()}) {
    Task task;
    EXPECT_TRUE(HasCode(TryGet(id, &task), StatusCode::NOT_FOUND)) << id;
    EXPECT_TRUE(HasCode(TryAwait(id, &task, absl::Milliseconds(100)),
                        StatusCode::NOT_FOUND))
        << id;
    EXPECT_TRUE(HasCode(TryCancel(id, &task), StatusCode::NOT_FOUND)) << id;
    EXPECT_TRUE(HasCode(TryDelete(id), StatusCode::NOT_FOUND)) << id;
    const absl::flat_hash_map<uint64_t, StatusCode> session =
        WatchAndCancelOverSession(id);
    ASSERT_EQ(session.size(), 2u) << id;
    EXPECT_EQ(session.at(1), StatusCode::NOT_FOUND) << "watch of " << id;
    EXPECT_EQ(session.at(2), StatusCode::NOT_FOUND) << "cancel of " << id;
  }
  EXPECT_EQ(ListIds(v1::STATE_UNSPECIFIED, "", ""),
            std::vector<std::string>{bobs.id()});

  // Nothing bob tried reached alice's tasks.
  UseToken(kAliceToken);
  EXPECT_EQ(Get(running.id()).state(), v1::RUNNING);
  EXPECT_FALSE(Get(running.id()).cancel_requested());
  EXPECT_EQ(Get(done.id()).state(), v1::SUCCEEDED);
  EXPECT_EQ(ListIds(v1::STATE_UNSPECIFIED, "", ""),
            (std::vector<std::string>{done.id(), running.id()}));

  UseToken(kOpsToken);
  EXPECT_EQ(Get(done.id()).owner(), "alice");
  EXPECT_EQ(ListIds(v1::STATE_UNSPECIFIED, "", ""),
            (std::vector<std::string>{done.id(), running.id(), bobs.id()}));
  const absl::flat_hash_map<uint64_t, StatusCode> session =
      WatchAndCancelOverSession(running.id());
  EXPECT_EQ(session.size(), 2u);
  for (const auto& [seq, code] : session)
    EXPECT_EQ(code, StatusCode::OK) << seq;
  EXPECT_EQ(Await(running.id()).state(), v1::CANCELLED);
  EXPECT_TRUE(IsOk(TryDelete(bobs.id())));

  UseToken(kBobToken);
  Task task;
  EXPECT_TRUE(HasCode(TryGet(bobs.id(), &task), StatusCode::NOT_FOUND));
  UseToken(kAliceToken);
  EXPECT_EQ(Await(running.id()).state(), v1::CANCELLED);
}

void TaskModelTest::ExpectDrainHandsQueuedTasksBack() {
  constexpr int kQueued = 5;
  constexpr absl::Duration kGrace = absl::Seconds(1);
  ASSERT_NO_FATAL_FAILURE(
      StartServerWithPool(1, 100, {"--shutdown-grace", "1s"}));
  // Outlives the grace; may run twice.
  v1::SubmitRequest long_sleep = Request("sleep", kLongSleep);
  long_sleep.set_max_attempts(2);
  const std::string running = Submit(long_sleep).id();
  ASSERT_TRUE(WaitForState(running, v1::RUNNING));
  std::vector<std::string> queued;
  for (int i = 0; i < kQueued; ++i) {
    queued.push_back(Submit("echo", absl::StrCat(R"({"n":)", i, "}")).id());
  }
  ParkedAwaits awaits(stub());
  awaits.Park(running);
  for (const auto& id : queued) awaits.Park(id);
  ASSERT_FALSE(awaits.WaitAll(absl::Now() + absl::Milliseconds(300)));

  ASSERT_EQ(server().Signal(SIGTERM), 0);
  ExpectExitsZero(kGrace + kSlack);
  ASSERT_TRUE(awaits.WaitAll(absl::Now() + kSlack));
  // No task ended: their waiters hear that the server went away (a client
  // may await them on another replica).
  for (const auto& call : awaits.calls()) {
    EXPECT_TRUE(HasCode(call->status, StatusCode::UNAVAILABLE))
        << call->task.ShortDebugString();
  }
  // In the database the running task is QUEUED again (stopped and handed
  // back, for any replica), and the queued ones are as they were accepted.
  std::vector<std::vector<std::string>> expected = {{running, "1", "1"}};
  for (const auto& id : queued) expected.push_back({id, "1", "0"});
  EXPECT_EQ(QueryStore("SELECT id, state, attempt FROM remex_tasks"
                       " ORDER BY list_position"),
            expected);

  // A server started again on the same database runs the queued tasks, and
  // the stopped one again, as its second attempt.
  ASSERT_NO_FATAL_FAILURE(StartServerWithPool(2, 100));
  for (int i = 0; i < kQueued; ++i) {
    const Task done = Await(queued[i]);
    EXPECT_EQ(done.state(), v1::SUCCEEDED) << done.ShortDebugString();
    EXPECT_EQ(done.attempt(), 1);
    EXPECT_EQ(done.result().struct_value().fields().at("n").number_value(), i);
  }
  ASSERT_TRUE(WaitForState(running, v1::RUNNING));
  EXPECT_EQ(Get(running).attempt(), 2);
  EXPECT_EQ(Cancel(running).id(), running);
  EXPECT_EQ(Await(running).state(), v1::CANCELLED);
}

TEST(ServerStartTest, PortInUseExitsOneWithAClearMessage) {
  auto first = ServerProcess::Start();
  ASSERT_TRUE(first.ok()) << first.status();
  const auto second = RunServerExpectingExit(
      {"--listen", (*first)->address(), "--metrics-listen", "127.0.0.1:0"},
      kServerRunTimeout);
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(
      second.err, absl::StrCat("cannot listen on ", (*first)->address())))
      << second.err;
}

TEST(ServerStartTest, BadConfigExitsTwoNamingTheKey) {
  const testing::TempDir dir;
  const std::string path = dir.Write(
      "bad_config.json", R"({"pools":[{"name":"default","workerz":2}]})");
  const auto run = RunServerExpectingExit(
      {"--listen", "127.0.0.1:0", "--config", path}, kServerRunTimeout);
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(run.err, "unknown key 'workerz'")) << run.err;
}

TEST(ServerStartTest, HelpDocumentsEveryFlag) {
  const auto run = RunServerExpectingExit({"--help"}, kServerRunTimeout);
  EXPECT_EQ(run.exit_code, 0);
  for (const char* flag :
       {"--listen", "--config", "--shutdown-grace", "--pollers",
        "--enable-test-functions", "--metrics-listen", "--version", "--help"}) {
    EXPECT_TRUE(absl::StrContains(run.out, flag)) << flag;
  }
}

TEST_F(RpcTest, SigtermExitsZeroEvenIfAFunctionIgnoresCancellation) {
  ASSERT_NO_FATAL_FAILURE(
      StartServer({"--enable-test-functions", "--shutdown-grace", "500ms"}));
  const std::string id = Submit("ignore_cancel", kLongSleep).id();
  ASSERT_TRUE(WaitForState(id, v1::RUNNING));
  ParkedAwaits awaits(stub());
  awaits.Park(id);

  ASSERT_EQ(server().Signal(SIGTERM), 0);
  // Grace, then at most 3 s for the stuck worker, then exit without it.
  ASSERT_TRUE(awaits.WaitAll(absl::Now() + absl::Milliseconds(500) + kSlack));
  EXPECT_EQ(awaits.calls()[0]->task.state(), v1::CANCELLED);
  ExpectExitsZero(absl::Seconds(3) + kSlack);
  EXPECT_TRUE(absl::StrContains(server().ServerOutput(), "ignore cancellation"))
      << server().ServerOutput();
}

}  // namespace
}  // namespace remex
