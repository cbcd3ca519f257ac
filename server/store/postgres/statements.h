// The statements of the PostgresStore's writer, in one place so that the
// bare-PostgreSQL baseline of remex-bench runs exactly what the store runs.
#ifndef REMEX_SERVER_STORE_POSTGRES_STATEMENTS_H_
#define REMEX_SERVER_STORE_POSTGRES_STATEMENTS_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace remex::store::internal {

// Unix microseconds (a bigint SQL expression) as timestamptz, exactly: the
// seconds and the microseconds are each exact in a double, where their sum
// need not be. NULL stays NULL.
std::string Timestamp(absl::string_view micros);

// New tasks and their inputs, one statement for a batch: $1..$16 are
// arrays, one element per task (id, function, pool, owner, state, priority,
// attempt, max_attempts, cancel_requested, created_us, queue_timeout_us,
// run_timeout_us, ttl_us, args (JSON), input (hex), labels (JSON), replica
// (NULL: any replica may claim it)), $18 the payloads to NOTIFY on
// kChannel. Rows are inserted in the order given (list positions follow
// it); conflicting ids are skipped and not returned. Returns (id,
// list_position) per task, then one row (NULL, notifications sent).
std::string InsertStatement();

// State changes (one per task) and the results of the tasks that ended,
// one statement for a batch: $1..$11 are arrays (id, state, attempt,
// cancel_requested, started_us, finished_us, expire_us, error_code,
// error_message, result (JSON or NULL), output (hex), release), $12 this
// replica's name, $13 the payloads to NOTIFY on kChannel. Only rows that
// name this replica change (one that another replica took over after this
// one's lease ran out is left alone); a released row names no replica
// after. Results only for rows that changed (a task erased meanwhile
// leaves nothing behind), once. Returns the notifications sent.
std::string UpdateStatement();

// The channels of the replicas' signals. On kChannel, which every replica
// LISTENs to, a payload is one of
//   "c ID REPLICA": REPLICA is asked to cancel task ID, which it holds;
//   "q POOL POOL ...": these pools have tasks that no replica holds.
// On kEndedChannel, which only a replica with callers waiting for tasks
// held elsewhere LISTENs to (a NOTIFY nobody listens to costs little; one
// that a backend must pass on costs as much as a third of a busy store's
// throughput on a small machine):
//   "e ID ID ...": these tasks ended (committed).
inline constexpr char kChannel[] = "remex";
inline constexpr char kEndedChannel[] = "remex_ended";

// The SQL that NOTIFYs payload `payload` (an expression) on its channel.
std::string Notify(absl::string_view payload);
// A payload stays under PostgreSQL's limit of 8000 bytes.
inline constexpr size_t kMaxPayload = 7900;

// The payloads that say `ids` ended ("e ID ID ..."), each under
// kMaxPayload.
std::vector<std::string> EndedPayloads(const std::vector<std::string>& ids);
// "<kind> WORD WORD ...", split likewise.
std::vector<std::string> Payloads(char kind,
                                  const std::vector<std::string>& words);

}  // namespace remex::store::internal

#endif  // REMEX_SERVER_STORE_POSTGRES_STATEMENTS_H_
