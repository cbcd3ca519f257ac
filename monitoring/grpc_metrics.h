// The gRPC front end's metrics: requests by method and code, and latency.
#ifndef REMEX_MONITORING_GRPC_METRICS_H_
#define REMEX_MONITORING_GRPC_METRICS_H_

#include <array>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace remex::monitoring {

// The methods of remex.v1.Executor: the only values of the method label.
enum class RpcMethod {
  kSubmit,
  kAwait,
  kGet,
  kCancel,
  kList,
  kDelete,
  kListFunctions,
  // A Session stream, recorded once when it ends (latency: its lifetime).
  kSession,
};
inline constexpr int kRpcMethodCount = 8;

// "Submit", "Await", ...
absl::string_view RpcMethodName(RpcMethod method);

// remex_grpc_requests_total{method,code} and
// remex_grpc_request_seconds{method}, every child made in the constructor;
// remex_auth_failures_total{reason}, a child per reason when first seen.
//
// Thread-safe. Does not own the registry, which must outlive it.
class GrpcMetrics {
 public:
  explicit GrpcMetrics(prometheus::Registry& registry);

  // A call of `method` ended with `code` after `latency` (from the time it
  // was matched to the time its answer was queued).
  void Record(RpcMethod method, absl::StatusCode code, absl::Duration latency);
  // A call failed authentication (remex_auth_failures_total{reason}).
  // `reason` is one of a small fixed set (auth::AuthFailureName), never a
  // client's string.
  void RecordAuthFailure(absl::string_view reason);

 private:
  prometheus::Family<prometheus::Counter>* auth_failures_;
  // Codes 0 (OK) to 16 (UNAUTHENTICATED).
  static constexpr int kCodeCount = 17;
  std::array<std::array<prometheus::Counter*, kCodeCount>, kRpcMethodCount>
      requests_;
  std::array<prometheus::Histogram*, kRpcMethodCount> seconds_;
};

}  // namespace remex::monitoring

#endif  // REMEX_MONITORING_GRPC_METRICS_H_
