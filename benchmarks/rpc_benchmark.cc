// End-to-end round trips through a real gRPC server on 127.0.0.1, client and
// server in one process. BM_UnaryGet is the baseline: the cheapest unary RPC
// of the same server, no task involved.
//
//   build/benchmarks/rpc_benchmark --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true   (one line)
#include <grpcpp/grpcpp.h>

#include <memory>

#include "benchmark/benchmark.h"
#include "remex/remex.h"
#include "remex/v1/executor.grpc.pb.h"
#include "server/executor/builtin_functions.h"
#include "server/executor/executor.h"
#include "server/rpc/rpc_server.h"

namespace remex {
namespace {

// One server for the whole run.
class Server {
 public:
  static Server& Get() {
    static Server* server = new Server;
    return *server;
  }
  const std::string& address() const { return rpc_->address(); }

 private:
  Server() {
    (void)executor::RegisterBuiltinFunctions({}, registry_);
    executor::ExecutorOptions options;
    options.pools.push_back({.name = "default", .workers = 2});
    executor_ = *executor::Executor::Create(options, registry_);
    rpc_ = *rpc::RpcServer::Start({.listen = "127.0.0.1:0"}, *executor_);
  }

  executor::FunctionRegistry registry_;
  std::unique_ptr<executor::Executor> executor_;
  std::unique_ptr<rpc::RpcServer> rpc_;
};

std::unique_ptr<v1::Executor::Stub> NewStub() {
  return v1::Executor::NewStub(grpc::CreateChannel(
      Server::Get().address(), grpc::InsecureChannelCredentials()));
}

void BM_UnaryGet(benchmark::State& state) {
  auto stub = NewStub();
  v1::Task task;
  {
    grpc::ClientContext context;
    v1::SubmitRequest request;
    request.set_function("echo");
    (void)stub->Submit(&context, request, &task);
  }
  v1::GetRequest request;
  request.set_id(task.id());
  for (auto _ : state) {
    grpc::ClientContext context;
    v1::Task response;
    if (!stub->Get(&context, request, &response).ok())
      state.SkipWithError("Get");
  }
}
BENCHMARK(BM_UnaryGet)->UseRealTime();

void BM_UnarySubmitThenAwait(benchmark::State& state) {
  auto stub = NewStub();
  v1::SubmitRequest submit;
  submit.set_function("echo");
  for (auto _ : state) {
    v1::Task task;
    grpc::ClientContext submit_context;
    if (!stub->Submit(&submit_context, submit, &task).ok()) {
      state.SkipWithError("Submit");
    }
    v1::AwaitRequest await;
    await.set_id(task.id());
    grpc::ClientContext await_context;
    if (!stub->Await(&await_context, await, &task).ok()) {
      state.SkipWithError("Await");
    }
  }
}
BENCHMARK(BM_UnarySubmitThenAwait)->UseRealTime();

void BM_SdkSubmitGet(benchmark::State& state) {
  Client client(Server::Get().address());
  for (auto _ : state) benchmark::DoNotOptimize(client.Submit("echo").get());
}
BENCHMARK(BM_SdkSubmitGet)->UseRealTime();

}  // namespace
}  // namespace remex

BENCHMARK_MAIN();
