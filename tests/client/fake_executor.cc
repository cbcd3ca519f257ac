#include "tests/client/fake_executor.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace remex::testing {
namespace {

bool IsTerminal(v1::State state) {
  return state == v1::SUCCEEDED || state == v1::FAILED ||
         state == v1::CANCELLED || state == v1::TIMED_OUT ||
         state == v1::WORKER_LOST;
}

absl::Duration FromProto(const google::protobuf::Duration& duration) {
  return absl::Seconds(duration.seconds()) +
         absl::Nanoseconds(duration.nanos());
}

void Fail(uint64_t seq, int32_t code, std::string message,
          v1::SessionResponse* response) {
  v1::SessionFailed* failed = response->add_failed();
  failed->set_seq(seq);
  failed->mutable_error()->set_code(code);
  failed->mutable_error()->set_message(std::move(message));
}

// The call's `authorization` metadata, empty without one.
std::string Authorization(const grpc::ServerContext& context) {
  const auto& metadata = context.client_metadata();
  const auto it = metadata.find("authorization");
  return it == metadata.end()
             ? std::string()
             : std::string(it->second.data(), it->second.size());
}

}  // namespace

void FakeExecutor::RecordCallLocked(const std::string& method,
                                    const grpc::ServerContext& context) {
  ++calls_[method];
  authorization_[method] = Authorization(context);
}

std::string FakeExecutor::authorization(const std::string& method) const {
  absl::MutexLock lock(&mu_);
  const auto it = authorization_.find(method);
  return it == authorization_.end() ? "" : it->second;
}

FakeExecutor::FakeExecutor(std::shared_ptr<grpc::ServerCredentials> credentials)
    : submit_status_(grpc::StatusCode::UNIMPLEMENTED, "no submits"),
      credentials_(credentials != nullptr ? std::move(credentials)
                                          : grpc::InsecureServerCredentials()) {
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", credentials_, &port);
  builder.RegisterService(this);
  server_ = builder.BuildAndStart();
  address_ = absl::StrCat("127.0.0.1:", port);
}

FakeExecutor::~FakeExecutor() { Shutdown(); }

void FakeExecutor::Shutdown() {
  if (server_ == nullptr) return;
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  server_.reset();
}

void FakeExecutor::Put(v1::Task task) {
  absl::MutexLock lock(&mu_);
  std::string id = task.id();
  tasks_[id] = std::move(task);
}

void FakeExecutor::RefuseSubmits(grpc::Status status) {
  absl::MutexLock lock(&mu_);
  submit_status_ = std::move(status);
}

int FakeExecutor::sessions() const {
  absl::MutexLock lock(&mu_);
  return sessions_;
}

int FakeExecutor::calls(const std::string& method) const {
  absl::MutexLock lock(&mu_);
  auto it = calls_.find(method);
  return it == calls_.end() ? 0 : it->second;
}

bool FakeExecutor::WaitForCalls(const std::string& method, int n,
                                absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = calls_.find(method);
    return it != calls_.end() && it->second >= n;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
}

grpc::Status FakeExecutor::FindLocked(const std::string& id, v1::Task* task) {
  auto it = tasks_.find(id);
  if (it == tasks_.end()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("no task ", id));
  }
  *task = it->second;
  return grpc::Status::OK;
}

grpc::Status FakeExecutor::Submit(grpc::ServerContext* context,
                                  const v1::SubmitRequest*, v1::Task*) {
  absl::MutexLock lock(&mu_);
  RecordCallLocked("Submit", *context);
  return submit_status_;
}

grpc::Status FakeExecutor::Await(grpc::ServerContext* context,
                                 const v1::AwaitRequest* request,
                                 v1::Task* response) {
  absl::MutexLock lock(&mu_);
  RecordCallLocked("Await", *context);
  const std::string& id = request->id();
  auto terminal_or_gone = [this, &id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = tasks_.find(id);
    return it == tasks_.end() || IsTerminal(it->second.state());
  };
  mu_.AwaitWithTimeout(absl::Condition(&terminal_or_gone),
                       FromProto(request->timeout()));
  return FindLocked(id, response);
}

