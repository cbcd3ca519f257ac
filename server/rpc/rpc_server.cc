#include "server/rpc/rpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "server/rpc/calls.h"
#include "server/rpc/reflection_v1.h"

namespace remex::rpc {
namespace {

constexpr int kMaxMessageBytes = 64 << 20;
// Longest wait at shutdown for the answers of parked Awaits to be sent.
constexpr absl::Duration kAwaitAnswerTimeout = absl::Seconds(2);
// How long open calls and idle connections get once those are sent.
constexpr absl::Duration kShutdownDeadline = absl::Milliseconds(250);

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
  std::unique_ptr<RpcServer> server(
      new RpcServer(executor, options.session_window));

  server->credentials_ = options.credentials != nullptr
                             ? options.credentials
                             : grpc::InsecureServerCredentials();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, server->credentials_,
                           &server->port_);
  builder.RegisterService(&server->service_);
  // v1alpha comes from gRPC's plugin (above); v1 is ours.
  AddReflectionV1(builder);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  // Without this, a second server on a port in use would bind it too
  // (SO_REUSEPORT) and silently share the traffic.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Clients (the SDK by default) ping to find a hung server; accept a ping
  // a second, even on a stream that only waits, rather than answer them
  // with GOAWAY after the default one per 5 minutes.
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // An idle connection holds an fd and buffers: close it (GOAWAY, then the
  // socket), so that clients that connect and go quiet cannot use up the
  // server's fds. Clients reconnect on their next call.
  if (options.max_connection_idle > absl::ZeroDuration()) {
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_IDLE_MS,
        static_cast<int>(std::min<int64_t>(
            absl::ToInt64Milliseconds(options.max_connection_idle),
            std::numeric_limits<int>::max())));
  }
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
  // Health answers for the server ("") and for its service by name;
  // Shutdown turns both to NOT_SERVING.
  grpc::HealthCheckServiceInterface* health =
      server->server_->GetHealthCheckService();
  health->SetServingStatus(remex::v1::Executor::service_full_name(), true);
  health->SetServingStatus(true);

  for (auto& queue : server->queues_) {
    server->counters_.push_back(std::make_unique<QueueCounters>());
    const CallEnv env{
        .service = &server->service_,
        .cq = queue.get(),
        .tasks =
            options.tasks != nullptr ? options.tasks : &server->executor_tasks_,
        .unfinished_calls = &server->counters_.back()->unfinished_calls,
        .stats = &server->stats_,
        .sessions = &server->sessions_,
        .metrics = options.metrics,
        .auth = {.authenticator = options.authenticator,
                 .failure_log = &server->auth_failures_,
                 .metrics = options.metrics}};
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
  const absl::Time start = absl::Now();
  server_->GetHealthCheckService()->SetServingStatus(false);
  executor_.StartDrain();
  log::Info("drain_refusing",
            "drain: health NOT_SERVING, new tasks refused, queued ones "
            "cancelled (or handed back to the store); running ones go on",
            {{"active_tasks", executor_.active_tasks()}, {"grace", grace}});
  if (executor_.WaitUntilIdle(start + grace)) {
    log::Info("drain_idle", "drain: every task ended within the grace",
              {{"took", absl::Now() - start}});
  } else {
    log::Warn("drain_grace_over",
              absl::StrCat("drain: grace over: cancelling ",
                           executor_.active_tasks(), " task(s) still running"),
              {{"active_tasks", executor_.active_tasks()}, {"grace", grace}});
  }
  executor_.CancelAll("the server shut down before the task finished");
  StopServing();
  log::Info("drain_calls_answered",
            "drain: every call answered, gRPC stopped; stopping the pools",
            {{"took", absl::Now() - start}});
}

void RpcServer::StopServing() {
  // Every task has ended by now, so every parked Await is being answered
  // and every Session reports its last ends, then ends its stream: let those
  // answers go out before gRPC cuts what is left. Server::Shutdown
  // waits for client connections to close until its deadline, so the
  // deadline is kept short once nothing of ours is in flight.
  const absl::Time answered_by = absl::Now() + kAwaitAnswerTimeout;
  sessions_.CloseAll();
  while ((stats_.parked_awaits.load() > 0 || sessions_.open_sessions() > 0) &&
         absl::Now() < answered_by) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  server_->Shutdown(absl::ToChronoTime(absl::Now() + kShutdownDeadline));
  // Awaits and Sessions still open were cut by that shutdown (with a durable
  // store, the tasks they wait for did not end here: they were handed back
  // or stopped). They answer and finish on the pollers: wait for them, since
  // a queue that has shut down refuses every new operation (gRPC aborts).
  while (stats_.parked_awaits.load() > 0 || sessions_.open_sessions() > 0) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  // A unary call whose answer a store has yet to give finishes once it
  // comes, on the queue: keep the queues (and their pollers) until then.
  // The store answers every call, with an error if nothing else.
  while (std::any_of(counters_.begin(), counters_.end(), [](const auto& c) {
    return c->unfinished_calls.load(std::memory_order_acquire) > 0;
  })) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  for (auto& queue : queues_) queue->Shutdown();
  for (std::thread& poller : pollers_) poller.join();
  pollers_.clear();
}

}  // namespace remex::rpc
