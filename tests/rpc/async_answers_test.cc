// The front end when the task calls answer later, on other threads, as
// they will with a durable store: an in-process RpcServer over a real
// Executor, behind a TaskService that hands every answer, and every task
// end, to a thread of its own after a random 0-2 ms (so a task's end is
// often told before its submit is answered). Real gRPC clients (generated
// stubs, and the SDK) check what the protocol promises: every unary call
// answered; one answer per Session item, before the item's end; one end
// per task; duplicate seqs and the window still refused; a half-close right
// after submits still answered in full.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "remex/remex.h"
#include "remex/v1/executor.grpc.pb.h"
#include "server/executor/executor.h"
#include "server/functions/builtin_functions.h"
#include "server/rpc/rpc_server.h"
#include "server/rpc/task_service.h"
#include "tests/testing/executor_calls.h"
#include "tests/testing/wait.h"

namespace remex {
namespace {

using testing::AddCancel;
using testing::AddSubmit;
using testing::AddWatch;

using executor::TaskSnapshot;
using Stream =
    grpc::ClientReaderWriter<v1::SessionRequest, v1::SessionResponse>;

constexpr absl::Duration kDeadline = absl::Seconds(60);
constexpr absl::Duration kLongWait = absl::Seconds(30);
// Longer than any test: a sleep that only a cancel ends.
constexpr int kLongSleepMs = 600000;

// Runs work on its own threads, each piece after a random 0-2 ms.
//
// Thread-safe. The destructor runs what is still queued, then joins.
class Delayer {
 public:
  explicit Delayer(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
  }
  ~Delayer() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
      cv_.SignalAll();
    }
    for (std::thread& thread : threads_) thread.join();
  }

  void Later(absl::AnyInvocable<void() &&> work) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    const absl::Time due =
        absl::Now() + absl::Microseconds(absl::Uniform(gen_, 0, 2000));
    queue_.emplace(due, std::move(work));
    cv_.Signal();
  }

  // Whether nothing was queued or running at once (within kLongWait).
  bool WaitIdle() ABSL_LOCKS_EXCLUDED(mu_) {
    return testing::WaitUntil(
        [this] {
          absl::MutexLock lock(&mu_);
          return queue_.empty() && running_ == 0;
        },
        kLongWait);
  }

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_) {
    mu_.Lock();
    for (;;) {
      if (!queue_.empty() && (stop_ || queue_.begin()->first <= absl::Now())) {
        auto node = queue_.extract(queue_.begin());
        ++running_;
        mu_.Unlock();
        std::move(node.mapped())();
        mu_.Lock();
        --running_;
        continue;
      }
      if (stop_) break;
      cv_.WaitWithDeadline(&mu_, queue_.empty() ? absl::InfiniteFuture()
                                                : queue_.begin()->first);
    }
    mu_.Unlock();
  }

  absl::Mutex mu_;
  absl::CondVar cv_;
  absl::BitGen gen_ ABSL_GUARDED_BY(mu_);
  std::multimap<absl::Time, absl::AnyInvocable<void() &&>> queue_
      ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

// The executor's task calls, with every answer, done callback and listener
// call moved to a Delayer thread: never inline.
//
// Thread-safe. Does not own the executor or the delayer.
class DelayedTaskService final : public rpc::TaskService {
 public:
  DelayedTaskService(executor::Executor& executor, Delayer& delayer)
      : inner_(executor), delayer_(delayer) {}

