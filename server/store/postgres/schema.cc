#include "server/store/postgres/schema.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace remex::store::internal {
namespace {

// Migration N (1-based) takes the schema from version N-1 to N. Never edit
// one that has shipped: add the next.
//
// Many replicas on one database use schema 1 as it is:
//  - Claims. A replica with n free slots in pool p runs
//      UPDATE remex_tasks SET replica = $me WHERE id IN (
//        SELECT id FROM remex_tasks WHERE state = 1 AND pool = p
//          AND replica IS NULL
//        ORDER BY priority DESC, list_position LIMIT n
//        FOR UPDATE SKIP LOCKED) RETURNING ...
//    on remex_tasks_claim (whose rows are all queued: the scan reads only
//    queued tasks). A replica inserts its own submits with replica = $me
//    when it has a free slot (they skip the claim), else NULL (any replica
//    may take them). Starting a claimed task sets state 2; the replica
//    column then says who runs it.
//  - Leases. remex_replicas.heartbeat_at is written every
//    heartbeat_interval; a replica whose heartbeat is older than the lease
//    is lost: one live replica (under pg_try_advisory_xact_lock, as
//    retention) re-queues its running tasks (attempt + 1, replica NULL) or
//    ends them WORKER_LOST, found through remex_tasks_running, and releases
//    its claimed queued tasks (replica NULL).
//  - Signals. One NOTIFY per group commit, its payload the ids that ended
//    (and the ids to cancel, with their replica) under 8000 bytes, so that
//    commits do not serialize on NOTIFY's lock more than once each; a
//    listener thread per replica wakes the waiters it holds and cancels the
//    tasks it runs.
//  - Drains. SIGTERM sets replica NULL on the replica's queued tasks (they
//    are handed back) and, past the grace, re-queues its running ones.
//
// Task model v2 (design.md) is planned as migration 2, and schema 1 is laid
// out so that it adds to it without rewriting a table or moving the hot
// path (PostgreSQL adds a nullable column, or one with a constant default,
// without a rewrite):
//  - remex_tasks gains idempotency_key (with a UNIQUE partial index on
//    (owner, idempotency_key) WHERE idempotency_key IS NOT NULL: the insert
//    becomes ON CONFLICT DO NOTHING and a repeat reads the first task, on
//    any replica), not_before and deadline (timestamptz), cancel_outcome
//    (smallint). The claim index becomes (pool, priority DESC,
//    list_position) INCLUDE (not_before): claims skip tasks not yet due
//    without a second index; the timer that wakes them is the replica's.
//  - remex_task_inputs gains retry (jsonb, the RetryPolicy) and after
//    (text[]): written once, read when a run fails or a task is claimed.
//  - remex_task_dependencies (task_id, depends_on), keyed by depends_on:
//    when a task ends, one indexed read finds what waited for it.
//  - remex_task_progress (id, fraction, message, details, updated_at), its
//    own narrow table with a low fillfactor: progress is the most frequent
//    write and must not rewrite the claim row.
//  - remex_task_events (position bigserial, id, state, at), for Watch:
//    a resume token is a position; retention deletes old positions in
//    batches as it does tasks, and a token older than the oldest kept is
//    OUT_OF_RANGE.
// Store::Insert's answer then says whether the task was new or a repeat.
constexpr const char* kMigrations[] = {
    // 1: tasks, their inputs and results, replicas.
    R"sql(
-- One row per task: what changes while it lives. Kept narrow (no payload)
-- and with free room on every page (fillfactor 75): an update that changes
-- no indexed column (cancel_requested, attempt, times, the error) is a HOT
-- update (no new index entries, pruned in place); one that changes state
-- (a column of the partial indexes' predicates) or sets expire_at is not,
-- but its new row version still finds room on the same page. Either way
-- the table bloats little under a steady load.
CREATE TABLE remex_tasks (
  id text PRIMARY KEY,
  -- List's order; page tokens resume after one.
  list_position bigserial NOT NULL UNIQUE,
  function text NOT NULL,
  pool text NOT NULL,
  owner text NOT NULL,
  state smallint NOT NULL,  -- remex.v1.State: 1 QUEUED, 2 RUNNING, 3+ ended
  priority int NOT NULL,
  attempt int NOT NULL,
  max_attempts int NOT NULL,
  cancel_requested bool NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL,
  started_at timestamptz,
  finished_at timestamptz,
  -- Microseconds; NULL: no limit.
  queue_timeout_us bigint,
  run_timeout_us bigint,
  -- Microseconds; 0: the server's default retention.
  ttl_us bigint NOT NULL,
  -- Set when the task ends: retention deletes the row after it.
  expire_at timestamptz,
  -- The replica that runs (or ran) the task.
  replica text,
  error_code int NOT NULL DEFAULT 0,
  error_message text NOT NULL DEFAULT ''
) WITH (fillfactor = 75);

-- Claims: a replica takes the QUEUED tasks of its pools, highest priority
-- first and FIFO within. Partial, so that it holds only queued tasks (small
-- however many tasks are kept) and finished rows cost it nothing.
CREATE INDEX remex_tasks_claim ON remex_tasks (pool, priority DESC, list_position)
  WHERE state = 1;

-- Retention: the oldest expired tasks first, without a scan of the table.
-- Partial: unfinished tasks have no expire_at.
CREATE INDEX remex_tasks_expire ON remex_tasks (expire_at)
  WHERE expire_at IS NOT NULL;

-- Lost replicas: the tasks a replica runs, found when its heartbeat stops.
CREATE INDEX remex_tasks_running ON remex_tasks (replica)
  WHERE state = 2;

-- What a caller submitted: written once with the task, never updated, so
-- the large values stay out of the rows that claims and updates rewrite.
CREATE TABLE remex_task_inputs (
  id text PRIMARY KEY,
  args text NOT NULL,      -- JSON
  input bytea NOT NULL,
  labels jsonb NOT NULL
);

-- What a task produced: written once, when it ends.
CREATE TABLE remex_task_results (
  id text PRIMARY KEY,
  result text NOT NULL,    -- JSON
  output bytea NOT NULL
);

-- Every replica's heartbeat: a replica whose heartbeat is older than its
-- lease is lost, and its running tasks are queued again.
CREATE TABLE remex_replicas (
  name text PRIMARY KEY,
  heartbeat_at timestamptz NOT NULL
);
)sql",
};

}  // namespace

