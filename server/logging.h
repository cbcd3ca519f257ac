// The server's log settings (--log-format, --log-level, config keys
// log_format and log_level) applied to the event log of common/log.h, in
// the server and in its process workers alike.
#ifndef REMEX_SERVER_LOGGING_H_
#define REMEX_SERVER_LOGGING_H_

#include "absl/strings/string_view.h"
#include "common/log.h"

namespace remex::server {

// Sets the format and level of every later line on stderr, and routes
// gRPC's own messages (gpr_log: errors, and more with $GRPC_VERBOSITY) into
// the log as event `grpc`, so that a JSON log stays JSON. Call it before
// starting threads that log; calling it again is safe.
void ConfigureLogging(log::Format format, log::Level level);

// Says why the server could not start, before it serves: in text, the one
// line "remex-server: MESSAGE" (what a person or a script reads first); in
// JSON, an `error` event `start_failed` with MESSAGE.
void ReportStartFailure(absl::string_view message);

}  // namespace remex::server

#endif  // REMEX_SERVER_LOGGING_H_