  void SubmitAsync(executor::TaskSpec spec, const executor::Caller& caller,
                   executor::DoneListener* listener, uint64_t tag,
                   executor::Executor::SubmitDone done) override {
    auto race = std::make_shared<Race>();
    DelayedListener* delayed = listener == nullptr
                                   ? nullptr
                                   : new DelayedListener(this, listener, race);
    inner_.SubmitAsync(std::move(spec), caller, delayed, tag,
                       [this, delayed, race, done = std::move(done)](
                           absl::StatusOr<TaskSnapshot> task) mutable {
                         if (!task.ok()) {
                           delete delayed;  // a refused task tells no one
                         }
                         Later([race, done = std::move(done),
                                task = std::move(task)]() mutable {
                           race->first.exchange(true);
                           done(std::move(task));
                         });
                       });
  }
  void GetAsync(const std::string& id, const executor::Caller& caller,
                executor::Executor::TaskDone done) override {
    inner_.GetAsync(id, caller, Delay(std::move(done)));
  }
  void CancelAsync(const std::string& id, const executor::Caller& caller,
                   executor::Executor::TaskDone done) override {
    inner_.CancelAsync(id, caller, Delay(std::move(done)));
  }
  void DeleteAsync(const std::string& id, const executor::Caller& caller,
                   executor::Executor::StatusDone done) override {
    inner_.DeleteAsync(id, caller, Delay(std::move(done)));
  }
  void ListAsync(executor::ListQuery query, const executor::Caller& caller,
                 executor::Executor::ListDone done) override {
    inner_.ListAsync(std::move(query), caller, Delay(std::move(done)));
  }
  void OnDoneAsync(const std::string& id, executor::DoneCallback callback,
                   const executor::Caller& caller,
                   executor::Executor::StatusDone registered) override {
    auto race = std::make_shared<Race>();
    inner_.OnDoneAsync(
        id,
        [this, race, callback = std::move(callback)](const TaskSnapshot& task) {
          Later([this, race, callback, task] {
            if (!race->first.exchange(true)) {
              ends_before_answers_.fetch_add(1);
            }
            callback(task);
          });
        },
        caller,
        [this, race,
         registered = std::move(registered)](absl::Status status) mutable {
          Later([race, registered = std::move(registered),
                 status = std::move(status)]() mutable {
            race->first.exchange(true);
            registered(std::move(status));
          });
        });
  }

  const executor::FunctionRegistry& functions() const override {
    return inner_.functions();
  }
  const std::string& DefaultPoolOf(
      const executor::FunctionSpec& function) const override {
    return inner_.DefaultPoolOf(function);
  }
  std::vector<executor::PoolStats> PoolStatistics() const override {
    return inner_.PoolStatistics();
  }

  // Answers delivered (all of them later, on a Delayer thread).
  int64_t late_answers() const { return late_answers_.load(); }
  // Task ends (of Session submits and watches) told before the call that
  // followed the task was answered: the order a durable store may take.
  int64_t ends_before_answers() const { return ends_before_answers_.load(); }

 private:
  // Which of a call's answer and its task's end was told first.
  struct Race {
    std::atomic<bool> first{false};
  };

  // Tells `target` of the end later; deletes itself once it has.
  class DelayedListener final : public executor::DoneListener {
   public:
    DelayedListener(DelayedTaskService* service, executor::DoneListener* target,
                    std::shared_ptr<Race> race)
        : service_(service), target_(target), race_(std::move(race)) {}
    void OnTaskDone(uint64_t tag, const TaskSnapshot& task) override {
      service_->Later(
          [service = service_, target = target_, race = race_, tag, task] {
            if (!race->first.exchange(true)) {
              service->ends_before_answers_.fetch_add(1);
            }
            target->OnTaskDone(tag, task);
          });
      delete this;
    }

   private:
    DelayedTaskService* const service_;
    executor::DoneListener* const target_;
    const std::shared_ptr<Race> race_;
  };

  void Later(absl::AnyInvocable<void() &&> work) {
    late_answers_.fetch_add(1);
    delayer_.Later(std::move(work));
  }
  // `done`, called later with what it was called with.
  template <typename Result>
  absl::AnyInvocable<void(Result)> Delay(
      absl::AnyInvocable<void(Result)> done) {
    return [this, done = std::move(done)](Result result) mutable {
      Later([done = std::move(done), result = std::move(result)]() mutable {
        done(std::move(result));
      });
    };
  }

  rpc::ExecutorTaskService inner_;
  Delayer& delayer_;
  std::atomic<int64_t> late_answers_{0};
  std::atomic<int64_t> ends_before_answers_{0};
};

