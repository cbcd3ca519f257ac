#include "tests/testing/store_param.h"

#include <cstdlib>
#include <memory>
#include <ostream>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace remex::testing {

namespace {

const char* NameOf(StoreKind kind) {
  return kind == StoreKind::kMemory ? "memory" : "postgres";
}

}  // namespace

std::string StoreKindName(const ::testing::TestParamInfo<StoreKind>& info) {
  return NameOf(info.param);
}

void PrintTo(StoreKind kind, std::ostream* os) { *os << NameOf(kind); }

absl::StatusOr<PostgresServer*> SharedPostgres() {
  // Tests run one at a time on the main thread: no lock needed. Statics
  // stay trivially destructible; atexit stops the postmaster and removes
  // its dir. A failed start is remembered, not retried for every test.
  static std::unique_ptr<PostgresServer>* const server =
      new std::unique_ptr<PostgresServer>();
  static absl::Status* const failure = new absl::Status();
  if (*server == nullptr && failure->ok()) {
    absl::StatusOr<std::unique_ptr<PostgresServer>> started =
        PostgresServer::Start();
    if (!started.ok()) {
      *failure = started.status();
    } else {
      *server = *std::move(started);
      std::atexit([] { server->reset(); });
    }
  }
  if (!failure->ok()) return *failure;
  return server->get();
}

absl::StatusOr<std::string> FreshStoreUrl(StoreKind kind) {
  if (kind == StoreKind::kMemory) return std::string("memory");
  absl::StatusOr<PostgresServer*> postgres = SharedPostgres();
  if (!postgres.ok()) return postgres.status();
  return (*postgres)->CreateDatabase();
}

}  // namespace remex::testing
