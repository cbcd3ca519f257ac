// Unary calls of remex.v1.Executor for tests that talk to a real server as
// any gRPC client would: each call has a deadline, and a call that must
// succeed fails the test (EXPECT) when it does not.
#ifndef REMEX_TESTS_TESTING_EXECUTOR_CALLS_H_
#define REMEX_TESTS_TESTING_EXECUTOR_CALLS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "remex/v1/executor.grpc.pb.h"

namespace remex::testing {

// Items of a Session request, for tests that speak the raw stream.
void AddSubmit(v1::SessionRequest& request, uint64_t seq,
               v1::SubmitRequest submit);
// A submit of `function` with args {field: value}.
void AddSubmit(v1::SessionRequest& request, uint64_t seq,
               const std::string& function, const std::string& field = "x",
               double value = 0);
void AddWatch(v1::SessionRequest& request, uint64_t seq, const std::string& id);
void AddCancel(v1::SessionRequest& request, uint64_t seq,
               const std::string& id);

// The deadline of a call that is not meant to wait.
inline constexpr absl::Duration kRpcDeadline = absl::Seconds(20);

// Sets `context`'s deadline `timeout` from now.
void SetDeadline(grpc::ClientContext& context, absl::Duration timeout);

// A channel and stub to one server. Not thread-safe: the test's thread uses
// it.
class ExecutorCalls {
 public:
  explicit ExecutorCalls(const std::string& address);

  // Expect OK; on an error they return an empty Task.
  v1::Task Submit(const v1::SubmitRequest& request);
  // Awaits with a server-side timeout of `timeout` (whole seconds).
  v1::Task Await(const std::string& id,
                 absl::Duration timeout = absl::Seconds(30));
  v1::Task Cancel(const std::string& id);

  // STATE_UNSPECIFIED if the Get fails.
  v1::State GetState(const std::string& id);

  v1::Executor::Stub& stub() { return *stub_; }

 private:
  std::unique_ptr<v1::Executor::Stub> stub_;
};

}  // namespace remex::testing

#endif  // REMEX_TESTS_TESTING_EXECUTOR_CALLS_H_
