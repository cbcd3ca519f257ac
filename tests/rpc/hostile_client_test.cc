// A hostile client against the real remex-server, bounded in time and
// count: random bytes to every method, deeply nested Values, huge args and
// labels, invalid UTF-8, extreme durations, thousands of idle connections,
// a Session that submits and never reads, and a flood past a queue. Each
// test asserts that the server stays up, answers every call with a clear
// code (never INTERNAL or UNKNOWN), keeps its RSS under kRssBound, and that
// a well-behaved client on a pool of its own is answered within
// kGoodLatency meanwhile.
//
// hostile_input_test.cc covers single malformed requests (huge ids and
// names, duplicate seqs, Session answers past 4 MiB); limits_rpc_test.cc
// List pages, the open files limit and the idle timeout. This file is about
// abuse in volume, and about the others being served during it.
#include <arpa/inet.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <fstream>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "remex/v1/executor.grpc.pb.h"
#include "tests/testing/executor_calls.h"
#include "tests/testing/free_port.h"
#include "tests/testing/server_test.h"
#include "tests/testing/wait.h"

namespace remex {
namespace {

using RawStream = grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>;

// The server's resident memory must stay below this whatever the abuse:
// the memory budget (96 MiB, below), plus the copies a request makes while
// it is parsed and mapped (each call's, freed when it is answered; the
// largest message is 64 MiB), plus the process itself.
constexpr int64_t kRssBound = int64_t{384} << 20;
// A well-behaved client's Submit and Get, each, answer within this during
// the abuse (generous: the machine is shared and has 2 cores; an idle
// server answers in about a millisecond).
constexpr absl::Duration kGoodLatency = absl::Seconds(2);
// The deadline of each hostile call.
constexpr absl::Duration kDeadline = absl::Seconds(30);
// The pools: the abuse goes to `default` (a small queue, so that a flood
// passes it); the well-behaved client has `good` to itself.
constexpr int kMaxQueue = 64;
// The server's memory budget (--memory-budget): the queued-bytes flood
// below passes it long before its queue is full.
constexpr int64_t kMemoryBudget = int64_t{96} << 20;
constexpr char kConfig[] = R"(pools:
  - {name: default, kind: thread, workers: 2, max_queue: 64}
  - {name: good, kind: thread, workers: 2, max_queue: 1000}
retention: {ttl: 30s}
memory_budget: 96MiB
)";

// The request paths of every method of remex.v1.Executor but Session.
constexpr const char* kUnaryMethods[] = {
    "/remex.v1.Executor/Submit",       "/remex.v1.Executor/Await",
    "/remex.v1.Executor/Cancel",       "/remex.v1.Executor/Get",
    "/remex.v1.Executor/List",         "/remex.v1.Executor/Delete",
    "/remex.v1.Executor/ListFunctions"};
constexpr char kSessionMethod[] = "/remex.v1.Executor/Session";

// Codes that tell the client what it did wrong or what the server cannot
// take now. Not INTERNAL, UNKNOWN or UNAVAILABLE (the server is up).
bool IsClearCode(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
      return true;
    default:
      return false;
  }
}

#define EXPECT_CLEAR(status, what)                           \
  EXPECT_TRUE(IsClearCode((status).error_code()))            \
      << (what) << ": code " << (status).error_code() << " " \
      << (status).error_message().substr(0, 200)

grpc::ByteBuffer Bytes(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// A length-delimited field (string, bytes or message) numbered below 16,
// as protobuf encodes it: for requests no protobuf code would build.
std::string Field(int number, const std::string& bytes) {
  std::string encoded(1, static_cast<char>((number << 3) | 2));
  for (uint64_t n = bytes.size();; n >>= 7) {
    if (n < 0x80) {
      encoded += static_cast<char>(n);
      break;
    }
    encoded += static_cast<char>((n & 0x7f) | 0x80);
  }
  return encoded + bytes;
}

void SetDeadline(grpc::ClientContext& context, absl::Duration timeout) {
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

// VmRSS of `pid`, in bytes; -1 if /proc does not say.
int64_t ResidentBytes(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) != 0) continue;
    const std::vector<absl::string_view> fields =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    int64_t kib = 0;
    if (fields.size() >= 2 && absl::SimpleAtoi(fields[1], &kib)) {
      return kib * 1024;
    }
  }
  return -1;
}

