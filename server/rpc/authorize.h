// Who a call is and what it may do: the front end's one gate between the
// auth module (principals) and the executor (callers and owners).
#ifndef REMEX_SERVER_RPC_AUTHORIZE_H_
#define REMEX_SERVER_RPC_AUTHORIZE_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "monitoring/grpc_metrics.h"
#include "server/auth/principals.h"
#include "server/executor/executor.h"

namespace remex::rpc {

// The authenticated caller of one call. Cheap to move; holds its principal
// (null on an open server: every caller sees every task).
class CallerIdentity {
 public:
  CallerIdentity() = default;
  explicit CallerIdentity(std::shared_ptr<const auth::Principal> principal)
      : principal_(std::move(principal)) {}

  // As the executor knows it. Valid while this identity lives.
  executor::Caller caller() const;
  // PERMISSION_DENIED unless the principal has one of the roles `any_of`
  // (a set of auth::Role bits); always OK on an open server.
  absl::Status Require(uint32_t any_of) const;
  // True if the principal's function globs allow `function` (whatever its
  // roles); always on an open server.
  bool MayRun(const std::string& function) const {
    return principal_ == nullptr || principal_->MaySubmit(function).ok();
  }
  // Require(kSubmit) and the principal's function globs.
  absl::Status MaySubmit(const std::string& function) const;

 private:
  std::shared_ptr<const auth::Principal> principal_;
};

// Logs failed authentications without flooding the log: the first failure
// at once, then at most one line per `period` with the count since the last
// line and the latest reason and peer.
//
// Thread-safe.
class AuthFailureLog {
 public:
  explicit AuthFailureLog(absl::Duration period = absl::Seconds(10))
      : period_(period) {}
  void Record(auth::AuthFailure failure, const std::string& peer);

 private:
  const absl::Duration period_;
  absl::Mutex mu_;
  absl::Time last_line_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t unlogged_ ABSL_GUARDED_BY(mu_) = 0;
};

// What authentication needs from the server. Not owned; all may be null
// (`authenticator` null or not enabled: an open server).
struct AuthEnv {
  const auth::Authenticator* authenticator = nullptr;
  AuthFailureLog* failure_log = nullptr;
  monitoring::GrpcMetrics* metrics = nullptr;
};

// Authenticates the call of `context` and checks that it has one of the
// roles `any_of`: UNAUTHENTICATED (counted and logged) or
// PERMISSION_DENIED.
absl::StatusOr<CallerIdentity> Authorize(const AuthEnv& env,
                                         const grpc::ServerContext& context,
                                         uint32_t any_of);

}  // namespace remex::rpc

#endif  // REMEX_SERVER_RPC_AUTHORIZE_H_
