// The PostgreSQL store's schema: numbered migrations and the one function
// that brings a database up to date.
#ifndef REMEX_SERVER_STORE_POSTGRES_SCHEMA_H_
#define REMEX_SERVER_STORE_POSTGRES_SCHEMA_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/store/postgres/pg.h"

namespace remex::store::internal {

// Advisory lock keys (pg_advisory_lock's bigint space is shared by every
// application of the database: these are "remex" + a number).
inline constexpr int64_t kMigrationLockKey = 0x72656d6578000001;
inline constexpr int64_t kRetentionLockKey = 0x72656d6578000002;
inline constexpr int64_t kLeaseLockKey = 0x72656d6578000003;
// Held (shared, for the session) by every replica that LISTENs to the ends:
// the others NOTIFY ends only while someone holds it.
inline constexpr int64_t kEndsListenerLockKey = 0x72656d6578000004;

// The schema version this build knows: the number of its migrations.
int SchemaVersion();

// Applies the migrations `connection`'s database lacks, each in its own
// transaction, all under a session advisory lock (so that replicas starting
// together migrate once). FAILED_PRECONDITION if the database's schema is
// newer than this build knows; UNAVAILABLE if the database went away.
absl::Status Migrate(Connection& connection);

}  // namespace remex::store::internal

#endif  // REMEX_SERVER_STORE_POSTGRES_SCHEMA_H_