// Submits echo to pool `good` and Gets it back, over and over on a thread
// of its own, on its own connection, until stopped; counts what went wrong
// and the slowest call.
//
// Thread-safe: Stop() from the test's thread.
class WellBehavedClient {
 public:
  explicit WellBehavedClient(const std::string& address)
      : stub_(v1::Executor::NewStub(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))),
        thread_([this] { Run(); }) {}
  ~WellBehavedClient() { Stop(); }

  struct Report {
    int calls = 0;
    int failures = 0;
    std::string first_failure;
    absl::Duration slowest;
  };

  int calls() {
    absl::MutexLock lock(&mu_);
    return report_.calls;
  }

  Report Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    absl::MutexLock lock(&mu_);
    return report_;
  }

 private:
  void Run() {
    v1::SubmitRequest submit;
    submit.set_function("echo");
    submit.set_pool("good");
    (*submit.mutable_labels())["client"] = "good";
    submit.set_input("hello");
    while (!stop_.load()) {
      v1::Task task;
      Call("Submit", [&](grpc::ClientContext& context) {
        return stub_->Submit(&context, submit, &task);
      });
      v1::GetRequest get;
      get.set_id(task.id());
      v1::Task got;
      if (!task.id().empty()) {
        Call("Get", [&](grpc::ClientContext& context) {
          return stub_->Get(&context, get, &got);
        });
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  template <typename Rpc>
  void Call(const char* what, Rpc rpc) {
    grpc::ClientContext context;
    SetDeadline(context, kDeadline);
    const absl::Time start = absl::Now();
    const grpc::Status status = rpc(context);
    const absl::Duration took = absl::Now() - start;
    absl::MutexLock lock(&mu_);
    ++report_.calls;
    report_.slowest = std::max(report_.slowest, took);
    if (!status.ok()) {
      if (report_.failures++ == 0) {
        report_.first_failure =
            absl::StrCat(what, ": ", status.error_code(), " ",
                         status.error_message().substr(0, 200));
      }
    }
  }

  std::unique_ptr<v1::Executor::Stub> stub_;
  std::atomic<bool> stop_{false};
  absl::Mutex mu_;
  Report report_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

class HostileClientTest : public testing::ServerTest {
 protected:
  HostileClientTest() : ServerTest(absl::Seconds(15)) {}

  void SetUp() override {
    StartServer({"--config", WriteFile("hostile.yaml", kConfig)});
    grpc::ChannelArguments args;
    // Large enough for every hostile payload; the server's own limit
    // (64 MiB) is what is tested.
    args.SetMaxSendMessageSize(256 << 20);
    args.SetMaxReceiveMessageSize(256 << 20);
    channel_ = grpc::CreateCustomChannel(
        server().address(), grpc::InsecureChannelCredentials(), args);
    stub_ = v1::Executor::NewStub(channel_);
    generic_ = std::make_unique<grpc::GenericStub>(channel_);
    rss_at_start_ = ResidentBytes(server_pid());
    good_ = std::make_unique<WellBehavedClient>(server().address());
    // It is being served before the abuse starts.
    ASSERT_TRUE(testing::WaitUntil([&] { return good_->calls() > 0; }));
  }

  // The checks every test ends with: the server is up and answers, its RSS
  // stayed under the bound, and the well-behaved client was served in time
  // throughout.
  void TearDown() override {
    if (good_ != nullptr) {
      const WellBehavedClient::Report report = good_->Stop();
      EXPECT_GT(report.calls, 0);
      EXPECT_EQ(report.failures, 0) << report.first_failure;
      EXPECT_LT(report.slowest, kGoodLatency);
      std::cout << "well-behaved client: " << report.calls << " calls, slowest "
                << report.slowest << "\n";
      good_.reset();
    }
    const int64_t rss = ResidentBytes(server_pid());
    std::cout << "server RSS: " << (rss_at_start_ >> 20) << " MiB at start, "
              << (rss >> 20) << " MiB at the end\n";
    EXPECT_GT(rss, 0) << "the server is gone";
    EXPECT_LT(rss, kRssBound);
    ExpectServing();
    generic_.reset();
    stub_.reset();
    channel_.reset();
    ServerTest::TearDown();
  }

  // Cancels each of `ids` (sleeps that would outlive the test).
  void CancelEach(const std::vector<std::string>& ids) {
    for (const std::string& id : ids) {
      grpc::ClientContext context;
      SetDeadline(context, kDeadline);
      v1::CancelRequest cancel;
      cancel.set_id(id);
      v1::Task task;
      EXPECT_TRUE(stub_->Cancel(&context, cancel, &task).ok());
    }
  }

  // A fresh client's Get of an unknown id answers NOT_FOUND.
  void ExpectServing() {
    auto stub = v1::Executor::NewStub(grpc::CreateChannel(
        server().address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    SetDeadline(context, kGoodLatency);
    v1::GetRequest get;
    get.set_id("no-such-task");
    v1::Task task;
    const grpc::Status status = stub->Get(&context, get, &task);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND)
        << status.error_message();
  }

  // A unary call of `method` with `payload` as its request bytes.
  grpc::Status CallRaw(const std::string& method, const std::string& payload,
                       std::string* response = nullptr) {
    grpc::ClientContext context;
    SetDeadline(context, kDeadline);
    const grpc::ByteBuffer request = Bytes(payload);
    grpc::ByteBuffer answer;
    grpc::Status status;
    absl::Mutex mu;
    bool done = false;
    generic_->UnaryCall(&context, method, grpc::StubOptions(), &request,
                        &answer, [&](grpc::Status s) {
                          absl::MutexLock lock(&mu);
                          status = std::move(s);
                          done = true;
                        });
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(&done));
    if (response != nullptr && status.ok()) {
      std::vector<grpc::Slice> slices;
      (void)answer.Dump(&slices);
      response->clear();
      for (const grpc::Slice& slice : slices) {
        response->append(reinterpret_cast<const char*>(slice.begin()),
                         slice.size());
      }
    }
    return status;
  }

  grpc::Status Submit(const v1::SubmitRequest& request, v1::Task* task) {
    grpc::ClientContext context;
    SetDeadline(context, kDeadline);
    return stub_->Submit(&context, request, task);
  }

  // A Session stream of bytes, not messages.
  std::unique_ptr<RawStream> OpenRawSession(grpc::ClientContext& context) {
    return std::unique_ptr<RawStream>(
        grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer,
                                                  grpc::ByteBuffer>::
            Create(
                channel_.get(),
                grpc::internal::RpcMethod(
                    kSessionMethod, grpc::internal::RpcMethod::BIDI_STREAMING),
                &context));
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Executor::Stub> stub_;
  std::unique_ptr<grpc::GenericStub> generic_;
  std::unique_ptr<WellBehavedClient> good_;
  int64_t rss_at_start_ = 0;
};

// Valid requests of each method, to mutate: random bytes that start as a
// real request reach further into the server than noise.
std::vector<std::string> ValidRequests() {
  v1::SubmitRequest submit;
  submit.set_function("echo");
  (*submit.mutable_args()->mutable_struct_value()->mutable_fields())["x"]
      .set_number_value(1);
  submit.set_input("in");
  (*submit.mutable_labels())["a"] = "b";
  submit.mutable_run_timeout()->set_seconds(5);
  v1::AwaitRequest await;
  await.set_id("x");
  await.mutable_timeout()->set_nanos(1000);
  v1::ListRequest list;
  list.set_function("echo");
  list.set_page_size(3);
  list.set_page_token("p1");
  v1::GetRequest get;
  get.set_id("abc");
  return {submit.SerializeAsString(), await.SerializeAsString(),
          list.SerializeAsString(), get.SerializeAsString()};
}

// `count` payloads from `random`: noise of random sizes, and valid requests
// with bytes flipped, cut or appended.
std::vector<std::string> RandomPayloads(std::mt19937_64& random, int count) {
  const std::vector<std::string> valid = ValidRequests();
  std::vector<std::string> payloads;
  std::uniform_int_distribution<int> byte(0, 255);
  for (int i = 0; i < count; ++i) {
    std::string payload;
    if (i % 2 == 0) {
      const size_t size =
          std::uniform_int_distribution<size_t>(0, 4096)(random);
      for (size_t j = 0; j < size; ++j)
        payload += static_cast<char>(byte(random));
    } else {
      payload = valid[random() % valid.size()];
      const int edits = 1 + static_cast<int>(random() % 4);
      for (int e = 0; e < edits && !payload.empty(); ++e) {
        switch (random() % 3) {
          case 0:
            payload[random() % payload.size()] =
                static_cast<char>(byte(random));
            break;
          case 1:
            payload.resize(random() % payload.size());
            break;
          default:
            payload += static_cast<char>(byte(random));
            break;
        }
      }
    }
    payloads.push_back(std::move(payload));
  }
  return payloads;
}

TEST_F(HostileClientTest, RandomBytesToEveryMethodGetClearCodes) {
  constexpr int kPerMethod = 150;
  std::mt19937_64 random(16);  // the same bytes every run
  int answered = 0;
  for (const char* method : kUnaryMethods) {
    for (const std::string& payload : RandomPayloads(random, kPerMethod)) {
      const grpc::Status status = CallRaw(method, payload);
      EXPECT_CLEAR(status, method);
      ++answered;
    }
  }
  // Session: each stream gets one random message, then ends.
  for (const std::string& payload : RandomPayloads(random, kPerMethod)) {
    grpc::ClientContext context;
    SetDeadline(context, kDeadline);
    std::unique_ptr<RawStream> stream = OpenRawSession(context);
    stream->Write(Bytes(payload));
    stream->WritesDone();
    grpc::ByteBuffer ignored;
    while (stream->Read(&ignored)) {
    }
    const grpc::Status status = stream->Finish();
    EXPECT_CLEAR(status, kSessionMethod);
    ++answered;
  }
  EXPECT_EQ(answered, kPerMethod * (std::size(kUnaryMethods) + 1));
}

// `depth` levels of list nesting around a number, encoded by hand:
// Value{list_value: ListValue{values: Value{...}}}.
std::string NestedListValue(int depth) {
  std::string value = "\x11" + std::string(8, '\0');  // number_value 0
  for (int i = 0; i < depth; ++i) {
    value = Field(6, Field(1, value));  // Value.list_value(ListValue.values)
  }
  return value;
}

// SubmitRequest{function: "echo", args: `args`}, encoded by hand.
std::string EchoWithRawArgs(const std::string& args) {
  return Field(1, "echo") + Field(2, args);
}

TEST_F(HostileClientTest, DeeplyNestedValuesAreRefusedOrServed) {
  // Deeper than protobuf parses (its recursion limit is 100): refused
  // INVALID_ARGUMENT, the server's stack untouched.
  for (int depth : {200, 1000, 10000}) {
    const grpc::Status status = CallRaw(
        "/remex.v1.Executor/Submit", EchoWithRawArgs(NestedListValue(depth)));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << depth << ": " << status.error_message();
  }
  // As deep as a request may be: served, and the result comes back whole.
  std::string answer;
  const grpc::Status status =
      CallRaw("/remex.v1.Executor/Submit", EchoWithRawArgs(NestedListValue(45)),
              &answer);
  ASSERT_TRUE(status.ok()) << status.error_message();
  v1::Task task;
  ASSERT_TRUE(task.ParseFromString(answer));
  v1::AwaitRequest await;
  await.set_id(task.id());
  grpc::ClientContext context;
  SetDeadline(context, kDeadline);
  v1::Task done;
  const grpc::Status awaited = stub_->Await(&context, await, &done);
  ASSERT_TRUE(awaited.ok()) << awaited.error_message();
  EXPECT_EQ(done.state(), v1::SUCCEEDED);
  int depth = 0;
  for (const google::protobuf::Value* value = &done.result();
       value->has_list_value() && value->list_value().values_size() == 1;
       value = &value->list_value().values(0)) {
    ++depth;
  }
  EXPECT_EQ(depth, 45);
  // Through a Session: the stream ends INVALID_ARGUMENT.
  grpc::ClientContext session_context;
  SetDeadline(session_context, kDeadline);
  std::unique_ptr<RawStream> stream = OpenRawSession(session_context);
  // SessionRequest{submits: SessionSubmit{seq: 1, request: deep echo}}.
  const std::string submit = std::string("\x08\x01") +
                             Field(2, EchoWithRawArgs(NestedListValue(10000)));
  stream->Write(Bytes(Field(1, submit)));
  stream->WritesDone();
  grpc::ByteBuffer ignored;
  while (stream->Read(&ignored)) {
  }
  const grpc::Status ended = stream->Finish();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << ended.error_message();
}

TEST_F(HostileClientTest, HugeArgsAndLabelsAreServedOrRefused) {
  // Args with a 24 MiB string: served (under the 64 MiB message limit).
  {
    v1::SubmitRequest request;
    request.set_function("echo");
    request.mutable_ttl()->set_seconds(1);
    (*request.mutable_args()->mutable_struct_value()->mutable_fields())["s"]
        .set_string_value(std::string(24 << 20, 's'));
    v1::Task task;
    const grpc::Status status = Submit(request, &task);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
  // 200,000 small labels (about 3 MiB).
  {
    v1::SubmitRequest request;
    request.set_function("echo");
    request.mutable_ttl()->set_seconds(1);
    for (int i = 0; i < 200000; ++i) {
      (*request.mutable_labels())[absl::StrCat("label", i)] = "v";
    }
    v1::Task task;
    const grpc::Status status = Submit(request, &task);
    EXPECT_CLEAR(status, "200,000 labels");
  }
  // One label of 16 MiB.
  {
    v1::SubmitRequest request;
    request.set_function("echo");
    request.mutable_ttl()->set_seconds(1);
    (*request.mutable_labels())["big"] = std::string(16 << 20, 'l');
    v1::Task task;
    const grpc::Status status = Submit(request, &task);
    EXPECT_CLEAR(status, "a 16 MiB label");
  }
  // Past the server's 64 MiB message limit: RESOURCE_EXHAUSTED, unread.
  {
    v1::SubmitRequest request;
    request.set_function("echo");
    request.set_input(std::string(65 << 20, 'i'));
    v1::Task task;
    const grpc::Status status = Submit(request, &task);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << status.error_message();
  }
}

TEST_F(HostileClientTest, InvalidUtf8IsInvalidArgumentInEveryMethod) {
  const std::string bad = "caf\xc3(\xff\xfe";
  struct Case {
    const char* method;
    std::string payload;
  };
  const std::string label =  // map entry {key: bad, value: "v"}
      Field(1, bad) + Field(2, "v");
  const std::vector<Case> cases = {
      {"/remex.v1.Executor/Submit", Field(1, bad)},
      {"/remex.v1.Executor/Submit", Field(1, "echo") + Field(4, bad)},
      {"/remex.v1.Executor/Submit", Field(1, "echo") + Field(9, label)},
      // args: Value{string_value: bad}
      {"/remex.v1.Executor/Submit", Field(1, "echo") + Field(2, Field(3, bad))},
      {"/remex.v1.Executor/Get", Field(1, bad)},
      {"/remex.v1.Executor/Await", Field(1, bad)},
      {"/remex.v1.Executor/Cancel", Field(1, bad)},
      {"/remex.v1.Executor/Delete", Field(1, bad)},
      {"/remex.v1.Executor/List", Field(2, bad)},
      {"/remex.v1.Executor/List", Field(5, bad)},
  };
  for (const Case& c : cases) {
    const grpc::Status status = CallRaw(c.method, c.payload);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.method << ": " << status.error_message();
  }
}

TEST_F(HostileClientTest, ExtremeDurationsAreRefusedOrHonoured) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kProtoMaxSeconds = 315576000000;
  struct Extreme {
    int64_t seconds;
    int32_t nanos;
    bool valid;  // a Duration that duration.proto allows
  };
  const std::vector<Extreme> extremes = {
      {kMax, 0, false},
      {kMin, 0, false},
      {0, 2000000000, false},
      {0, -2000000000, false},
      {1, -1, false},
      {-1, 1, false},
      {kProtoMaxSeconds + 1, 0, false},
      {kProtoMaxSeconds, 999999999, true},
      {0, 1, true},
  };
  for (const Extreme& extreme : extremes) {
    for (int field = 0; field < 3; ++field) {
      v1::SubmitRequest request;
      request.set_function("echo");
      google::protobuf::Duration* duration =
          field == 0   ? request.mutable_queue_timeout()
          : field == 1 ? request.mutable_run_timeout()
                       : request.mutable_ttl();
      duration->set_seconds(extreme.seconds);
      duration->set_nanos(extreme.nanos);
      v1::Task task;
      const grpc::Status status = Submit(request, &task);
      const std::string what =
          absl::StrCat("field ", field, " = ", extreme.seconds, "s ",
                       extreme.nanos, "ns: ", status.error_message());
      if (!extreme.valid) {
        EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
            << what;
        continue;
      }
      EXPECT_CLEAR(status, what);
    }
    // Await's timeout, on a task that exists.
    v1::SubmitRequest sleep;
    sleep.set_function("sleep");
    (*sleep.mutable_args()->mutable_struct_value()->mutable_fields())["ms"]
        .set_number_value(50);
    v1::Task task;
    ASSERT_TRUE(Submit(sleep, &task).ok());
    v1::AwaitRequest await;
    await.set_id(task.id());
    await.mutable_timeout()->set_seconds(extreme.seconds);
    await.mutable_timeout()->set_nanos(extreme.nanos);
    grpc::ClientContext context;
    SetDeadline(context, kDeadline);
    v1::Task done;
    const grpc::Status status = stub_->Await(&context, await, &done);
    if (extreme.valid && extreme.seconds >= 0) {
      EXPECT_TRUE(status.ok()) << status.error_message();
    } else {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
          << "await " << extreme.seconds << "s " << extreme.nanos
          << "ns: " << status.error_message();
    }
  }
}

// The soft open files limit of `pid`, 0 if unknown.
uint64_t OpenFilesLimit(pid_t pid) {
  std::ifstream limits(absl::StrCat("/proc/", pid, "/limits"));
  std::string line;
  while (std::getline(limits, line)) {
    if (line.rfind("Max open files", 0) != 0) continue;
    const std::vector<absl::string_view> fields =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    uint64_t soft = 0;
    if (fields.size() > 3 && absl::SimpleAtoi(fields[3], &soft)) return soft;
  }
  return 0;
}

TEST_F(HostileClientTest, TwoThousandIdleConnections) {
  constexpr int kConnections = 2000;
  // Room for them in the server (it raised its soft limit to the hard one)
  // and in this process.
  if (OpenFilesLimit(server_pid()) < kConnections + 200) {
    GTEST_SKIP() << "the server may open " << OpenFilesLimit(server_pid())
                 << " files here";
  }
  rlimit ours{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &ours), 0);
  if (ours.rlim_max < kConnections + 200) {
    GTEST_SKIP() << "this test may open " << ours.rlim_max << " files here";
  }
  const rlimit original = ours;
  ours.rlim_cur = ours.rlim_max;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &ours), 0);

  // What a client sends first: the HTTP/2 preface and an empty SETTINGS
  // frame; then nothing.
  static constexpr char kHello[] =
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
      "\x00\x00\x00\x04\x00\x00\x00\x00\x00";
  std::vector<int> fds;
  for (int i = 0; i < kConnections; ++i) {
    const int fd = testing::ConnectLoopback(server().address());
    ASSERT_GE(fd, 0) << "connection " << i;
    fds.push_back(fd);
    if (i % 2 == 0) {
      ASSERT_EQ(write(fd, kHello, sizeof(kHello) - 1),
                static_cast<ssize_t>(sizeof(kHello) - 1));
    }
  }
  // With all of them open, a new client is served (TearDown checks the
  // well-behaved one too).
  ExpectServing();
  for (int fd : fds) close(fd);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &original), 0);
}