int SchemaVersion() {
  return static_cast<int>(sizeof(kMigrations) / sizeof(kMigrations[0]));
}

absl::Status Migrate(Connection& connection) {
  const std::string key = absl::StrCat(kMigrationLockKey);
  // A session lock: held across the migrations' transactions, released
  // below (or when the connection closes, on any error).
  REMEX_RETURN_IF_ERROR(
      connection.Run("SELECT pg_advisory_lock($1::bigint)", {key}));
  auto migrate = [&]() -> absl::Status {
    REMEX_RETURN_IF_ERROR(connection.Run(
        "CREATE TABLE IF NOT EXISTS remex_schema ("
        " singleton bool PRIMARY KEY DEFAULT true CHECK (singleton),"
        " version int NOT NULL)"));
    REMEX_ASSIGN_OR_RETURN(Result current,
                           connection.Exec("SELECT version FROM remex_schema"));
    int version =
        current.rows() == 0 ? 0 : static_cast<int>(current.GetInt(0, 0));
    if (version > SchemaVersion()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the store's schema is version ", version,
                       ", newer than this server knows (", SchemaVersion(),
                       "): upgrade the server"));
    }
    for (; version < SchemaVersion(); ++version) {
      REMEX_RETURN_IF_ERROR(connection.Run("BEGIN"));
      absl::Status status = connection.Run(kMigrations[version]);
      if (status.ok()) {
        status = connection.Run(
            "INSERT INTO remex_schema (version) VALUES ($1::int)"
            " ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version",
            {absl::StrCat(version + 1)});
      }
      if (status.ok()) status = connection.Run("COMMIT");
      if (!status.ok()) {
        connection.Run("ROLLBACK").IgnoreError();
        return absl::Status(
            status.code(),
            absl::StrCat("migration to schema version ", version + 1,
                         " failed: ", status.message()));
      }
    }
    return absl::OkStatus();
  };
  absl::Status status = migrate();
  absl::Status unlocked =
      connection.Run("SELECT pg_advisory_unlock($1::bigint)", {key});
  return status.ok() ? unlocked : status;
}

}  // namespace remex::store::internal
