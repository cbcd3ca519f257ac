#include "server/logging.h"

#include <grpc/support/log.h>

#include <atomic>
#include <cstdio>
#include <string>

namespace remex::server {
namespace {

std::atomic<log::Format> g_format{log::Format::kText};

void LogGrpcMessage(gpr_log_func_args* args) {
  log::Level level = log::Level::kDebug;
  if (args->severity == GPR_LOG_SEVERITY_ERROR) {
    level = log::Level::kError;
  } else if (args->severity == GPR_LOG_SEVERITY_INFO) {
    level = log::Level::kInfo;
  }
  log::Write(level, "grpc", args->message != nullptr ? args->message : "",
             {{"file", args->file != nullptr ? args->file : ""},
              {"line", args->line}});
}

}  // namespace

void ConfigureLogging(log::Format format, log::Level level) {
  log::Configure({.format = format, .level = level});
  g_format.store(format, std::memory_order_relaxed);
  gpr_set_log_function(LogGrpcMessage);
}

void ReportStartFailure(absl::string_view message) {
  if (g_format.load(std::memory_order_relaxed) == log::Format::kJson) {
    log::Error("start_failed", message);
    return;
  }
  std::fprintf(stderr, "remex-server: %s\n", std::string(message).c_str());
  std::fflush(stderr);
}

}  // namespace remex::server
