// remex.v1.Executor/Session on the wire, against the real remex-server: what
// a client without the SDK sees.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "remex/v1/executor.grpc.pb.h"
#include "tests/testing/executor_calls.h"
#include "tests/testing/server_process.h"
#include "tests/testing/store_param.h"

namespace remex {
namespace {

using testing::AddCancel;
using testing::AddSubmit;

using Stream =
    grpc::ClientReaderWriter<v1::SessionRequest, v1::SessionResponse>;

constexpr absl::Duration kDeadline = absl::Seconds(20);

// Everything a stream answered, by seq.
struct Answers {
  absl::flat_hash_map<uint64_t, std::string> accepted;
  absl::flat_hash_map<uint64_t, v1::TaskError> failed;
  absl::flat_hash_map<uint64_t, v1::Task> done;
  // Seqs whose done came before their accepted (a protocol violation).
  std::vector<uint64_t> done_before_accepted;

  void Add(const v1::SessionResponse& response) {
    for (const auto& item : response.accepted()) {
      accepted[item.seq()] = item.id();
    }
    for (const auto& item : response.failed())
      failed[item.seq()] = item.error();
    for (const auto& item : response.done()) {
      if (!accepted.contains(item.seq())) {
        done_before_accepted.push_back(item.seq());
      }
      done[item.seq()] = item.task();
    }
  }
};

// One server per test, on the store of the parameter (memory, or a fresh
// PostgreSQL database), and one Session stream to it.
class SessionRpcTest : public ::testing::TestWithParam<testing::StoreKind> {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> store = testing::FreshStoreUrl(GetParam());
    ASSERT_TRUE(store.ok()) << store.status();
    store_url_ = *store;
    absl::StatusOr<std::unique_ptr<testing::ServerProcess>> server =
        testing::ServerProcess::Start(
            {"--shutdown-grace", "100ms", "--store", store_url_});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = v1::Executor::NewStub(grpc::CreateChannel(
        server_->address(), grpc::InsecureChannelCredentials()));
    context_.set_deadline(absl::ToChronoTime(absl::Now() + kDeadline));
    stream_ = stub_->Session(&context_);
  }

  // Reads until `done` holds, or the stream ends.
  template <class Until>
  bool ReadUntil(Until done) {
    v1::SessionResponse response;
    while (!done()) {
      if (!stream_->Read(&response)) return false;
      answers_.Add(response);
    }
    return true;
  }

  bool durable() const { return GetParam() == testing::StoreKind::kPostgres; }

