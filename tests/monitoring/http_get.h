// A minimal HTTP/1.0 GET over a TCP socket, for tests that read /metrics and
// the Prometheus HTTP API (no HTTP client library is a dependency).
#ifndef REMEX_TESTS_MONITORING_HTTP_GET_H_
#define REMEX_TESTS_MONITORING_HTTP_GET_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace remex::testing {

struct HttpResponse {
  int status = 0;  // e.g. 200
  std::string body;
};

// GETs `path` (already URL-encoded) from `address` ("127.0.0.1:PORT").
// UNAVAILABLE if nothing answers; a read stalls at most 10 s.
absl::StatusOr<HttpResponse> HttpGet(absl::string_view address,
                                     absl::string_view path);

// `text` with every byte but unreserved ones percent-encoded, for a query
// parameter.
std::string UrlEncode(absl::string_view text);

}  // namespace remex::testing

#endif  // REMEX_TESTS_MONITORING_HTTP_GET_H_
