// A bare gRPC echo service on completion queues, run in-process as the
// baseline of remex-bench.
#ifndef REMEX_BENCHMARKS_ECHO_SERVICE_H_
#define REMEX_BENCHMARKS_ECHO_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "bench_echo.grpc.pb.h"

namespace remex::bench {

// Serves remex.bench.Echo on 127.0.0.1 (port 0) with one completion queue
// and one poller thread per `pollers`, like remex-server's front end, so
// that both pay the same transport costs.
//
// Thread-safe to use from clients; the destructor shuts it down.
class EchoServer {
 public:
  static absl::StatusOr<std::unique_ptr<EchoServer>> Start(int pollers);
  ~EchoServer();
  EchoServer(const EchoServer&) = delete;
  EchoServer& operator=(const EchoServer&) = delete;

  // "127.0.0.1:PORT".
  const std::string& address() const { return address_; }

 private:
  EchoServer() = default;

  Echo::AsyncService service_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs_;
  std::vector<std::thread> pollers_;
  std::string address_;
};

}  // namespace remex::bench

#endif  // REMEX_BENCHMARKS_ECHO_SERVICE_H_
