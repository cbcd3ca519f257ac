// A connection to one remex server: every Executor RPC as a blocking call
// that returns absl::Status.
#ifndef REMEX_CLIENT_CONNECTION_H_
#define REMEX_CLIENT_CONNECTION_H_

#include <grpcpp/channel.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "remex/v1/executor.grpc.pb.h"

namespace remex::client {

// Longest single Await RPC; longer waits are made of several.
inline constexpr absl::Duration kMaxAwaitSlice = absl::Seconds(30);

// Thread-safe: the channel and stub may be used from any number of threads.
// Owns its stub and shares the channel.
class Connection {
 public:
  // `rpc_timeout` is the deadline of every call that does not wait for a
  // task; an Await gets its timeout plus `rpc_timeout`. A non-empty `token`
  // goes with every call as `authorization: Bearer TOKEN`.
  Connection(std::shared_ptr<grpc::Channel> channel, absl::Duration rpc_timeout,
             std::string token = "");

  absl::StatusOr<v1::Task> Submit(const v1::SubmitRequest& request);
  // Returns the task once it is terminal, or as it stands when `timeout`
  // passes (absl::InfiniteDuration(): no limit; zero or less: one Get).
  // Made of bounded RPCs of at most kMaxAwaitSlice each.
  absl::StatusOr<v1::Task> Await(const std::string& id, absl::Duration timeout);
  absl::StatusOr<v1::Task> Get(const std::string& id);
  // Returns the task after the cancel took effect or was refused.
  absl::StatusOr<v1::Task> Cancel(const std::string& id);
  absl::Status Delete(const std::string& id);
  absl::StatusOr<v1::ListResponse> List(const v1::ListRequest& request);
  absl::StatusOr<v1::ListFunctionsResponse> ListFunctions();

 private:
  // One Await RPC; `timeout` must be positive and finite.
  absl::StatusOr<v1::Task> AwaitOnce(const std::string& id,
                                     absl::Duration timeout);

  // Calls `method` on the stub with a deadline `deadline` from now.
  template <class Request, class Response>
  absl::StatusOr<Response> Call(
      grpc::Status (v1::Executor::StubInterface::*method)(grpc::ClientContext*,
                                                          const Request&,
                                                          Response*),
      const Request& request, absl::Duration deadline);

  const absl::Duration rpc_timeout_;
  const std::string token_;
  const std::unique_ptr<v1::Executor::StubInterface> stub_;
};

}  // namespace remex::client

#endif  // REMEX_CLIENT_CONNECTION_H_
