// The gRPC front end: remex.v1.Executor on completion queues, plus health
// and reflection.
#ifndef REMEX_SERVER_RPC_RPC_SERVER_H_
#define REMEX_SERVER_RPC_RPC_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "remex/v1/executor.grpc.pb.h"
#include "server/executor/executor.h"
#include "server/rpc/call.h"
#include "server/rpc/session_registry.h"
#include "server/rpc/task_service.h"

namespace remex::rpc {

struct RpcServerOptions {
  // HOST:PORT; port 0 picks a free port (see RpcServer::port()).
  std::string listen = "0.0.0.0:50051";
  // Completion queues, one poller thread each; 0: one per core.
  int pollers = 0;
  // Calls of each method that can be matched at once, per queue.
  int calls_per_method = 16;
  // A connection with no call for this long is closed; zero: never.
  absl::Duration max_connection_idle = absl::ZeroDuration();
  // Where calls are counted; null: nowhere. Not owned; must outlive the
  // server.
  monitoring::GrpcMetrics* metrics = nullptr;
  // Most tasks one Session stream may follow (submitted or watched, not yet
  // ended); more are refused with RESOURCE_EXHAUSTED.
  int64_t session_window = 100000;
  // Who may call; null (or not enabled): anyone, and every caller sees
  // every task. Not owned; must outlive the server.
  const auth::Authenticator* authenticator = nullptr;
  // The listening port's credentials (e.g. auth::ServerTls's); null:
  // plaintext. The server keeps them until it is destroyed.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  // Where the task calls go; null: to the executor. A seam for tests, which
  // answer the calls later, on threads of their own. Not owned; must outlive
  // the server.
  TaskService* tasks = nullptr;
};

// Serves the executor over gRPC. Pollers only dispatch: they never run task
// code, never block on a pool and never wait for a store (the task calls
// answer them through callbacks).
//
// Thread-safe. Does not own the executor, which must outlive it.
class RpcServer {
 public:
  // Binds, starts the pollers and reports SERVING. UNAVAILABLE if the
  // address cannot be bound.
  static absl::StatusOr<std::unique_ptr<RpcServer>> Start(
      const RpcServerOptions& options, executor::Executor& executor);
  ~RpcServer();

  int port() const { return port_; }
  // The listen host with the real port, e.g. "127.0.0.1:40123".
  const std::string& address() const { return address_; }
  const FrontEndStats& stats() const { return stats_; }
  // Session streams open now.
  int64_t open_sessions() const { return sessions_.open_sessions(); }

  // Graceful stop: health NOT_SERVING and new submits refused; queued tasks
  // are cancelled; running tasks get `grace` to end, then are cancelled (so
  // every parked Await and every Session gets the ends of its tasks, and
  // each Session stream ends with UNAVAILABLE); then the server stops, the
  // queues are drained and the pollers joined. Idempotent.
  void Shutdown(absl::Duration grace);

 private:
  RpcServer(executor::Executor& executor, int64_t session_window)
      : executor_(executor),
        executor_tasks_(executor),
        sessions_(session_window) {}
  void Poll(grpc::ServerCompletionQueue* cq);
  void StopServing();

  executor::Executor& executor_;
  ExecutorTaskService executor_tasks_;
  // Held past server_, which may call into them until it is destroyed.
  std::shared_ptr<grpc::ServerCredentials> credentials_;
  FrontEndStats stats_;
  SessionRegistry sessions_;
  AuthFailureLog auth_failures_;
  ExecutorService service_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues_;
  // CallEnv::unfinished_calls of each queue, a cache line each.
  struct alignas(64) QueueCounters {
    std::atomic<int64_t> unfinished_calls{0};
  };
  std::vector<std::unique_ptr<QueueCounters>> counters_;
  std::vector<std::thread> pollers_;
  int port_ = 0;
  std::string address_;
  bool stopped_ = false;
};

}  // namespace remex::rpc

#endif  // REMEX_SERVER_RPC_RPC_SERVER_H_
