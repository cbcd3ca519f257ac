// End-to-end round trips through a real gRPC server on 127.0.0.1, client and
// server in one process. Baselines: BM_BareUnaryEcho, a bare gRPC unary echo
// (generic service, no protobuf, one completion-queue thread) and
// BM_UnaryGet, the cheapest unary RPC of the remex server. Latency cases
// report the median round trip as the counter p50_us; throughput cases
// report items_per_second (tasks/s).
//
//   build/benchmarks/rpc_benchmark --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true   (one line)
//
// Instructions per task, repeatable (see callgrind_per_call.py):
//   benchmarks/callgrind_per_call.py build/benchmarks/rpc_benchmark
//       'BM_SdkSessionThroughput/window:1000/' 'Client::SubmitAsync'

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "benchmark/benchmark.h"
#include "benchmarks/benchmark_main.h"
#include "remex/remex.h"
#include "remex/v1/executor.grpc.pb.h"
#include "server/executor/executor.h"
#include "server/functions/builtin_functions.h"
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
    (void)functions::RegisterBuiltinFunctions({}, registry_);
    executor::ExecutorOptions options;
    options.pools.push_back({.name = "default", .workers = 2});
    executor_ = *executor::Executor::Create(options, registry_);
    rpc_ = *rpc::RpcServer::Start({.listen = "127.0.0.1:0"}, *executor_);
  }

  executor::FunctionRegistry registry_;
  std::unique_ptr<executor::Executor> executor_;
  std::unique_ptr<rpc::RpcServer> rpc_;
};

// Records the time of each iteration; reports the median as p50_us.
class Latencies {
 public:
  explicit Latencies(benchmark::State& state) : state_(state) {
    samples_.reserve(1 << 16);
  }
  ~Latencies() {
    if (samples_.empty()) return;
    auto middle = samples_.begin() + samples_.size() / 2;
    std::nth_element(samples_.begin(), middle, samples_.end());
    state_.counters["p50_us"] = *middle;
  }
  // Times `call`.
  template <class Call>
  void Time(Call call) {
    const auto start = std::chrono::steady_clock::now();
    call();
    samples_.push_back(std::chrono::duration<double, std::micro>(
                           std::chrono::steady_clock::now() - start)
                           .count());
  }

 private:
  benchmark::State& state_;
  std::vector<double> samples_;
};

// A bare gRPC echo server: any unary call gets its request bytes back. One
// completion queue and one thread, as lean as gRPC's async API gets.
class EchoServer {
 public:
  static EchoServer& Get() {
    static EchoServer* server = new EchoServer;
    return *server;
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  // One call: request, read, write-and-finish, then it is replaced.
  struct Call {
    enum Step { kRequested, kRead, kFinished } step = kRequested;
    grpc::GenericServerContext context;
    grpc::GenericServerAsyncReaderWriter stream{&context};
    grpc::ByteBuffer buffer;
  };

  EchoServer() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterAsyncGenericService(&service_);
    cq_ = builder.AddCompletionQueue();
    server_ = builder.BuildAndStart();
    for (int i = 0; i < 16; ++i) Request();
    thread_ = std::thread([this] { Poll(); });
  }

  void Request() {
    Call* call = new Call;
    service_.RequestCall(&call->context, &call->stream, cq_.get(), cq_.get(),
                         call);
  }

  void Poll() {
    void* tag = nullptr;
    bool ok = false;
    while (cq_->Next(&tag, &ok)) {
      Call* call = static_cast<Call*>(tag);
      if (!ok && call->step != Call::kRead) {
        delete call;
        continue;
      }
      switch (call->step) {
        case Call::kRequested:
          Request();
          call->step = Call::kRead;
          call->stream.Read(&call->buffer, call);
          break;
        case Call::kRead:
          call->step = Call::kFinished;
          call->stream.WriteAndFinish(call->buffer, grpc::WriteOptions(),
                                      grpc::Status::OK, call);
          break;
        case Call::kFinished:
          delete call;
          break;
      }
    }
  }

