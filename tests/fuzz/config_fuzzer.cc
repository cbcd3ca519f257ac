// The server's config file (server/config.h): any bytes are an
// INVALID_ARGUMENT naming what is wrong, or a config; never a crash, an
// exception that escapes, or a hang.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  static const remex::server::ServerConfig* const kBase =
      new remex::server::ServerConfig(remex::server::DefaultConfig());
  absl::StatusOr<remex::server::ServerConfig> config =
      remex::server::ParseConfig(text, *kBase, "/nonexistent-config-dir");
  if (!config.ok()) {
    // Only the file's fault: what the server prints and exits with.
    if (config.status().code() != absl::StatusCode::kInvalidArgument) {
      __builtin_trap();
    }
    return 0;
  }
  if (config->executor.pools.empty()) __builtin_trap();
  // What the server does next with the file's settings.
  (void)remex::server::CheckTlsConfig(*config);
  remex::server::StoreFlags flags;
  (void)remex::server::ResolveStoreConfig(flags, nullptr, *config);
  return 0;
}
