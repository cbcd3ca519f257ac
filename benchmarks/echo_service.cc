#include "echo_service.h"

#include <deque>
#include <utility>

#include "absl/strings/str_cat.h"

namespace remex::bench {
namespace {

// A completion-queue tag: the poller calls Proceed with the event's `ok`.
class Tag {
 public:
  virtual ~Tag() = default;
  virtual void Proceed(bool ok) = 0;
};

// One unary Echo call: request, answer, delete. Re-arms the accept first.
class UnaryCall final : public Tag {
 public:
  static void Spawn(Echo::AsyncService* service,
                    grpc::ServerCompletionQueue* cq) {
    auto* call = new UnaryCall(service, cq);
    service->RequestUnary(&call->context_, &call->request_, &call->responder_,
                          cq, cq, call);
  }

  void Proceed(bool ok) override {
    if (!ok || answered_) {
      delete this;
      return;
    }
    Spawn(service_, cq_);
    answered_ = true;
    responder_.Finish(request_, grpc::Status::OK, this);
  }

 private:
  UnaryCall(Echo::AsyncService* service, grpc::ServerCompletionQueue* cq)
      : service_(service), cq_(cq) {}

  Echo::AsyncService* const service_;
  grpc::ServerCompletionQueue* const cq_;
  grpc::ServerContext context_;
  EchoMessage request_;
  grpc::ServerAsyncResponseWriter<EchoMessage> responder_{&context_};
  bool answered_ = false;
};

// One Stream call: keeps a read pending at all times and writes the echoes
// one after another (gRPC allows one outstanding read and one outstanding
// write). Every tag of the call completes on the one poller of its queue, so
// no lock is needed. Deleted when its last operation returns.
class StreamCall final {
 public:
  static void Spawn(Echo::AsyncService* service,
                    grpc::ServerCompletionQueue* cq) {
    auto* call = new StreamCall(service, cq);
    call->pending_ = 1;
    service->RequestStream(&call->context_, &call->stream_, cq, cq,
                           &call->accept_tag_);
  }

 private:
  struct MemberTag final : Tag {
    MemberTag(StreamCall* call, void (StreamCall::*on)(bool))
        : call(call), on(on) {}
    void Proceed(bool ok) override { (call->*on)(ok); }
    StreamCall* call;
    void (StreamCall::*on)(bool);
  };

  StreamCall(Echo::AsyncService* service, grpc::ServerCompletionQueue* cq)
      : service_(service), cq_(cq) {}

  void OnAccept(bool ok) {
    if (ok) {
      Spawn(service_, cq_);
      Read();
    }
    Release();
  }
  void Read() {
    ++pending_;
    stream_.Read(&in_, &read_tag_);
  }
  void OnRead(bool ok) {
    if (ok) {
      outbox_.push_back(std::move(in_));
      Read();
      if (!writing_) WriteNext();
    } else {
      reads_done_ = true;
      if (!writing_) Finish();
    }
    Release();
  }
  void WriteNext() {
    writing_ = true;
    ++pending_;
    out_ = std::move(outbox_.front());
    outbox_.pop_front();
    stream_.Write(out_, &write_tag_);
  }
  void OnWrite(bool ok) {
    writing_ = false;
    if (ok && !outbox_.empty()) {
      WriteNext();
    } else if (reads_done_ || !ok) {
      Finish();
    }
    Release();
  }
  void Finish() {
    if (finishing_) return;
    finishing_ = true;
    ++pending_;
    stream_.Finish(grpc::Status::OK, &finish_tag_);
  }
  void OnFinish(bool) { Release(); }
  void Release() {
    if (--pending_ == 0) delete this;
  }

  Echo::AsyncService* const service_;
  grpc::ServerCompletionQueue* const cq_;
  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<EchoMessage, EchoMessage> stream_{&context_};
  EchoMessage in_;
  EchoMessage out_;
  std::deque<EchoMessage> outbox_;
  bool writing_ = false;
  bool reads_done_ = false;
  bool finishing_ = false;
  int pending_ = 0;
  MemberTag accept_tag_{this, &StreamCall::OnAccept};
  MemberTag read_tag_{this, &StreamCall::OnRead};
  MemberTag write_tag_{this, &StreamCall::OnWrite};
  MemberTag finish_tag_{this, &StreamCall::OnFinish};
};

}  // namespace

absl::StatusOr<std::unique_ptr<EchoServer>> EchoServer::Start(int pollers) {
  std::unique_ptr<EchoServer> echo(new EchoServer);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&echo->service_);
  for (int i = 0; i < pollers; ++i) {
    echo->cqs_.push_back(builder.AddCompletionQueue());
  }
  echo->server_ = builder.BuildAndStart();
  if (echo->server_ == nullptr || port == 0) {
    return absl::UnavailableError("the echo server did not start");
  }
  echo->address_ = absl::StrCat("127.0.0.1:", port);
  for (auto& cq : echo->cqs_) {
    // Enough accepts armed that a burst of calls does not wait for re-arms.
    for (int i = 0; i < 16; ++i) {
      UnaryCall::Spawn(&echo->service_, cq.get());
      StreamCall::Spawn(&echo->service_, cq.get());
    }
    echo->pollers_.emplace_back([cq = cq.get()] {
      void* tag = nullptr;
      bool ok = false;
      while (cq->Next(&tag, &ok)) static_cast<Tag*>(tag)->Proceed(ok);
    });
  }
  return echo;
}

EchoServer::~EchoServer() {
  server_->Shutdown(std::chrono::system_clock::now());
  for (auto& cq : cqs_) cq->Shutdown();
  for (std::thread& poller : pollers_) poller.join();
}

}  // namespace remex::bench
