#include "client/session.h"

#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "client/channel.h"
#include "common/grpc_status.h"

namespace remex::client {

absl::Status TaskSlot::WaitAccepted(absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  if (!mu_.AwaitWithDeadline(absl::Condition(&answered_), deadline)) {
    return absl::DeadlineExceededError("no answer from the server in time");
  }
  return accepted_ ? absl::OkStatus() : status_;
}

bool TaskSlot::WaitSettled(absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithDeadline(absl::Condition(&settled_), deadline);
}

absl::StatusOr<v1::Task> TaskSlot::Take() {
  absl::MutexLock lock(&mu_);
  if (!status_.ok()) return status_;
  return std::move(task_);
}

bool TaskSlot::accepted() const {
  absl::MutexLock lock(&mu_);
  return accepted_;
}

void TaskSlot::SetAccepted(std::string id) {
  absl::MutexLock lock(&mu_);
  if (answered_) return;
  id_ = std::move(id);
  answered_ = true;
  accepted_ = true;
}

void TaskSlot::SetDone(v1::Task* task) {
  absl::MutexLock lock(&mu_);
  if (settled_) return;
  task_.Swap(task);
  settled_ = true;
}

void TaskSlot::SetFailed(absl::Status status) {
  absl::MutexLock lock(&mu_);
  if (settled_) return;
  status_ = std::move(status);
  answered_ = true;
  settled_ = true;
}

// One completion-queue operation of a stream.
struct Session::Op {
  enum Type { kStart, kRead, kWrite, kFinish };
  Type type;
  Stream* stream;
};

// One Session stream. Fields marked mu_ are guarded by Session::mu_; the
// others belong to whoever holds the write (sending) or to the poller.
class Session::Stream {
 public:
  grpc::ClientContext context;
  std::unique_ptr<
      grpc::ClientAsyncReaderWriter<v1::SessionRequest, v1::SessionResponse>>
      rw;
  // mu_: items not yet written, and the slots waiting on this stream.
  v1::SessionRequest batch;
  absl::flat_hash_map<uint64_t, std::shared_ptr<TaskSlot>> slots;
  absl::flat_hash_map<uint64_t, std::shared_ptr<TaskSlot>> cancels;
  uint64_t next_seq = 0;
  int unanswered = 0;  // submits and watches without accepted/failed
  bool writing = false;
  bool retired = false;
  int pending = 0;  // operations not yet returned
  // The holder of the write.
  v1::SessionRequest sending;
  // The poller.
  v1::SessionResponse response;
  grpc::Status status;
  std::vector<std::shared_ptr<TaskSlot>> found;
  Op start{Op::kStart, this};
  Op read{Op::kRead, this};
  Op write{Op::kWrite, this};
  Op finish{Op::kFinish, this};
};

Session::Session(std::string_view address, int window)
    : window_(window > 0 ? window : 1),
      stub_(v1::Executor::NewStub(MakeChannel(address))) {
  poller_ = std::thread([this] { Poll(); });
}

Session::~Session() {
  Stream* stream = nullptr;
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
    stream = current_;
    if (stream != nullptr) ++stream->pending;  // kept alive for TryCancel
  }
  if (stream != nullptr) {
    stream->context.TryCancel();
    Release(stream);
  }
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int* streams) { return *streams == 0; }, &streams_));
  }
  cq_.Shutdown();
  poller_.join();
}

std::shared_ptr<TaskSlot> Session::Submit(v1::SubmitRequest request) {
  return Send(Kind::kSubmit, &request, std::string());
}

std::shared_ptr<TaskSlot> Session::Watch(const std::string& id) {
  return Send(Kind::kWatch, nullptr, id);
}

absl::Status Session::Cancel(const std::string& id, absl::Time deadline) {
  return Send(Kind::kCancel, nullptr, id)->WaitAccepted(deadline);
}

std::shared_ptr<TaskSlot> Session::Send(Kind kind, v1::SubmitRequest* request,
                                        const std::string& id) {
  auto slot = std::make_shared<TaskSlot>();
  Stream* stream = nullptr;
  bool open = false;
  bool write = false;
  {
    absl::MutexLock lock(&mu_);
    if (kind != Kind::kCancel) {
      // Flow control: wait for answers while the window is full.
      mu_.Await(absl::Condition(
          +[](Session* session) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return session->closing_ || session->current_ == nullptr ||
                   session->current_->unanswered < session->window_;
          },
          this));
    }
    if (closing_) {
      slot->SetFailed(absl::CancelledError("the client is closing"));
      return slot;
    }
    if (current_ == nullptr) {
      current_ = new Stream;
      ++streams_;
      current_->pending = 2;  // the start and the first read
      open = true;
    }
    stream = current_;
    const uint64_t seq = ++stream->next_seq;
    switch (kind) {
      case Kind::kSubmit: {
        v1::SessionSubmit* item = stream->batch.add_submits();
        item->set_seq(seq);
        item->mutable_request()->Swap(request);
        break;
      }
      case Kind::kWatch: {
        v1::SessionWatch* item = stream->batch.add_watches();
        item->set_seq(seq);
        item->set_id(id);
        break;
      }
      case Kind::kCancel: {
        v1::SessionCancel* item = stream->batch.add_cancels();
        item->set_seq(seq);
        item->set_id(id);
        break;
      }
    }
    if (kind == Kind::kCancel) {
      stream->cancels.emplace(seq, slot);
    } else {
      stream->slots.emplace(seq, slot);
      ++stream->unanswered;
    }
    if (open) {
      // StartCall and Write share one operation slot: the start holds the
      // write, and its completion writes the batch.
      stream->writing = true;
    } else if (!stream->writing) {
      stream->writing = true;
      stream->sending.Swap(&stream->batch);
      ++stream->pending;
      write = true;
    }
  }
  if (open) {
    stream->rw = stub_->PrepareAsyncSession(&stream->context, &cq_);
    stream->rw->StartCall(&stream->start);
    stream->rw->Read(&stream->response, &stream->read);
  }
  if (write) stream->rw->Write(stream->sending, &stream->write);
  return slot;
}

