#include "monitoring/grpc_metrics.h"

#include <string>

#include "monitoring/task_metrics.h"

namespace remex::monitoring {

absl::string_view RpcMethodName(RpcMethod method) {
  switch (method) {
    case RpcMethod::kSubmit:
      return "Submit";
    case RpcMethod::kAwait:
      return "Await";
    case RpcMethod::kGet:
      return "Get";
    case RpcMethod::kCancel:
      return "Cancel";
    case RpcMethod::kList:
      return "List";
    case RpcMethod::kDelete:
      return "Delete";
    case RpcMethod::kListFunctions:
      return "ListFunctions";
    case RpcMethod::kSession:
      return "Session";
  }
  return "unknown";
}

GrpcMetrics::GrpcMetrics(prometheus::Registry& registry)
    : auth_failures_(&prometheus::BuildCounter()
                          .Name("remex_auth_failures_total")
                          .Help("Calls refused UNAUTHENTICATED, by reason: "
                                "missing_credentials, malformed_header, "
                                "unknown_token, unknown_certificate.")
                          .Register(registry)) {
  auto& requests = prometheus::BuildCounter()
                       .Name("remex_grpc_requests_total")
                       .Help(
                           "remex.v1.Executor calls answered, by method and "
                           "status code.")
                       .Register(registry);
  auto& seconds = prometheus::BuildHistogram()
                      .Name("remex_grpc_request_seconds")
                      .Help(
                          "Time from a call's arrival to its answer, by "
                          "method (Await includes its wait).")
                      .Register(registry);
  for (int m = 0; m < kRpcMethodCount; ++m) {
    const std::string method(RpcMethodName(static_cast<RpcMethod>(m)));
    seconds_[m] = &seconds.Add({{"method", method}}, SecondsBuckets());
    for (int code = 0; code < kCodeCount; ++code) {
      requests_[m][code] = &requests.Add(
          {{"method", method},
           {"code",
            absl::StatusCodeToString(static_cast<absl::StatusCode>(code))}});
    }
  }
}

void GrpcMetrics::Record(RpcMethod method, absl::StatusCode code,
                         absl::Duration latency) {
  const int m = static_cast<int>(method);
  int c = static_cast<int>(code);
  if (c < 0 || c >= kCodeCount)
    c = static_cast<int>(absl::StatusCode::kUnknown);
  requests_[m][c]->Increment();
  seconds_[m]->Observe(absl::ToDoubleSeconds(latency));
}

void GrpcMetrics::RecordAuthFailure(absl::string_view reason) {
  // Family::Add returns the existing child after the first call.
  auth_failures_->Add({{"reason", std::string(reason)}}).Increment();
}

}  // namespace remex::monitoring
