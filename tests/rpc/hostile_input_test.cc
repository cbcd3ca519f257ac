// What a careless or hostile client sends, against the real remex-server:
// huge ids and names, out-of-range options, malformed Durations, duplicate
// session seqs, answers past a default client's 4 MiB limit, and bytes that
// are no message at all. Each must get a clear error (or be served within
// the limits), never an echo of its input or a silent end.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/utf8.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "remex/v1/executor.grpc.pb.h"
#include "tests/monitoring/http_get.h"
#include "tests/testing/executor_calls.h"
#include "tests/testing/server_test.h"
#include "tests/testing/wait.h"

namespace remex {
namespace {

using testing::AddSubmit;

using ::testing::HasSubstr;
using SessionStream =
    grpc::ClientReaderWriter<v1::SessionRequest, v1::SessionResponse>;
using RawStream = grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>;

constexpr absl::Duration kDeadline = absl::Seconds(30);
// A default gRPC client's receive limit.
constexpr size_t kDefaultReceiveLimit = 4 << 20;
// What an error message that quotes a client's string may add to it.
constexpr size_t kLongestError = 256;

class HostileInputTest : public testing::SharedServerTest {
 protected:
  static void SetUpTestSuite() { StartSharedServer(); }

  void SetUp() override {
    SharedServerTest::SetUp();
    channel_ = grpc::CreateChannel(server_->address(),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::Executor::NewStub(channel_);
  }

  void SetDeadline(grpc::ClientContext& context) {
    context.set_deadline(absl::ToChronoTime(absl::Now() + kDeadline));
  }

  grpc::Status Submit(const v1::SubmitRequest& request, v1::Task* task) {
    grpc::ClientContext context;
    SetDeadline(context);
    return stub_->Submit(&context, request, task);
  }

  std::unique_ptr<SessionStream> OpenSession(grpc::ClientContext& context) {
    SetDeadline(context);
    return stub_->Session(&context);
  }

  // A Session that sends and receives bytes, not messages.
  std::unique_ptr<RawStream> OpenRawSession(grpc::ClientContext& context) {
    SetDeadline(context);
    return std::unique_ptr<RawStream>(
        grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer,
                                                  grpc::ByteBuffer>::
            Create(channel_.get(),
                   grpc::internal::RpcMethod(
                       "/remex.v1.Executor/Session",
                       grpc::internal::RpcMethod::BIDI_STREAMING),
                   &context));
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Executor::Stub> stub_;
};

grpc::ByteBuffer Bytes(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

v1::SubmitRequest Echo() {
  v1::SubmitRequest request;
  request.set_function("echo");
  return request;
}

v1::SubmitRequest SleepFor(int ms) {
  v1::SubmitRequest request;
  request.set_function("sleep");
  (*request.mutable_args()->mutable_struct_value()->mutable_fields())["ms"]
      .set_number_value(ms);
  return request;
}

// An error that names `what` and stays short whatever the client sent.
void ExpectBoundedError(const grpc::Status& status, grpc::StatusCode code,
                        const std::string& what) {
  EXPECT_EQ(status.error_code(), code) << status.error_message().substr(0, 200);
  EXPECT_LT(status.error_message().size(), kLongestError);
  EXPECT_THAT(status.error_message(), HasSubstr(what));
}

TEST_F(HostileInputTest, HugeIdsAnswerNotFoundWithoutEchoingThem) {
  const std::string id(1 << 20, 'x');
  const std::string size = "(1048576 bytes)";
  v1::Task task;
  {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::GetRequest request;
    request.set_id(id);
    ExpectBoundedError(stub_->Get(&context, request, &task),
                       grpc::StatusCode::NOT_FOUND, size);
  }
  {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::AwaitRequest request;
    request.set_id(id);
    ExpectBoundedError(stub_->Await(&context, request, &task),
                       grpc::StatusCode::NOT_FOUND, size);
  }
  {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::CancelRequest request;
    request.set_id(id);
    ExpectBoundedError(stub_->Cancel(&context, request, &task),
                       grpc::StatusCode::NOT_FOUND, size);
  }
  {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::DeleteRequest request;
    request.set_id(id);
    google::protobuf::Empty empty;
    ExpectBoundedError(stub_->Delete(&context, request, &empty),
                       grpc::StatusCode::NOT_FOUND, size);
  }
}

TEST_F(HostileInputTest, HugeFunctionAndPoolNamesAreNotEchoed) {
  v1::Task task;
  v1::SubmitRequest request;
  request.set_function(std::string(1 << 20, 'f'));
  ExpectBoundedError(Submit(request, &task), grpc::StatusCode::NOT_FOUND,
                     "unknown function 'ffff");
  request = Echo();
  request.set_pool(std::string(1 << 20, 'p'));
  ExpectBoundedError(Submit(request, &task), grpc::StatusCode::INVALID_ARGUMENT,
                     "unknown pool 'pppp");
}

// A quote is cut at a character boundary: the message stays valid UTF-8,
// or the client could not parse the response that carries it.
TEST_F(HostileInputTest, QuotedNamesAreCutBetweenCharacters) {
  std::string function = "x";
  for (int i = 0; i < 100; ++i) function += "\xC3\xA9";  // é
  grpc::ClientContext context;
  std::unique_ptr<SessionStream> stream = OpenSession(context);
  v1::SessionRequest request;
  v1::SubmitRequest submit;
  submit.set_function(function);
  AddSubmit(request, 1, submit);
  ASSERT_TRUE(stream->Write(request));
  v1::SessionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_EQ(response.failed_size(), 1);
  const v1::TaskError& error = response.failed(0).error();
  EXPECT_EQ(error.code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(common::IsValidUtf8(error.message()));
  EXPECT_THAT(error.message(), HasSubstr("(201 bytes)"));
  EXPECT_LT(error.message().size(), kLongestError);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(HostileInputTest, MaxAttemptsIsCapped) {
  v1::Task task;
  v1::SubmitRequest request = Echo();
  request.set_max_attempts(std::numeric_limits<int32_t>::max());
  ExpectBoundedError(Submit(request, &task), grpc::StatusCode::INVALID_ARGUMENT,
                     "max_attempts");
  request.set_max_attempts(101);
  const grpc::Status over = Submit(request, &task);
  ExpectBoundedError(over, grpc::StatusCode::INVALID_ARGUMENT, "max_attempts");
  EXPECT_THAT(over.error_message(), HasSubstr("100"));
  request.set_max_attempts(100);
  const grpc::Status at = Submit(request, &task);
  EXPECT_TRUE(at.ok()) << at.error_message();
}

TEST_F(HostileInputTest, MalformedDurationsAreInvalidArgument) {
  v1::Task task;
  v1::SubmitRequest request = Echo();
  request.mutable_queue_timeout()->set_nanos(2000000000);
  ExpectBoundedError(Submit(request, &task), grpc::StatusCode::INVALID_ARGUMENT,
                     "queue_timeout");
  request = Echo();
  request.mutable_run_timeout()->set_seconds(315576000001);
  ExpectBoundedError(Submit(request, &task), grpc::StatusCode::INVALID_ARGUMENT,
                     "run_timeout");
  request = Echo();
  request.mutable_ttl()->set_seconds(1);
  request.mutable_ttl()->set_nanos(-1);
  ExpectBoundedError(Submit(request, &task), grpc::StatusCode::INVALID_ARGUMENT,
                     "ttl");
  // The same through a session.
  grpc::ClientContext context;
  std::unique_ptr<SessionStream> stream = OpenSession(context);
  v1::SessionRequest batch;
  request = Echo();
  request.mutable_queue_timeout()->set_nanos(-2000000000);
  AddSubmit(batch, 1, request);
  ASSERT_TRUE(stream->Write(batch));
  v1::SessionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_EQ(response.failed_size(), 1);
  EXPECT_EQ(response.failed(0).error().code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(response.failed(0).error().message(), HasSubstr("queue_timeout"));
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(HostileInputTest, NegativeOrMalformedAwaitTimeoutIsInvalidArgument) {
  v1::Task task;
  ASSERT_TRUE(Submit(SleepFor(60000), &task).ok());
  for (const auto& [seconds, nanos] : std::vector<std::pair<int64_t, int32_t>>{
           {-1, 0}, {0, -1}, {0, 2000000000}}) {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::AwaitRequest request;
    request.set_id(task.id());
    request.mutable_timeout()->set_seconds(seconds);
    request.mutable_timeout()->set_nanos(nanos);
    v1::Task awaited;
    ExpectBoundedError(stub_->Await(&context, request, &awaited),
                       grpc::StatusCode::INVALID_ARGUMENT, "timeout");
  }
  grpc::ClientContext context;
  SetDeadline(context);
  v1::CancelRequest cancel;
  cancel.set_id(task.id());
  EXPECT_TRUE(stub_->Cancel(&context, cancel, &task).ok());
}

// A seq is unique among the open submits and watches of a session; once the
// item ended, it may be used again.
TEST_F(HostileInputTest, DuplicateOpenSeqIsRefused) {
  grpc::ClientContext context;
  std::unique_ptr<SessionStream> stream = OpenSession(context);
  absl::flat_hash_map<uint64_t, std::vector<std::string>> accepted;
  absl::flat_hash_map<uint64_t, std::vector<v1::TaskError>> failed;
  absl::flat_hash_map<uint64_t, int> done;
  auto read_until = [&](auto condition) {
    v1::SessionResponse response;
    while (!condition()) {
      if (!stream->Read(&response)) return false;
      for (const auto& item : response.accepted()) {
        accepted[item.seq()].push_back(item.id());
      }
      for (const auto& item : response.failed()) {
        failed[item.seq()].push_back(item.error());
      }
      for (const auto& item : response.done()) ++done[item.seq()];
    }
    return true;
  };

  v1::SessionRequest request;
  AddSubmit(request, 7, SleepFor(60000));
  AddSubmit(request, 8, Echo());
  AddSubmit(request, 8, Echo());  // the same batch
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(read_until([&] {
    return accepted.contains(7) && accepted.contains(8) && failed.contains(8);
  }));
  ASSERT_EQ(failed[8].size(), 1u);
  EXPECT_EQ(failed[8][0].code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(failed[8][0].message(), HasSubstr("seq 8"));

  request.Clear();
  AddSubmit(request, 7, Echo());  // a later batch, seq 7 still running
  v1::SessionWatch* watch = request.add_watches();
  watch->set_seq(7);
  watch->set_id(accepted[7][0]);
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(read_until([&] { return failed[7].size() == 2; }));
  for (const v1::TaskError& error : failed[7]) {
    EXPECT_EQ(error.code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(error.message(), HasSubstr("seq 7"));
  }

  // Ended: seq 7 is free again. Cancels have seqs of their own.
  request.Clear();
  v1::SessionCancel* cancel = request.add_cancels();
  cancel->set_seq(7);
  cancel->set_id(accepted[7][0]);
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(read_until([&] { return done[7] == 1; }));
  request.Clear();
  AddSubmit(request, 7, Echo());
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(read_until([&] { return done[7] == 2; }));
  EXPECT_EQ(failed[7].size(), 2u);
  EXPECT_EQ(done[8], 1);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

// Reads a raw session to its end; returns its status and what it answered.
grpc::Status ReadToEnd(RawStream& stream, v1::SessionResponse* all) {
  grpc::ByteBuffer buffer;
  while (stream.Read(&buffer)) {
    v1::SessionResponse response;
    EXPECT_TRUE(grpc::SerializationTraits<v1::SessionResponse>::Deserialize(
                    &buffer, &response)
                    .ok());
    all->MergeFrom(response);
  }
  return stream.Finish();
}

// Bytes that are no SessionRequest end the stream with an error, after the
// ends of the tasks submitted before them; nothing after them is read.
TEST_F(HostileInputTest, CorruptSessionMessageEndsTheStreamWithAnError) {
  grpc::ClientContext context;
  std::unique_ptr<RawStream> stream = OpenRawSession(context);
  v1::SessionRequest request;
  AddSubmit(request, 1, Echo());
  ASSERT_TRUE(stream->Write(Bytes(request.SerializeAsString())));
  ASSERT_TRUE(stream->Write(Bytes("\x0a\xff\xff\xff\xff\x0f")));
  request.Clear();
  AddSubmit(request, 2, Echo());
  stream->Write(Bytes(request.SerializeAsString()));  // may find it closed
  stream->WritesDone();
  v1::SessionResponse answers;
  const grpc::Status status = ReadToEnd(*stream, &answers);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("did not parse"));
  ASSERT_EQ(answers.accepted_size(), 1);
  EXPECT_EQ(answers.accepted(0).seq(), 1u);
  ASSERT_EQ(answers.done_size(), 1);
  EXPECT_EQ(answers.done(0).seq(), 1u);
  EXPECT_EQ(answers.failed_size(), 0);
}

// A string field that is not UTF-8 fails protobuf's parse of the request: a
// session ends with INVALID_ARGUMENT saying so.
TEST_F(HostileInputTest, InvalidUtf8EndsASessionWithInvalidArgument) {
  grpc::ClientContext context;
  std::unique_ptr<RawStream> stream = OpenRawSession(context);
  // Encoded by hand: the client library would refuse to.
  const std::string function = "\xff\xfe";
  std::string submit = "\x12";  // SessionSubmit.request
  submit += static_cast<char>(2 + function.size());
  submit += "\x0a";  // SubmitRequest.function
  submit += static_cast<char>(function.size());
  submit += function;
  std::string request = "\x0a";  // SessionRequest.submits
  request += static_cast<char>(submit.size());
  request += submit;
  ASSERT_TRUE(stream->Write(Bytes(request)));
  stream->WritesDone();
  v1::SessionResponse answers;
  const grpc::Status status = ReadToEnd(*stream, &answers);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("UTF-8"));
}

// Sum of remex_tasks_completed_total for succeeded `echo` tasks, -1 if the
// metrics cannot be read.
double SucceededEchoes(const std::string& metrics_address) {
  absl::StatusOr<testing::HttpResponse> answer =
      testing::HttpGet(metrics_address, "/metrics");
  if (!answer.ok()) return -1;
  double sum = 0;
  for (absl::string_view line : absl::StrSplit(answer->body, '\n')) {
    if (!absl::StartsWith(line, "remex_tasks_completed_total{") ||
        !absl::StrContains(line, "function=\"echo\"") ||
        !absl::StrContains(line, "state=\"succeeded\"")) {
      continue;
    }
    double value = 0;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &value)) {
      sum += value;
    }
  }
  return sum;
}

// Answers and ends that pile up while the client does not read go in
// messages a default client can take (4 MiB), answers counted.
TEST_F(HostileInputTest, SessionResponsesFitADefaultClient) {
  constexpr int kTasks = 2000;
  // One message: the ends of a batch wait for its answers, so they pile up.
  constexpr int kPerMessage = kTasks;
  absl::StatusOr<std::string> metrics = server_->MetricsAddress();
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  const double before = SucceededEchoes(*metrics);
  ASSERT_GE(before, 0);

  grpc::ClientContext context;
  std::unique_ptr<SessionStream> stream = OpenSession(context);
  v1::SubmitRequest echo = Echo();
  echo.set_input(std::string(16 << 10, 'i'));
  for (int first = 0; first < kTasks; first += kPerMessage) {
    v1::SessionRequest request;
    for (int seq = first; seq < first + kPerMessage; ++seq) {
      AddSubmit(request, seq, echo);
    }
    ASSERT_TRUE(stream->Write(request));
  }
  // Read late: once every task has ended.
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return SucceededEchoes(*metrics) >= before + kTasks; },
      absl::Seconds(20)));

  absl::flat_hash_map<uint64_t, std::string> accepted;
  int done = 0;
  size_t largest = 0;
  v1::SessionResponse response;
  // A message over the client's limit would fail the read.
  while (done < kTasks && stream->Read(&response)) {
    largest = std::max(largest, response.ByteSizeLong());
    for (const auto& item : response.accepted()) {
      accepted[item.seq()] = item.id();
    }
    EXPECT_EQ(response.failed_size(), 0);
    done += response.done_size();
  }
  EXPECT_EQ(done, kTasks);
  EXPECT_EQ(accepted.size(), static_cast<size_t>(kTasks));
  EXPECT_LT(largest, kDefaultReceiveLimit);
  EXPECT_GT(largest, kDefaultReceiveLimit / 2);  // the budget was reached
  stream->WritesDone();
  const grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
}

}  // namespace
}  // namespace remex