// What one Session stream answered, in the order a client reads it (per
// response: accepted, failed, done).
struct SessionLog {
  struct Seq {
    int answers = 0;
    int dones = 0;
    int64_t answered_at = -1;
    int64_t done_at = -1;
    std::string id;  // accepted: the task (or watched) id
    v1::TaskError error;
    v1::Task task;
  };
  absl::flat_hash_map<uint64_t, Seq> seqs;
  int64_t events = 0;

  void Add(const v1::SessionResponse& response) {
    for (const v1::SessionAccepted& item : response.accepted()) {
      Seq& seq = seqs[item.seq()];
      ++seq.answers;
      seq.answered_at = events++;
      seq.id = item.id();
    }
    for (const v1::SessionFailed& item : response.failed()) {
      Seq& seq = seqs[item.seq()];
      ++seq.answers;
      seq.answered_at = events++;
      seq.error = item.error();
    }
    for (const v1::SessionDone& item : response.done()) {
      Seq& seq = seqs[item.seq()];
      ++seq.dones;
      seq.done_at = events++;
      seq.task = item.task();
    }
  }
  bool Accepted(uint64_t seq) const {
    auto it = seqs.find(seq);
    return it != seqs.end() && it->second.answers > 0 && it->second.id != "";
  }
};

// A Session stream whose responses a thread of its own reads into a log.
class SessionClient {
 public:
  explicit SessionClient(v1::Executor::Stub& stub) {
    context_.set_deadline(absl::ToChronoTime(absl::Now() + kDeadline));
    stream_ = stub.Session(&context_);
    reader_ = std::thread([this] {
      v1::SessionResponse response;
      while (stream_->Read(&response)) {
        absl::MutexLock lock(&mu_);
        log_.Add(response);
      }
    });
  }
  ~SessionClient() {
    if (reader_.joinable()) {
      context_.TryCancel();
      reader_.join();
    }
  }

  bool Write(const v1::SessionRequest& request) {
    return stream_->Write(request);
  }
  bool WritesDone() { return stream_->WritesDone(); }
  // Whether `condition` held on the log within kLongWait.
  template <typename Condition>
  bool WaitFor(Condition condition) {
    return testing::WaitUntil(
        [&] {
          absl::MutexLock lock(&mu_);
          return condition(log_);
        },
        kLongWait);
  }
  SessionLog log() {
    absl::MutexLock lock(&mu_);
    return log_;
  }
  // Reads to the end; the stream's status.
  grpc::Status Finish() {
    reader_.join();
    return stream_->Finish();
  }
  void Cancel() { context_.TryCancel(); }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<Stream> stream_;
  absl::Mutex mu_;
  SessionLog log_ ABSL_GUARDED_BY(mu_);
  std::thread reader_;
};

// Every seq of `answered` has exactly one answer; every accepted one of
// `followed` (submits, watches) exactly one end, after its answer; a failed
// one none.
void ExpectOneAnswerBeforeOneEnd(const SessionLog& log,
                                 const std::vector<uint64_t>& followed,
                                 const std::vector<uint64_t>& answered) {
  for (uint64_t seq : answered) {
    auto it = log.seqs.find(seq);
    ASSERT_NE(it, log.seqs.end()) << "seq " << seq << " was not answered";
    EXPECT_EQ(it->second.answers, 1) << "seq " << seq;
  }
  for (uint64_t seq : followed) {
    auto it = log.seqs.find(seq);
    ASSERT_NE(it, log.seqs.end()) << "seq " << seq << " was not answered";
    const SessionLog::Seq& entry = it->second;
    EXPECT_EQ(entry.answers, 1) << "seq " << seq;
    if (entry.id.empty()) {
      EXPECT_EQ(entry.dones, 0) << "seq " << seq << " failed, then ended";
      continue;
    }
    EXPECT_EQ(entry.dones, 1) << "seq " << seq;
    EXPECT_LT(entry.answered_at, entry.done_at)
        << "seq " << seq << ": its end came before its answer";
  }
}

class AsyncAnswersTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(/*session_window=*/100000); }

  void StartServer(int64_t session_window) {
    ASSERT_TRUE(functions::RegisterBuiltinFunctions({}, registry_).ok());
    executor::ExecutorOptions options;
    options.pools.push_back({.name = "default", .workers = 4});
    absl::StatusOr<std::unique_ptr<executor::Executor>> executor =
        executor::Executor::Create(options, registry_);
    ASSERT_TRUE(executor.ok()) << executor.status();
    executor_ = *std::move(executor);
    service_ = std::make_unique<DelayedTaskService>(*executor_, delayer_);
    absl::StatusOr<std::unique_ptr<rpc::RpcServer>> rpc =
        rpc::RpcServer::Start({.listen = "127.0.0.1:0",
                               .pollers = 2,
                               .session_window = session_window,
                               .tasks = service_.get()},
                              *executor_);
    ASSERT_TRUE(rpc.ok()) << rpc.status();
    rpc_ = *std::move(rpc);
    stub_ = v1::Executor::NewStub(grpc::CreateChannel(
        rpc_->address(), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    // Nothing the front end waits for may be left in the delayer when it
    // stops; the executor goes last.
    EXPECT_TRUE(delayer_.WaitIdle());
    if (rpc_ != nullptr) rpc_->Shutdown(absl::Milliseconds(100));
    EXPECT_TRUE(delayer_.WaitIdle());
    rpc_.reset();
    EXPECT_TRUE(delayer_.WaitIdle());
    executor_.reset();
  }

  std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(absl::ToChronoTime(absl::Now() + kDeadline));
    return context;
  }
  absl::StatusOr<v1::Task> Submit(const std::string& function,
                                  const std::string& field, double value) {
    v1::SubmitRequest request;
    request.set_function(function);
    (*request.mutable_args()->mutable_struct_value()->mutable_fields())[field]
        .set_number_value(value);
    v1::Task task;
    const grpc::Status status = stub_->Submit(Context().get(), request, &task);
    if (!status.ok()) return absl::Status(Code(status), status.error_message());
    return task;
  }
  // `timeout` < 0: none.
  absl::StatusOr<v1::Task> Await(const std::string& id,
                                 absl::Duration timeout = absl::Seconds(-1)) {
    v1::AwaitRequest request;
    request.set_id(id);
    if (timeout >= absl::ZeroDuration()) {
      const int64_t nanos = absl::ToInt64Nanoseconds(timeout);
      request.mutable_timeout()->set_seconds(nanos / 1000000000);
      request.mutable_timeout()->set_nanos(
          static_cast<int32_t>(nanos % 1000000000));
    }
    v1::Task task;
    const grpc::Status status = stub_->Await(Context().get(), request, &task);
    if (!status.ok()) return absl::Status(Code(status), status.error_message());
    return task;
  }
  absl::StatusOr<v1::Task> Get(const std::string& id) {
    v1::GetRequest request;
    request.set_id(id);
    v1::Task task;
    const grpc::Status status = stub_->Get(Context().get(), request, &task);
    if (!status.ok()) return absl::Status(Code(status), status.error_message());
    return task;
  }
  absl::StatusOr<v1::Task> Cancel(const std::string& id) {
    v1::CancelRequest request;
    request.set_id(id);
    v1::Task task;
    const grpc::Status status = stub_->Cancel(Context().get(), request, &task);
    if (!status.ok()) return absl::Status(Code(status), status.error_message());
    return task;
  }
  absl::Status Delete(const std::string& id) {
    v1::DeleteRequest request;
    request.set_id(id);
    google::protobuf::Empty empty;
    const grpc::Status status = stub_->Delete(Context().get(), request, &empty);
    return absl::Status(Code(status), status.error_message());
  }
  static absl::StatusCode Code(const grpc::Status& status) {
    return static_cast<absl::StatusCode>(status.error_code());
  }

  executor::FunctionRegistry registry_;
  Delayer delayer_{3};
  std::unique_ptr<executor::Executor> executor_;
  std::unique_ptr<DelayedTaskService> service_;
  std::unique_ptr<rpc::RpcServer> rpc_;
  std::unique_ptr<v1::Executor::Stub> stub_;
};