grpc::Status FakeExecutor::Cancel(grpc::ServerContext* context,
                                  const v1::CancelRequest* request,
                                  v1::Task* response) {
  absl::MutexLock lock(&mu_);
  RecordCallLocked("Cancel", *context);
  grpc::Status status = FindLocked(request->id(), response);
  if (!status.ok() || IsTerminal(response->state())) return status;
  v1::Task& task = tasks_[request->id()];
  task.set_state(v1::CANCELLED);
  task.set_cancel_requested(true);
  *response = task;
  return status;
}

grpc::Status FakeExecutor::Get(grpc::ServerContext* context,
                               const v1::GetRequest* request,
                               v1::Task* response) {
  absl::MutexLock lock(&mu_);
  RecordCallLocked("Get", *context);
  return FindLocked(request->id(), response);
}

grpc::Status FakeExecutor::Session(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::SessionResponse, v1::SessionRequest>* stream) {
  {
    absl::MutexLock lock(&mu_);
    ++sessions_;
    authorization_["Session"] = Authorization(*context);
  }
  v1::SessionRequest request;
  while (stream->Read(&request)) {
    v1::SessionResponse response;
    bool go_on = false;
    {
      absl::MutexLock lock(&mu_);
      go_on = AnswerLocked(request, &response);
    }
    if (response.ByteSizeLong() > 0 && !stream->Write(response)) break;
    if (!go_on)
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake break");
  }
  return grpc::Status::OK;
}

bool FakeExecutor::AnswerLocked(const v1::SessionRequest& request,
                                v1::SessionResponse* response) {
  for (const v1::SessionSubmit& item : request.submits()) {
    const std::string& function = item.request().function();
    const std::string id = absl::StrCat(function, "-", item.seq());
    if (function == "break") return false;
    if (function == "badcode") {
      Fail(item.seq(), 99, "bad code", response);
      continue;
    }
    if (function != "echo" && function != "hold") {
      Fail(item.seq(), grpc::StatusCode::NOT_FOUND,
           absl::StrCat("no function ", function), response);
      continue;
    }
    v1::SessionAccepted* accepted = response->add_accepted();
    accepted->set_seq(item.seq());
    accepted->set_id(id);
    if (function == "hold") continue;
    v1::SessionDone* done = response->add_done();
    done->set_seq(item.seq());
    v1::Task* task = done->mutable_task();
    task->set_id(id);
    task->set_function(function);
    task->set_state(v1::SUCCEEDED);
    *task->mutable_result() = item.request().args();
  }
  for (const v1::SessionWatch& item : request.watches()) {
    auto it = tasks_.find(item.id());
    if (it == tasks_.end()) {
      Fail(item.seq(), grpc::StatusCode::NOT_FOUND,
           absl::StrCat("no task ", item.id()), response);
      continue;
    }
    v1::SessionAccepted* accepted = response->add_accepted();
    accepted->set_seq(item.seq());
    accepted->set_id(item.id());
    if (!IsTerminal(it->second.state())) continue;
    v1::SessionDone* done = response->add_done();
    done->set_seq(item.seq());
    *done->mutable_task() = it->second;
  }
  for (const v1::SessionCancel& item : request.cancels()) {
    auto it = tasks_.find(item.id());
    if (it == tasks_.end()) {
      Fail(item.seq(), grpc::StatusCode::NOT_FOUND,
           absl::StrCat("no task ", item.id()), response);
      continue;
    }
    if (!IsTerminal(it->second.state())) it->second.set_state(v1::CANCELLED);
    v1::SessionAccepted* accepted = response->add_accepted();
    accepted->set_seq(item.seq());
    accepted->set_id(item.id());
  }
  return true;
}

}  // namespace remex::testing
