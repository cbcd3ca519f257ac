#include "server/rpc/rpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/rpc/calls.h"

namespace remex::rpc {
namespace {

constexpr int kMaxMessageBytes = 64 << 20;

int PollerCount(int configured) {
  if (configured > 0) return configured;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

std::string HostOf(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  return colon == std::string::npos ? listen : listen.substr(0, colon);
}

}  // namespace

absl::StatusOr<std::unique_ptr<RpcServer>> RpcServer::Start(
    const RpcServerOptions& options, executor::Executor& executor) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  std::unique_ptr<RpcServer> server(new RpcServer(executor));

  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(),
                           &server->port_);
  builder.RegisterService(&server->service_);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  // Without this, a second server on a port in use would bind it too
  // (SO_REUSEPORT) and silently share the traffic.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  const int pollers = PollerCount(options.pollers);
  for (int i = 0; i < pollers; ++i) {
    server->queues_.push_back(builder.AddCompletionQueue());
  }
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen));
  }
  server->address_ = absl::StrCat(HostOf(options.listen), ":", server->port_);
  server->server_->GetHealthCheckService()->SetServingStatus(true);

  for (auto& queue : server->queues_) {
    const CallEnv env{&server->service_, queue.get(), &executor,
                      &server->stats_};
    SpawnCalls(env, options.calls_per_method);
    server->pollers_.emplace_back(
        [raw = server.get(), cq = queue.get()] { raw->Poll(cq); });
  }
  return server;
}

RpcServer::~RpcServer() { Shutdown(absl::ZeroDuration()); }

void RpcServer::Poll(grpc::ServerCompletionQueue* cq) {
  void* tag = nullptr;
  bool ok = false;
  while (cq->Next(&tag, &ok)) static_cast<Tag*>(tag)->OnComplete(ok);
}

void RpcServer::Shutdown(absl::Duration grace) {
  if (stopped_ || server_ == nullptr) return;  // never started
  stopped_ = true;
  server_->GetHealthCheckService()->SetServingStatus(false);
  executor_.StartDrain();
  executor_.WaitUntilIdle(absl::Now() + grace);
  executor_.CancelAll("the server shut down before the task finished");
  StopServing();
}

void RpcServer::StopServing() {
  // Calls still open after this deadline (parked awaits of tasks that were
  // just cancelled are being answered) are cancelled by gRPC.
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  for (auto& queue : queues_) queue->Shutdown();
  for (std::thread& poller : pollers_) poller.join();
  pollers_.clear();
}

}  // namespace remex::rpc
