#include "tests/testing/store_param.h"

#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace remex::testing {

std::string StoreKindName(const ::testing::TestParamInfo<StoreKind>& info) {
  return info.param == StoreKind::kMemory ? "memory" : "postgres";
}

absl::StatusOr<PostgresServer*> SharedPostgres() {
  // Tests run one at a time on the main thread: no lock needed. Destroyed
  // at exit, which stops the postmaster and removes its dir.
  static std::unique_ptr<PostgresServer>* const server =
      new std::unique_ptr<PostgresServer>();
  static absl::Status failure;
  if (*server == nullptr && failure.ok()) {
    absl::StatusOr<std::unique_ptr<PostgresServer>> started =
        PostgresServer::Start();
    if (!started.ok()) {
      failure = started.status();
    } else {
      *server = *std::move(started);
      // A static unique_ptr would be destroyed after gtest's own statics
      // are gone; stop it from atexit instead, while they are alive.
      std::atexit([] { server->reset(); });
    }
  }
  if (!failure.ok()) return failure;
  return server->get();
}

absl::StatusOr<std::string> FreshStoreUrl(StoreKind kind) {
  if (kind == StoreKind::kMemory) return std::string("memory");
  absl::StatusOr<PostgresServer*> postgres = SharedPostgres();
  if (!postgres.ok()) return postgres.status();
  return (*postgres)->CreateDatabase();
}

std::vector<std::string> StoreArgs(StoreKind kind) {
  absl::StatusOr<std::string> url = FreshStoreUrl(kind);
  if (!url.ok()) {
    ADD_FAILURE() << "no store for the test: " << url.status();
    return {};
  }
  return {"--store", *std::move(url)};
}

}  // namespace remex::testing