// A client that submits on a Session and never reads its answers: the
// server holds a bounded number of answers, then stops reading the stream
// (flow control pushes back on the client), instead of growing.
TEST_F(HostileClientTest, SessionThatSubmitsAndNeverReads) {
  // Answers the server would have to hold, at 4 KiB of output each, if it
  // read everything: far past kRssBound (the tasks run at once).
  constexpr int kTasks = 200000;
  constexpr int kPerMessage = 500;
  grpc::ClientContext context;
  SetDeadline(context, absl::Seconds(60));
  std::unique_ptr<
      grpc::ClientReaderWriter<v1::SessionRequest, v1::SessionResponse>>
      stream = stub_->Session(&context);
  std::atomic<int> written{0};
  std::thread writer([&] {
    v1::SubmitRequest echo;
    echo.set_function("echo");
    echo.set_input(std::string(4 << 10, 'i'));
    echo.mutable_ttl()->set_seconds(1);
    for (int first = 0; first < kTasks; first += kPerMessage) {
      v1::SessionRequest request;
      for (int seq = first; seq < first + kPerMessage; ++seq) {
        testing::AddSubmit(request, seq, echo);
      }
      // Blocks once the server stops reading; fails once cancelled.
      if (!stream->Write(request)) return;
      written += kPerMessage;
    }
  });
  // Until the writes stall (the server pushes back) or all went through.
  int last = -1;
  absl::Time last_change = absl::Now();
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        EXPECT_LT(ResidentBytes(server_pid()), kRssBound);
        if (written.load() != last) {
          last = written.load();
          last_change = absl::Now();
        }
        return last == kTasks || absl::Now() - last_change > absl::Seconds(2);
      },
      absl::Seconds(40)));
  std::cout << "a Session that never reads got " << written.load() << " of "
            << kTasks << " submits written\n";
  EXPECT_LT(written.load(), kTasks) << "the server read everything";
  EXPECT_LT(ResidentBytes(server_pid()), kRssBound);
  ExpectServing();
  // The client goes away without reading; the server lets the stream go.
  context.TryCancel();
  writer.join();
  (void)stream->Finish();
}