TEST_F(AsyncAnswersTest, UnaryCallsAreAnsweredFromOtherThreads) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 25;
  std::vector<std::thread> clients;
  absl::Mutex mu;
  std::vector<std::string> ids;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        const double x = t * 1000 + round;
        absl::StatusOr<v1::Task> submitted = Submit("echo", "x", x);
        ASSERT_TRUE(submitted.ok()) << submitted.status();
        absl::StatusOr<v1::Task> done = Await(submitted->id());
        ASSERT_TRUE(done.ok()) << done.status();
        EXPECT_EQ(done->state(), v1::SUCCEEDED);
        EXPECT_EQ(done->result().struct_value().fields().at("x").number_value(),
                  x);
        absl::StatusOr<v1::Task> got = Get(submitted->id());
        ASSERT_TRUE(got.ok()) << got.status();
        EXPECT_EQ(got->state(), v1::SUCCEEDED);
        absl::MutexLock lock(&mu);
        ids.push_back(submitted->id());
      }
    });
  }
  for (std::thread& client : clients) client.join();

  // List pages (answered later too) cover every task once.
  absl::flat_hash_set<std::string> listed;
  v1::ListRequest list;
  list.set_function("echo");
  list.set_page_size(7);
  for (;;) {
    v1::ListResponse page;
    const grpc::Status status = stub_->List(Context().get(), list, &page);
    ASSERT_TRUE(status.ok()) << status.error_message();
    for (const v1::Task& task : page.tasks()) {
      EXPECT_TRUE(listed.insert(task.id()).second) << task.id();
    }
    if (page.next_page_token().empty()) break;
    list.set_page_token(page.next_page_token());
  }
  EXPECT_EQ(listed.size(), ids.size());

  // Delete forgets; what is forgotten is NOT_FOUND everywhere.
  ASSERT_TRUE(Delete(ids[0]).ok());
  EXPECT_EQ(Get(ids[0]).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Await(ids[0]).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Cancel(ids[0]).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Delete(ids[0]).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Submit("no_such_function", "x", 1).status().code(),
            absl::StatusCode::kNotFound);

  EXPECT_GE(service_->late_answers(), 3 * kThreads * kRounds);
}

TEST_F(AsyncAnswersTest, AwaitParksTimesOutAndWakesOnTheEnd) {
  absl::StatusOr<v1::Task> sleeper = Submit("sleep", "ms", kLongSleepMs);
  ASSERT_TRUE(sleeper.ok()) << sleeper.status();

  // Past its timeout: the task as it stands (a Get answered later).
  absl::StatusOr<v1::Task> waited =
      Await(sleeper->id(), absl::Milliseconds(20));
  ASSERT_TRUE(waited.ok()) << waited.status();
  EXPECT_FALSE(waited->state() == v1::SUCCEEDED ||
               waited->state() == v1::CANCELLED);

  // Parked Awaits, woken by the end a cancel brings (told later).
  constexpr int kAwaits = 20;
  std::vector<std::thread> awaits;
  std::atomic<int> cancelled{0};
  for (int i = 0; i < kAwaits; ++i) {
    awaits.emplace_back([&] {
      absl::StatusOr<v1::Task> task = Await(sleeper->id());
      if (task.ok() && task->state() == v1::CANCELLED) cancelled.fetch_add(1);
    });
  }
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return rpc_->stats().parked_awaits.load() == kAwaits; },
      kLongWait));
  absl::StatusOr<v1::Task> cancel = Cancel(sleeper->id());
  ASSERT_TRUE(cancel.ok()) << cancel.status();
  EXPECT_EQ(cancel->state(), v1::CANCELLED);
  for (std::thread& await : awaits) await.join();
  EXPECT_EQ(cancelled.load(), kAwaits);
  EXPECT_TRUE(testing::WaitUntil(
      [&] { return rpc_->stats().parked_awaits.load() == 0; }, kLongWait));

  // A client that gives up on a parked Await: the call ends, the answers
  // that come later find it gone.
  absl::StatusOr<v1::Task> other = Submit("sleep", "ms", kLongSleepMs);
  ASSERT_TRUE(other.ok()) << other.status();
  for (int i = 0; i < 10; ++i) {
    grpc::ClientContext context;
    context.set_deadline(
        absl::ToChronoTime(absl::Now() + absl::Milliseconds(i * 3)));
    v1::AwaitRequest request;
    request.set_id(other->id());
    v1::Task task;
    const grpc::Status status = stub_->Await(&context, request, &task);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  ASSERT_TRUE(Cancel(other->id()).ok());
  EXPECT_TRUE(testing::WaitUntil(
      [&] { return rpc_->stats().parked_awaits.load() == 0; }, kLongWait));
}

