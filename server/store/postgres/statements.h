// The statements of the PostgresStore's writer, in one place so that the
// bare-PostgreSQL baseline of remex-bench runs exactly what the store runs.
#ifndef REMEX_SERVER_STORE_POSTGRES_STATEMENTS_H_
#define REMEX_SERVER_STORE_POSTGRES_STATEMENTS_H_

#include <string>

#include "absl/strings/string_view.h"

namespace remex::store::internal {

// Unix microseconds (a bigint SQL expression) as timestamptz, exactly: the
// seconds and the microseconds are each exact in a double, where their sum
// need not be. NULL stays NULL.
std::string Timestamp(absl::string_view micros);

// New tasks and their inputs, one statement for a batch: $1..$16 are
// arrays, one element per task (id, function, pool, owner, state, priority,
// attempt, max_attempts, cancel_requested, created_us, queue_timeout_us,
// run_timeout_us, ttl_us, args (JSON), input (hex), labels (JSON)). Rows
// are inserted in the order given (list positions follow it); conflicting
// ids are skipped and not returned. Returns (id, list_position).
std::string InsertStatement();

// State changes (one per task) and the results of the tasks that ended,
// one statement for a batch: $1..$11 are arrays (id, state, attempt,
// cancel_requested, started_us, finished_us, expire_us, error_code,
// error_message, result (JSON or NULL), output (hex)), $12 this replica's
// name. Results only for rows that still exist (a task erased meanwhile
// leaves nothing behind), once.
std::string UpdateStatement();

}  // namespace remex::store::internal

#endif  // REMEX_SERVER_STORE_POSTGRES_STATEMENTS_H_