TEST_F(HostileClientTest, FloodPastTheQueueIsResourceExhausted) {
  constexpr int kSubmits = 600;
  constexpr int kThreads = 6;
  std::atomic<int> accepted{0};
  std::atomic<int> exhausted{0};
  std::atomic<int> other{0};
  absl::Mutex mu;
  std::vector<std::string> ids;
  std::string first_other;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      v1::SubmitRequest sleep;
      sleep.set_function("sleep");
      (*sleep.mutable_args()->mutable_struct_value()->mutable_fields())["ms"]
          .set_number_value(10000);
      for (int i = 0; i < kSubmits / kThreads; ++i) {
        v1::Task task;
        const grpc::Status status = Submit(sleep, &task);
        if (status.ok()) {
          ++accepted;
          absl::MutexLock lock(&mu);
          ids.push_back(task.id());
        } else if (status.error_code() ==
                   grpc::StatusCode::RESOURCE_EXHAUSTED) {
          ++exhausted;
        } else {
          absl::MutexLock lock(&mu);
          if (other++ == 0) first_other = status.error_message();
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  // Two run, kMaxQueue wait; the rest is refused, and nothing else happens.
  EXPECT_EQ(other.load(), 0) << first_other;
  EXPECT_LE(accepted.load(), kMaxQueue + 2);
  EXPECT_GE(accepted.load(), kMaxQueue);
  EXPECT_EQ(accepted + exhausted, kSubmits);
  // Clean up: the sleeps would outlive the test.
  CancelEach(ids);
}

// Tasks that wait with 2 MiB inputs each: the queue would take 64 of them
// (128 MiB), the budget about 48. Past it, RESOURCE_EXHAUSTED naming the
// budget, and the server's RSS grows by about the budget, no more.
TEST_F(HostileClientTest, QueuedBytesStopAtTheMemoryBudget) {
  constexpr int64_t kInput = int64_t{2} << 20;
  std::vector<std::string> ids;
  v1::SubmitRequest sleep;
  sleep.set_function("sleep");
  (*sleep.mutable_args()->mutable_struct_value()->mutable_fields())["ms"]
      .set_number_value(10000);
  sleep.set_input(std::string(kInput, 'q'));
  grpc::Status refused;
  for (int i = 0; i < kMaxQueue + 2 && refused.ok(); ++i) {
    v1::Task task;
    refused = Submit(sleep, &task);
    if (refused.ok()) ids.push_back(task.id());
  }
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.error_message().find("memory budget"), std::string::npos)
      << refused.error_message();
  EXPECT_GE(static_cast<int64_t>(ids.size()), kMemoryBudget / kInput - 8);
  EXPECT_LE(static_cast<int64_t>(ids.size()), kMemoryBudget / kInput);
  const int64_t grown = ResidentBytes(server_pid()) - rss_at_start_;
  std::cout << "queued " << ids.size() << " tasks of 2 MiB; RSS grew "
            << (grown >> 20) << " MiB\n";
  EXPECT_LT(grown, kMemoryBudget + (int64_t{64} << 20));
  CancelEach(ids);
}

}  // namespace
}  // namespace remex