  int port_ = 0;
  grpc::AsyncGenericService service_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::unique_ptr<grpc::Server> server_;
  std::thread thread_;
};

void BM_BareUnaryEcho(benchmark::State& state) {
  grpc::GenericStub stub(grpc::CreateChannel(
      EchoServer::Get().address(), grpc::InsecureChannelCredentials()));
  grpc::CompletionQueue cq;
  const grpc::Slice slice("echo", 4);
  const grpc::ByteBuffer request(&slice, 1);
  Latencies latencies(state);
  for (auto _ : state) {
    latencies.Time([&] {
      grpc::ClientContext context;
      grpc::ByteBuffer response;
      grpc::Status status;
      auto call =
          stub.PrepareUnaryCall(&context, "/bare.Echo/Echo", request, &cq);
      call->StartCall();
      call->Finish(&response, &status, &response);
      void* tag = nullptr;
      bool ok = false;
      if (!cq.Next(&tag, &ok) || !ok || !status.ok()) {
        state.SkipWithError("echo");
      }
    });
  }
}
BENCHMARK(BM_BareUnaryEcho)->UseRealTime();

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
  Latencies latencies(state);
  for (auto _ : state) {
    latencies.Time([&] {
      grpc::ClientContext context;
      v1::Task response;
      if (!stub->Get(&context, request, &response).ok()) {
        state.SkipWithError("Get");
      }
    });
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

// Submit and get() one task at a time: the SDK's round trip. Arg 1: over
// the session (the default); 0: unary RPCs.
void BM_SdkSubmitGet(benchmark::State& state) {
  Client client(Server::Get().address(), {.use_session = state.range(0) != 0});
  client.Submit("echo").get();  // connected and warm
  Latencies latencies(state);
  for (auto _ : state) {
    latencies.Time(
        [&] { benchmark::DoNotOptimize(client.Submit("echo").get()); });
  }
}
BENCHMARK(BM_SdkSubmitGet)->ArgName("session")->Arg(1)->Arg(0)->UseRealTime();

// The same with SubmitAsync: the caller waits once, for the task's end (the
// server's answer to the submit arrives on the way).
void BM_SdkSubmitAsyncGet(benchmark::State& state) {
  Client client(Server::Get().address());
  client.Submit("echo").get();  // connected and warm
  Latencies latencies(state);
  for (auto _ : state) {
    latencies.Time(
        [&] { benchmark::DoNotOptimize(client.SubmitAsync("echo").get()); });
  }
}
BENCHMARK(BM_SdkSubmitAsyncGet)->UseRealTime();

// Throughput of no-op tasks from one thread through the SDK's session:
// keeps a window of Arg futures in flight (SubmitAsync), get() of the
// oldest makes room for the next.
void BM_SdkSessionThroughput(benchmark::State& state) {
  Client client(Server::Get().address());
  const size_t window = static_cast<size_t>(state.range(0));
  std::deque<Future> in_flight;
  for (auto _ : state) {
    if (in_flight.size() >= window) {
      in_flight.front().get();
      in_flight.pop_front();
    }
    in_flight.push_back(client.SubmitAsync("echo"));
  }
  for (const Future& future : in_flight) future.get();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SdkSessionThroughput)
    ->ArgName("window")
    ->Arg(1000)
    ->Arg(10000)
    ->UseRealTime();

// The same from several threads that share one Client, each with Submit
// (which waits for the server's answer) and a window of 1000 futures: the
// session coalesces their submits.
void BM_SdkSessionThreads(benchmark::State& state) {
  static Client* client = new Client(Server::Get().address());
  std::deque<Future> in_flight;
  for (auto _ : state) {
    if (in_flight.size() >= 1000) {
      in_flight.front().get();
      in_flight.pop_front();
    }
    in_flight.push_back(client->Submit("echo"));
  }
  for (const Future& future : in_flight) future.get();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SdkSessionThreads)->Threads(8)->UseRealTime();

}  // namespace
}  // namespace remex

int main(int argc, char** argv) {
  return remex::benchmarks::RunBenchmarks(argc, argv);
}