TEST_F(AsyncAnswersTest, ThousandSessionSubmitsWatchesAndCancels) {
  constexpr int kMessages = 10;
  constexpr int kPerMessage = 100;
  constexpr uint64_t kWatchSeqs = 100000;
  constexpr uint64_t kCancelSeqs = 200000;
  SessionClient session(*stub_);
  std::vector<uint64_t> submits;
  std::vector<uint64_t> sleeps;
  std::vector<uint64_t> watches;
  std::vector<uint64_t> cancels;
  // The sleeps of the previous message, watched and cancelled by the next.
  std::vector<uint64_t> to_stop;
  for (int m = 0; m <= kMessages; ++m) {
    v1::SessionRequest request;
    if (!to_stop.empty()) {
      ASSERT_TRUE(session.WaitFor([&](const SessionLog& log) {
        for (uint64_t seq : to_stop) {
          if (!log.Accepted(seq)) return false;
        }
        return true;
      }));
      const SessionLog log = session.log();
      for (uint64_t seq : to_stop) {
        const std::string& id = log.seqs.at(seq).id;
        AddWatch(request, kWatchSeqs + seq, id);
        watches.push_back(kWatchSeqs + seq);
        AddCancel(request, kCancelSeqs + seq, id);
        cancels.push_back(kCancelSeqs + seq);
      }
      to_stop.clear();
    }
    if (m < kMessages) {
      for (int i = 0; i < kPerMessage; ++i) {
        const uint64_t seq = m * kPerMessage + i + 1;
        submits.push_back(seq);
        if (i % 5 == 4) {
          AddSubmit(request, seq, "sleep", "ms", kLongSleepMs);
          sleeps.push_back(seq);
          to_stop.push_back(seq);
        } else {
          AddSubmit(request, seq, "echo", "x", static_cast<double>(seq));
        }
      }
    }
    ASSERT_TRUE(session.Write(request));
  }
  // Half-closed at once: the stream still ends only after every answer and
  // end went out.
  ASSERT_TRUE(session.WritesDone());
  const grpc::Status status = session.Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();

  const SessionLog log = session.log();
  ExpectOneAnswerBeforeOneEnd(log, submits, {});
  ExpectOneAnswerBeforeOneEnd(log, watches, cancels);
  const absl::flat_hash_set<uint64_t> sleeping(sleeps.begin(), sleeps.end());
  for (uint64_t seq : submits) {
    const SessionLog::Seq& entry = log.seqs.at(seq);
    ASSERT_FALSE(entry.id.empty()) << "seq " << seq << " failed";
    if (sleeping.contains(seq)) {
      EXPECT_EQ(entry.task.state(), v1::CANCELLED) << seq;
      const SessionLog::Seq& watch = log.seqs.at(kWatchSeqs + seq);
      EXPECT_EQ(watch.id, entry.id);
      EXPECT_EQ(watch.task.state(), v1::CANCELLED) << seq;
      EXPECT_EQ(log.seqs.at(kCancelSeqs + seq).id, entry.id);
    } else {
      EXPECT_EQ(entry.task.state(), v1::SUCCEEDED) << seq;
      EXPECT_EQ(
          entry.task.result().struct_value().fields().at("x").number_value(),
          static_cast<double>(seq));
    }
  }
  EXPECT_EQ(log.seqs.size(), submits.size() + watches.size() + cancels.size());
  // The orders a store may take did happen: ends told before answers.
  EXPECT_GT(service_->ends_before_answers(), 0);
}

