#include "tests/testing/store_param.h"

#include <signal.h>
#include <sys/types.h>

#include <cstdlib>
#include <future>
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

namespace {

// The PostgreSQL of this binary and the database made ahead for the next
// test. Used by the test's main thread only (tests run one at a time).
struct Shared {
  std::unique_ptr<PostgresServer> server;
  // Why the server did not start: remembered, not retried for every test.
  absl::Status failure;
  // CREATE DATABASE takes a few hundred ms (it copies and syncs template0):
  // the next test's database is made on another thread while a test runs.
  std::future<absl::StatusOr<std::string>> next;
};

// Heap-allocated (statics stay trivially destructible); atexit waits for
// the database in the making, stops the postmaster (immediate shutdown)
// and removes its dir.
Shared& TheShared() {
  static Shared* const shared = new Shared();
  return *shared;
}

}  // namespace

absl::StatusOr<PostgresServer*> SharedPostgres() {
  Shared& shared = TheShared();
  if (shared.server == nullptr && shared.failure.ok()) {
    absl::StatusOr<std::unique_ptr<PostgresServer>> started =
        PostgresServer::Start();
    if (!started.ok()) {
      shared.failure = started.status();
    } else {
      shared.server = *std::move(started);
      std::atexit([] {
        Shared& shared = TheShared();
        if (shared.next.valid()) shared.next.wait();
        // Immediate shutdown: a fast one would first write out every page
        // of every test's database (seconds), all of which is thrown away.
        if (const pid_t pid = shared.server->pid(); pid > 0) {
          kill(pid, SIGQUIT);
        }
        shared.server.reset();
      });
    }
  }
  if (!shared.failure.ok()) return shared.failure;
  return shared.server.get();
}

absl::StatusOr<std::string> FreshStoreUrl(StoreKind kind) {
  if (kind == StoreKind::kMemory) return std::string("memory");
  absl::StatusOr<PostgresServer*> postgres = SharedPostgres();
  if (!postgres.ok()) return postgres.status();
  Shared& shared = TheShared();
  absl::StatusOr<std::string> url =
      shared.next.valid() ? shared.next.get() : (*postgres)->CreateDatabase();
  shared.next = std::async(std::launch::async, [server = *postgres] {
    return server->CreateDatabase();
  });
  return url;
}

}  // namespace remex::testing