void Session::Poll() {
  void* tag = nullptr;
  bool ok = false;
  while (cq_.Next(&tag, &ok)) OnOp(static_cast<Op*>(tag), ok);
}

void Session::OnOp(Op* op, bool ok) {
  Stream* stream = op->stream;
  switch (op->type) {
    case Op::kStart:
      if (ok) OnWritten(stream);  // else the read fails and breaks it
      break;
    case Op::kRead:
      if (ok) {
        OnRead(stream);
        stream->rw->Read(&stream->response, &stream->read);
      } else {
        stream->rw->Finish(&stream->status, &stream->finish);
      }
      return;  // the read or the finish is pending in its place
    case Op::kWrite:
      if (ok) OnWritten(stream);  // else the read fails and breaks it
      break;
    case Op::kFinish:
      Break(stream, stream->status.ok()
                        ? absl::UnavailableError("the server ended the session")
                        : common::FromGrpcStatus(stream->status));
      break;
  }
  Release(stream);
}

void Session::OnRead(Stream* stream) {
  v1::SessionResponse& response = stream->response;
  std::vector<std::shared_ptr<TaskSlot>>& found = stream->found;
  found.clear();
  {
    absl::MutexLock lock(&mu_);
    // Submits and watches are answered in `slots`, cancels in `cancels`.
    auto answer = [stream](uint64_t seq, bool settles) {
      auto it = stream->slots.find(seq);
      if (it != stream->slots.end()) {
        --stream->unanswered;
        std::shared_ptr<TaskSlot> slot = it->second;
        if (settles) stream->slots.erase(it);
        return slot;
      }
      auto cancel = stream->cancels.find(seq);
      if (cancel == stream->cancels.end()) return std::shared_ptr<TaskSlot>();
      std::shared_ptr<TaskSlot> slot = std::move(cancel->second);
      stream->cancels.erase(cancel);
      return slot;
    };
    for (const v1::SessionAccepted& item : response.accepted()) {
      found.push_back(answer(item.seq(), /*settles=*/false));
    }
    for (const v1::SessionFailed& item : response.failed()) {
      found.push_back(answer(item.seq(), /*settles=*/true));
    }
    for (const v1::SessionDone& item : response.done()) {
      auto it = stream->slots.find(item.seq());
      if (it == stream->slots.end()) {
        found.emplace_back();
        continue;
      }
      found.push_back(std::move(it->second));
      stream->slots.erase(it);
    }
  }
  // Settled outside the lock, answers before ends.
  size_t i = 0;
  for (v1::SessionAccepted& item : *response.mutable_accepted()) {
    if (found[i] != nullptr) {
      found[i]->SetAccepted(std::move(*item.mutable_id()));
    }
    ++i;
  }
  for (const v1::SessionFailed& item : response.failed()) {
    if (found[i] != nullptr) {
      found[i]->SetFailed(
          absl::Status(static_cast<absl::StatusCode>(item.error().code()),
                       item.error().message()));
    }
    ++i;
  }
  for (v1::SessionDone& item : *response.mutable_done()) {
    if (found[i] != nullptr) found[i]->SetDone(item.mutable_task());
    ++i;
  }
  found.clear();
}

void Session::OnWritten(Stream* stream) {
  stream->sending.Clear();
  bool write = false;
  {
    absl::MutexLock lock(&mu_);
    const v1::SessionRequest& batch = stream->batch;
    if (!stream->retired &&
        (batch.submits_size() > 0 || batch.watches_size() > 0 ||
         batch.cancels_size() > 0)) {
      stream->sending.Swap(&stream->batch);
      ++stream->pending;
      write = true;
    } else {
      stream->writing = false;
    }
  }
  if (write) stream->rw->Write(stream->sending, &stream->write);
}

void Session::Break(Stream* stream, const absl::Status& status) {
  const absl::Status broken(
      status.code(), absl::StrCat("the session stream to the server broke: ",
                                  status.message()));
  std::vector<std::shared_ptr<TaskSlot>> open;
  {
    absl::MutexLock lock(&mu_);
    if (current_ == stream) current_ = nullptr;
    stream->retired = true;
    stream->writing = true;  // nothing more is written
    for (auto& [seq, slot] : stream->slots) open.push_back(std::move(slot));
    for (auto& [seq, slot] : stream->cancels) open.push_back(std::move(slot));
    stream->slots.clear();
    stream->cancels.clear();
    stream->unanswered = 0;
  }
  for (const std::shared_ptr<TaskSlot>& slot : open) slot->SetFailed(broken);
}

void Session::Release(Stream* stream) {
  {
    absl::MutexLock lock(&mu_);
    if (--stream->pending > 0 || !stream->retired) return;
    --streams_;
  }
  delete stream;
}

}  // namespace remex::client