TEST_F(AsyncAnswersTest, DuplicateSeqsAreRefusedAndFailuresFreeTheirSeq) {
  SessionClient session(*stub_);
  v1::SessionRequest request;
  AddSubmit(request, 1, "sleep", "ms", kLongSleepMs);
  AddSubmit(request, 1, "echo", "x", 1);  // the same seq in one message
  AddSubmit(request, 2, "no_such_function", "x", 2);
  ASSERT_TRUE(session.Write(request));
  ASSERT_TRUE(session.WaitFor([](const SessionLog& log) {
    return log.Accepted(1) && log.seqs.contains(2) &&
           log.seqs.at(1).answers == 2;
  }));
  SessionLog log = session.log();
  EXPECT_EQ(log.seqs.at(1).error.code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(log.seqs.at(2).error.code(), grpc::StatusCode::NOT_FOUND);
  const std::string sleeper = log.seqs.at(1).id;

  // Seq 1 is open (its task runs): refused again, as a submit and as a
  // watch. Seq 2 failed (answered later): free again.
  request.Clear();
  AddSubmit(request, 1, "echo", "x", 1);
  AddWatch(request, 1, sleeper);
  AddSubmit(request, 2, "echo", "x", 2);
  ASSERT_TRUE(session.Write(request));
  ASSERT_TRUE(session.WaitFor([](const SessionLog& log) {
    return log.seqs.at(1).answers == 4 && log.seqs.at(2).dones == 1;
  }));
  log = session.log();
  EXPECT_EQ(log.seqs.at(1).error.code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(log.seqs.at(1).dones, 0);
  EXPECT_EQ(log.seqs.at(2).answers, 2);
  EXPECT_EQ(log.seqs.at(2).task.state(), v1::SUCCEEDED);

  // Once seq 1's task has ended, seq 1 is free.
  request.Clear();
  AddCancel(request, 3, sleeper);
  ASSERT_TRUE(session.Write(request));
  ASSERT_TRUE(session.WaitFor(
      [](const SessionLog& log) { return log.seqs.at(1).dones == 1; }));
  EXPECT_EQ(session.log().seqs.at(1).task.state(), v1::CANCELLED);
  request.Clear();
  AddSubmit(request, 1, "echo", "x", 11);
  ASSERT_TRUE(session.Write(request));
  ASSERT_TRUE(session.WaitFor(
      [](const SessionLog& log) { return log.seqs.at(1).dones == 2; }));
  log = session.log();
  EXPECT_EQ(log.seqs.at(1).task.state(), v1::SUCCEEDED);
  EXPECT_EQ(log.seqs.at(1)
                .task.result()
                .struct_value()
                .fields()
                .at("x")
                .number_value(),
            11);
  ASSERT_TRUE(session.WritesDone());
  const grpc::Status status = session.Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
}

class AsyncAnswersWindowTest : public AsyncAnswersTest {
 protected:
  static constexpr int kWindow = 20;
  void SetUp() override { StartServer(kWindow); }
};

TEST_F(AsyncAnswersWindowTest, WindowIsEnforcedAndFreedByEnds) {
  SessionClient session(*stub_);
  v1::SessionRequest request;
  for (uint64_t seq = 1; seq <= 30; ++seq) {
    AddSubmit(request, seq, "sleep", "ms", kLongSleepMs);
  }
  ASSERT_TRUE(session.Write(request));
  ASSERT_TRUE(session.WaitFor(
      [](const SessionLog& log) { return log.seqs.size() == 30; }));
  SessionLog log = session.log();
  for (uint64_t seq = 1; seq <= 30; ++seq) {
    if (seq <= kWindow) {
      EXPECT_FALSE(log.seqs.at(seq).id.empty()) << seq;
    } else {
      EXPECT_EQ(log.seqs.at(seq).error.code(),
                grpc::StatusCode::RESOURCE_EXHAUSTED)
          << seq;
    }
  }

  // Full: a watch is refused too, until ends free the window.
  request.Clear();
  AddWatch(request, 31, log.seqs.at(1).id);
  for (uint64_t seq = 1; seq <= kWindow; ++seq) {
    AddCancel(request, 1000 + seq, log.seqs.at(seq).id);
  }
  ASSERT_TRUE(session.Write(request));
  ASSERT_TRUE(session.WaitFor([](const SessionLog& log) {
    for (uint64_t seq = 1; seq <= kWindow; ++seq) {
      if (log.seqs.at(seq).dones != 1) return false;
    }
    return log.seqs.contains(31);
  }));
  EXPECT_EQ(session.log().seqs.at(31).error.code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);

  request.Clear();
  for (uint64_t seq = 41; seq <= 40 + kWindow; ++seq) {
    AddSubmit(request, seq, "echo", "x", static_cast<double>(seq));
  }
  ASSERT_TRUE(session.Write(request));
  ASSERT_TRUE(session.WritesDone());
  const grpc::Status status = session.Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  log = session.log();
  std::vector<uint64_t> followed;
  for (uint64_t seq = 41; seq <= 40 + kWindow; ++seq) followed.push_back(seq);
  ExpectOneAnswerBeforeOneEnd(log, followed, {});
  for (uint64_t seq : followed) {
    EXPECT_EQ(log.seqs.at(seq).task.state(), v1::SUCCEEDED) << seq;
  }
}

TEST_F(AsyncAnswersTest, HalfCloseRightAfterSubmitsDeliversEverything) {
  constexpr int kStreams = 4;
  constexpr int kSubmits = 250;
  std::vector<std::unique_ptr<SessionClient>> sessions;
  for (int s = 0; s < kStreams; ++s) {
    sessions.push_back(std::make_unique<SessionClient>(*stub_));
    v1::SessionRequest request;
    for (uint64_t seq = 1; seq <= kSubmits; ++seq) {
      AddSubmit(request, seq, "echo", "x", static_cast<double>(seq));
    }
    ASSERT_TRUE(sessions.back()->Write(request));
    ASSERT_TRUE(sessions.back()->WritesDone());
  }
  std::vector<uint64_t> seqs;
  for (uint64_t seq = 1; seq <= kSubmits; ++seq) seqs.push_back(seq);
  for (auto& session : sessions) {
    const grpc::Status status = session->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    const SessionLog log = session->log();
    EXPECT_EQ(log.seqs.size(), seqs.size());
    ExpectOneAnswerBeforeOneEnd(log, seqs, {});
  }
}

TEST_F(AsyncAnswersTest, ClientThatGoesAwayLeavesTheServerWhole) {
  {
    SessionClient session(*stub_);
    v1::SessionRequest request;
    for (uint64_t seq = 1; seq <= 200; ++seq) {
      AddSubmit(request, seq, seq % 2 == 0 ? "echo" : "sleep", "ms", 5);
    }
    ASSERT_TRUE(session.Write(request));
    session.Cancel();  // answers still on their way
  }
  // The answers and ends that come now find no stream; the server serves on.
  SessionClient session(*stub_);
  v1::SessionRequest request;
  AddSubmit(request, 1, "echo", "x", 1);
  ASSERT_TRUE(session.Write(request));
  ASSERT_TRUE(session.WritesDone());
  const grpc::Status status = session.Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  ExpectOneAnswerBeforeOneEnd(session.log(), {1}, {});
  EXPECT_TRUE(testing::WaitUntil([&] { return executor_->active_tasks() == 0; },
                                 kLongWait));
}

TEST_F(AsyncAnswersTest, SdkFuturesOverASession) {
  Client client(rpc_->address());
  std::vector<Future> futures;
  for (int i = 0; i < 300; ++i) {
    futures.push_back(
        client.SubmitAsync("echo", Json(absl::StrCat(R"({"x": )", i, "}"))));
  }
  Future sleeper = client.SubmitAsync(
      "sleep", Json(absl::StrCat(R"({"ms": )", kLongSleepMs, "}")));
  for (int i = 0; i < 300; ++i) {
    const v1::Task task = [&] {
      futures[i].wait();
      return futures[i].task();
    }();
    EXPECT_EQ(task.state(), v1::SUCCEEDED) << i;
    EXPECT_EQ(task.result().struct_value().fields().at("x").number_value(), i);
  }
  EXPECT_TRUE(sleeper.cancel());
  Future unknown = client.SubmitAsync("no_such_function");
  EXPECT_EQ(unknown.result().status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace remex