  std::string store_url_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<v1::Executor::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<Stream> stream_;
  Answers answers_;
};

INSTANTIATE_TEST_SUITE_P(Stores, SessionRpcTest,
                         ::testing::ValuesIn(testing::kAllStores),
                         testing::StoreKindName);

TEST_P(SessionRpcTest, BatchOfSubmitsIsAnsweredPerTaskThenEndedOk) {
  v1::SessionRequest request;
  for (uint64_t seq = 1; seq <= 50; ++seq) {
    AddSubmit(request, seq, "echo", "x", static_cast<double>(seq));
  }
  AddSubmit(request, 51, "no_such_function");
  v1::SessionSubmit* bad = request.add_submits();
  bad->set_seq(52);
  bad->mutable_request()->set_function("echo");
  bad->mutable_request()->set_max_attempts(-1);
  ASSERT_TRUE(stream_->Write(request));
  ASSERT_TRUE(ReadUntil([&] { return answers_.done.size() == 50; }));

  EXPECT_EQ(answers_.accepted.size(), 50u);
  EXPECT_TRUE(answers_.done_before_accepted.empty());
  ASSERT_EQ(answers_.failed.size(), 2u);
  EXPECT_EQ(answers_.failed[51].code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(answers_.failed[51].message().find("no_such_function"),
            std::string::npos);
  EXPECT_EQ(answers_.failed[52].code(), grpc::StatusCode::INVALID_ARGUMENT);
  for (uint64_t seq = 1; seq <= 50; ++seq) {
    const v1::Task& task = answers_.done[seq];
    EXPECT_EQ(task.state(), v1::SUCCEEDED);
    EXPECT_EQ(task.id(), answers_.accepted[seq]);
    EXPECT_EQ(task.result().struct_value().fields().at("x").number_value(),
              static_cast<double>(seq));
  }
  // Half-closed with nothing left to report: the server ends with OK.
  ASSERT_TRUE(stream_->WritesDone());
  v1::SessionResponse extra;
  EXPECT_FALSE(stream_->Read(&extra));
  const grpc::Status status = stream_->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_P(SessionRpcTest, WatchAndCancelByIdAndUnknownIds) {
  v1::SessionRequest request;
  AddSubmit(request, 1, "sleep", "ms", 60000);
  ASSERT_TRUE(stream_->Write(request));
  ASSERT_TRUE(ReadUntil([&] { return answers_.accepted.contains(1); }));
  const std::string id = answers_.accepted[1];

  request.Clear();
  v1::SessionWatch* watch = request.add_watches();
  watch->set_seq(2);
  watch->set_id(id);
  v1::SessionWatch* unknown_watch = request.add_watches();
  unknown_watch->set_seq(3);
  unknown_watch->set_id("000000000000000000000000");
  v1::SessionCancel* cancel = request.add_cancels();
  cancel->set_seq(4);
  cancel->set_id(id);
  v1::SessionCancel* unknown_cancel = request.add_cancels();
  unknown_cancel->set_seq(5);
  unknown_cancel->set_id("000000000000000000000000");
  ASSERT_TRUE(stream_->Write(request));
  ASSERT_TRUE(ReadUntil([&] {
    return answers_.done.size() == 2 && answers_.failed.size() == 2 &&
           answers_.accepted.contains(4);
  }));
  // Both the submit and the watch report the end.
  EXPECT_EQ(answers_.done[1].state(), v1::CANCELLED);
  EXPECT_EQ(answers_.done[2].state(), v1::CANCELLED);
  EXPECT_EQ(answers_.done[2].id(), id);
  EXPECT_EQ(answers_.failed[3].code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(answers_.failed[5].code(), grpc::StatusCode::NOT_FOUND);
}

// A task that ends within the hold is accepted and ended in one response:
// the client reads once. Sequential round trips, as a caller that waits for
// each result makes them; without the hold most took two responses (the
// task ended while the acceptance was being written).
TEST_P(SessionRpcTest, ShortTaskIsAcceptedAndEndedInOneResponse) {
  if (durable()) {
    GTEST_SKIP() << "the durable store answers a submit once it is stored, "
                    "later: no batch's answers wait";
  }
  constexpr int kTrips = 20;
  int merged = 0;
  for (int seq = 1; seq <= kTrips; ++seq) {
    v1::SessionRequest request;
    AddSubmit(request, seq, "echo", "x", seq);
    ASSERT_TRUE(stream_->Write(request));
    v1::SessionResponse response;
    ASSERT_TRUE(stream_->Read(&response));
    answers_.Add(response);
    if (response.accepted_size() == 1 && response.done_size() == 1) ++merged;
    ASSERT_TRUE(ReadUntil([&] { return answers_.done.contains(seq); }));
  }
  EXPECT_TRUE(answers_.done_before_accepted.empty());
  // Most, not all: a loaded machine may start a task later than the hold.
  EXPECT_GE(merged, kTrips * 3 / 4);
}

// The hold lets a longer task's acceptance go well before its end, and does
// not keep a refusal or a cancel's answer at all.
TEST_P(SessionRpcTest, HoldKeepsNeitherLongTasksNorRefusalsWaiting) {
  v1::SessionRequest request;
  AddSubmit(request, 1, "sleep", "ms", 60000);
  ASSERT_TRUE(stream_->Write(request));
  const absl::Time start = absl::Now();
  ASSERT_TRUE(ReadUntil([&] { return answers_.accepted.contains(1); }));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_FALSE(answers_.done.contains(1));

  request.Clear();
  AddSubmit(request, 2, "no_such_function");
  AddSubmit(request, 3, "sleep", "ms", 60000);
  AddCancel(request, 4, answers_.accepted[1]);
  ASSERT_TRUE(stream_->Write(request));
  ASSERT_TRUE(ReadUntil([&] {
    return answers_.failed.contains(2) && answers_.accepted.contains(3) &&
           answers_.accepted.contains(4) && answers_.done.contains(1);
  }));
  EXPECT_EQ(answers_.done[1].state(), v1::CANCELLED);
  EXPECT_FALSE(answers_.done.contains(3));
}

// The memory store ends every task of the stream CANCELLED and reports it;
// the durable store cancels none: queued ones are handed back, running ones
// on their last attempt (these sleeps) end WORKER_LOST, and the stream
// reports those ends it gets before it closes.
TEST_P(SessionRpcTest, ShutdownReportsEndsThenClosesWithUnavailable) {
  v1::SessionRequest request;
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    AddSubmit(request, seq, "sleep", "ms", 60000);
  }
  ASSERT_TRUE(stream_->Write(request));
  ASSERT_TRUE(ReadUntil([&] { return answers_.accepted.size() == 5; }));
  ASSERT_EQ(server_->Signal(SIGTERM), 0);
  const absl::Time start = absl::Now();
  EXPECT_FALSE(ReadUntil([] { return false; }));  // until the stream ends
  const grpc::Status status = stream_->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << status.error_message();
  if (durable()) {
    for (const auto& [seq, task] : answers_.done) {
      EXPECT_EQ(task.state(), v1::WORKER_LOST) << seq;
    }
  } else {
    ASSERT_EQ(answers_.done.size(), 5u);
    for (const auto& [seq, task] : answers_.done) {
      EXPECT_EQ(task.state(), v1::CANCELLED) << seq;
    }
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  absl::StatusOr<int> exit_code = server_->Wait(kDeadline);
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 0);
  if (durable()) {
    // Each ended WORKER_LOST, or was handed back QUEUED.
    absl::StatusOr<testing::PostgresServer*> postgres =
        testing::SharedPostgres();
    ASSERT_TRUE(postgres.ok()) << postgres.status();
    absl::StatusOr<std::vector<std::vector<std::string>>> rows =
        (*postgres)->Query(store_url_,
                           "SELECT count(*) FROM remex_tasks WHERE state IN "
                           "(1, 7)");
    ASSERT_TRUE(rows.ok()) << rows.status();
    EXPECT_EQ(*rows, (std::vector<std::vector<std::string>>{{"5"}}));
  }
}

}  // namespace
}  // namespace remex
