#include "server/store/postgres/postgres_store.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/log.h"
#include "common/quote.h"
#include "common/status_macros.h"
#include "server/store/postgres/pg.h"
#include "server/store/postgres/schema.h"
#include "server/store/postgres/statements.h"

namespace remex::store {
namespace {

using executor::Json;
using executor::TaskSnapshot;
using executor::TaskSpec;
using executor::TaskState;
using internal::ArrayLiteral;
using internal::Connection;
using internal::Param;
using internal::Result;

// The writer's reconnect backoff.
constexpr absl::Duration kFirstBackoff = absl::Milliseconds(100);
constexpr absl::Duration kMaxBackoff = absl::Seconds(2);
// A reader whose database is away tries to reconnect at most this often
// (reads in between fail at once).
constexpr absl::Duration kReaderRetry = absl::Milliseconds(500);
// A reader's connection idle longer than this is checked before use.
constexpr absl::Duration kIdleCheck = absl::Seconds(1);
// A batch stops growing past this many bytes of payload (hex doubles
// them): PostgreSQL refuses a parameter over 1 GB, and a huge transaction
// delays the small ones behind it.
constexpr size_t kMaxBatchBytes = size_t{64} << 20;
// How long the signal thread goes on listening to the ends once nobody
// here waits for one.
constexpr absl::Duration kEndsLinger = absl::Seconds(10);
// Gets answered by one statement, at most.
constexpr size_t kMaxGetBatch = 1000;
// Rows List looks at for one page, at least: a filter that matches few
// tasks gives a short page (and a token) rather than a walk of the table.
constexpr int kListScan = 5000;

// timestamptz as Unix microseconds (numeric: exact).
std::string Micros(absl::string_view column) {
  return absl::StrCat("(extract(epoch FROM ", column, ") * 1000000)::int8");
}

// The columns a task is read back from, in the order RowToTask reads them.
std::string TaskColumns() {
  return absl::StrCat(
      "t.id, t.list_position, t.function, t.pool, t.owner, t.state,"
      " t.priority, t.attempt, t.max_attempts, t.cancel_requested, ",
      Micros("t.created_at"), ", ", Micros("t.started_at"), ", ",
      Micros("t.finished_at"),
      ", t.queue_timeout_us, t.run_timeout_us, t.ttl_us, t.error_code,"
      " t.error_message, i.args, i.input, i.labels::text, r.result,"
      " r.output");
}
constexpr int kTaskColumnCount = 23;

constexpr char kTaskJoins[] =
    " remex_tasks t"
    " LEFT JOIN remex_task_inputs i ON i.id = t.id"
    " LEFT JOIN remex_task_results r ON r.id = t.id";

std::string DumpJson(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

absl::StatusOr<Json> ParseJson(absl::string_view text) {
  Json json = Json::parse(text.begin(), text.end(), nullptr,
                          /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return absl::InternalError("the store holds JSON that does not parse");
  }
  return json;
}

absl::StatusOr<TaskSnapshot> RowToTask(const Result& rows, int row) {
  TaskSnapshot task;
  auto spec = std::make_shared<TaskSpec>();
  task.id = std::string(rows.Get(row, 0));
  task.list_position = static_cast<uint64_t>(rows.GetInt(row, 1));
  spec->function = std::string(rows.Get(row, 2));
  spec->pool = std::string(rows.Get(row, 3));
  spec->owner = std::string(rows.Get(row, 4));
  task.state = static_cast<TaskState>(rows.GetInt(row, 5));
  spec->priority = static_cast<int32_t>(rows.GetInt(row, 6));
  task.attempt = static_cast<int32_t>(rows.GetInt(row, 7));
  spec->max_attempts = static_cast<int32_t>(rows.GetInt(row, 8));
  task.cancel_requested = rows.GetBool(row, 9);
  task.created_at = internal::TimeFromMicros(rows.GetOptionalInt(row, 10));
  task.started_at = internal::TimeFromMicros(rows.GetOptionalInt(row, 11));
  task.finished_at = internal::TimeFromMicros(rows.GetOptionalInt(row, 12));
  spec->queue_timeout =
      internal::DurationFromMicros(rows.GetOptionalInt(row, 13));
  spec->run_timeout =
      internal::DurationFromMicros(rows.GetOptionalInt(row, 14));
  spec->ttl = absl::Microseconds(rows.GetInt(row, 15));
  if (!rows.IsNull(row, 18)) {
    REMEX_ASSIGN_OR_RETURN(spec->args, ParseJson(rows.Get(row, 18)));
    REMEX_ASSIGN_OR_RETURN(spec->input, internal::HexDecode(rows.Get(row, 19)));
    REMEX_ASSIGN_OR_RETURN(Json labels, ParseJson(rows.Get(row, 20)));
    if (labels.is_object()) {
      for (auto& [key, value] : labels.items()) {
        if (value.is_string()) spec->labels[key] = value.get<std::string>();
      }
    }
  }
  task.spec = std::move(spec);
  if (executor::IsTerminal(task.state)) {
    auto outcome = std::make_shared<executor::TaskOutcome>();
    outcome->error.code = static_cast<absl::StatusCode>(rows.GetInt(row, 16));
    outcome->error.message = std::string(rows.Get(row, 17));
    if (!rows.IsNull(row, 21)) {
      REMEX_ASSIGN_OR_RETURN(outcome->result, ParseJson(rows.Get(row, 21)));
      REMEX_ASSIGN_OR_RETURN(outcome->output,
                             internal::HexDecode(rows.Get(row, 22)));
    }
    task.outcome = std::move(outcome);
  }
  return task;
}

template <typename Write>
size_t WriteBytes(const Write& write) {
  size_t bytes = write.task.id.size();
  if (write.insert && write.task.spec != nullptr) {
    bytes += write.task.spec->ApproximateBytes();
  }
  if (write.task.outcome != nullptr) {
    bytes += write.task.outcome->ApproximateBytes();
  }
  return bytes;
}

absl::Status NotFound(absl::string_view id) {
  return absl::NotFoundError(
      absl::StrCat("unknown task id ", common::Quote(id)));
}

// A List page token that no replica made.
absl::Status InvalidPageToken(absl::string_view token) {
  return absl::InvalidArgumentError(absl::StrCat(
      "page_token ", common::Quote(token),
      " was not made by this server: pass the next_page_token of the "
      "previous page, or none for the first page"));
}

absl::Status ReadUnavailable(const absl::Status& error) {
  return absl::UnavailableError(
      absl::StrCat("the store cannot read: ", error.message()));
}

// Deletes a task's three rows; the count of tasks deleted.
constexpr char kEraseStatement[] =
    "WITH t AS (DELETE FROM remex_tasks WHERE id = $1"
    " AND ($2::bool OR owner = $3) RETURNING id),"
    " i AS (DELETE FROM remex_task_inputs WHERE id IN (SELECT id FROM t)),"
    " r AS (DELETE FROM remex_task_results WHERE id IN (SELECT id FROM t))"
    " SELECT count(*) FROM t";

// A batch of expired tasks, deleted; rows locked by another transaction are
// skipped (the next round takes them).
constexpr char kRetentionStatement[] =
    "WITH t AS (DELETE FROM remex_tasks WHERE id IN (SELECT id FROM"
    " remex_tasks WHERE expire_at < now() ORDER BY expire_at LIMIT $1"
    " FOR UPDATE SKIP LOCKED) RETURNING id),"
    " i AS (DELETE FROM remex_task_inputs WHERE id IN (SELECT id FROM t)),"
    " r AS (DELETE FROM remex_task_results WHERE id IN (SELECT id FROM t))"
    " SELECT count(*) FROM t";

// Ids, for deleting the rows of inserts whose callers were told
// UNAVAILABLE.
constexpr char kDeleteIdsStatement[] =
    "WITH t AS (DELETE FROM remex_tasks WHERE id = ANY($1::text[]) RETURNING"
    " id),"
    " i AS (DELETE FROM remex_task_inputs WHERE id = ANY($1::text[])),"
    " r AS (DELETE FROM remex_task_results WHERE id = ANY($1::text[]))"
    " SELECT count(*) FROM t";

constexpr char kHeartbeatStatement[] =
    "INSERT INTO remex_replicas (name, heartbeat_at) VALUES ($1, now())"
    " ON CONFLICT (name) DO UPDATE SET heartbeat_at = now()";

// Replicas whose heartbeat is within the lease ($1, microseconds), and
// sessions that LISTEN to the ends (they hold kEndsListenerLockKey, $2,
// shared: a bigint advisory key shows in pg_locks as its high and low 32
// bits, objsubid 1).
constexpr char kLiveReplicasStatement[] =
    "SELECT (SELECT count(*) FROM remex_replicas"
    " WHERE heartbeat_at >= now() - $1::int8 * interval '1 microsecond'),"
    " (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
    " AND database = (SELECT oid FROM pg_database"
    " WHERE datname = current_database())"
    " AND classid::int8 = $2::int8 >> 32"
    " AND objid::int8 = $2::int8 & 4294967295 AND objsubid = 1)";

// When a task that sets no ttl ($ttl, microseconds: the server's default)
// and ends in SQL expires.
std::string ExpireAt(absl::string_view default_ttl) {
  return absl::StrCat("now() + (CASE WHEN ttl_us > 0 THEN ttl_us ELSE ",
                      default_ttl, "::int8 END) * interval '1 microsecond'");
}

// The replicas whose heartbeat is older than the lease ($1, microseconds),
// other than this one ($2), are forgotten; their tasks
//  - with a cancel asked for, end CANCELLED;
//  - running on their last attempt, end WORKER_LOST;
//  - else are queued again, for any replica (attempt unchanged: the next
//    start counts the next attempt).
// Ends and queued pools are notified. Returns the replicas lost, the
// longest silence (seconds), the tasks ended, and the running tasks
// queued again.
const std::string& RecoverLostStatement() {
  static const std::string* const kSql = new std::string(absl::StrCat(
      "WITH lost AS (DELETE FROM remex_replicas WHERE heartbeat_at < now() -"
      " $1::int8 * interval '1 microsecond' AND name <> $2"
      " RETURNING name, heartbeat_at),"
      " ended AS (UPDATE remex_tasks t SET"
      " state = CASE WHEN t.cancel_requested THEN 5 ELSE 7 END,"
      " finished_at = now(), expire_at = ",
      ExpireAt("$3"),
      ", error_code = CASE WHEN t.cancel_requested THEN 1 ELSE 10 END,"
      " error_message = CASE WHEN t.cancel_requested THEN"
      " 'cancelled by request' ELSE 'replica ' || t.replica || ' was lost"
      " while the task ran (attempt ' || t.attempt || ' of ' ||"
      " t.max_attempts || ')' END"
      " FROM lost WHERE t.replica = lost.name AND t.state IN (1, 2) AND"
      " (t.cancel_requested OR (t.state = 2 AND t.attempt >= t.max_attempts))"
      " RETURNING t.id),"
      " requeued AS (UPDATE remex_tasks t SET state = 1, replica = NULL"
      " FROM lost WHERE t.replica = lost.name AND t.state IN (1, 2) AND"
      " NOT t.cancel_requested AND NOT (t.state = 2 AND t.attempt >="
      " t.max_attempts) RETURNING t.id, t.pool),"
      " notes AS (SELECT 'e ' || string_agg(id, ' ') AS m FROM (SELECT id,"
      " (row_number() OVER ()) / 300 AS g FROM ended) e GROUP BY g"
      " UNION ALL SELECT 'q ' || string_agg(DISTINCT pool, ' ') FROM requeued"
      " HAVING count(*) > 0)"
      " SELECT (SELECT count(*) FROM lost),"
      " (SELECT coalesce(max(extract(epoch FROM now() - heartbeat_at)), 0)"
      " FROM lost)::float8,"
      " (SELECT count(*) FROM ended),"
      // Read from the statement's snapshot: the states before it.
      " (SELECT count(*) FROM remex_tasks t JOIN lost ON t.replica ="
      " lost.name WHERE t.state = 2 AND NOT t.cancel_requested AND"
      " t.attempt < t.max_attempts),"
      " (SELECT count(",
      internal::Notify("m"), ") FROM notes)"));
  return *kSql;
}

// Claims up to $3 queued tasks of pool $2 that no replica holds for this
// replica ($1), highest priority first and FIFO within; rows another
// replica is claiming are skipped. Returns them as tasks.
const std::string& ClaimStatement() {
  static const std::string* const kSql = new std::string(absl::StrCat(
      "WITH c AS (SELECT id FROM remex_tasks WHERE state = 1 AND pool = $2"
      " AND replica IS NULL ORDER BY priority DESC, list_position"
      " LIMIT $3::int8 FOR UPDATE SKIP LOCKED),"
      " t AS (UPDATE remex_tasks SET replica = $1 FROM c"
      " WHERE remex_tasks.id = c.id RETURNING remex_tasks.*)"
      " SELECT ",
      TaskColumns(),
      " FROM t LEFT JOIN remex_task_inputs i ON i.id = t.id"
      " LEFT JOIN remex_task_results r ON r.id = t.id"
      " ORDER BY t.priority DESC, t.list_position"));
  return *kSql;
}

// Asks for the end of task $1 if the caller sees it ($2: sees all, $3:
// owner): one no replica holds ends CANCELLED now (kept for its ttl, or
// $4 microseconds); the replica that holds one is signalled.
const std::string& CancelStatement() {
  static const std::string* const kSql = new std::string(absl::StrCat(
      "WITH c AS (UPDATE remex_tasks SET cancel_requested = true,"
      " state = CASE WHEN replica IS NULL THEN 5 ELSE state END,"
      " finished_at = CASE WHEN replica IS NULL THEN now() ELSE finished_at"
      " END,"
      " expire_at = CASE WHEN replica IS NULL THEN ",
      ExpireAt("$4"),
      " ELSE expire_at END,"
      " error_code = CASE WHEN replica IS NULL THEN 1 ELSE error_code END,"
      " error_message = CASE WHEN replica IS NULL THEN 'cancelled by request'"
      " ELSE error_message END"
      " WHERE id = $1 AND ($2::bool OR owner = $3) AND state IN (1, 2)"
      " RETURNING id, state, replica)"
      " SELECT count(",
      internal::Notify("CASE WHEN state = 5 THEN 'e ' || id"
                       " ELSE 'c ' || id || ' ' || replica END"),
      ") FROM c"));
  return *kSql;
}

// Tasks by id ($1, an array).
const std::string& GetStatement() {
  static const std::string* const kSql = new std::string(
      absl::StrCat("SELECT ", TaskColumns(), " FROM ", kTaskJoins,
                   " WHERE t.id = ANY($1::text[])"));
  return *kSql;
}

std::string MicrosParam(absl::Duration duration) {
  return absl::StrCat(absl::ToInt64Microseconds(duration));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresStore>> PostgresStore::Open(
    PostgresStoreOptions options) {
  REMEX_ASSIGN_OR_RETURN(
      std::unique_ptr<Connection> connection,
      Connection::Connect(options.url, options.connect_timeout));
  absl::Status migrated = internal::Migrate(*connection);
  if (!migrated.ok()) {
    if (migrated.code() == absl::StatusCode::kFailedPrecondition) {
      return migrated;
    }
    return absl::Status(migrated.code(),
                        absl::StrCat("cannot prepare the store ",
                                     internal::RedactUrl(options.url), ": ",
                                     migrated.message()));
  }
  absl::Status heartbeat =
      connection->Run(kHeartbeatStatement, {options.replica_name});
  if (!heartbeat.ok()) {
    return absl::Status(heartbeat.code(),
                        absl::StrCat("cannot write to the store ",
                                     internal::RedactUrl(options.url), ": ",
                                     heartbeat.message()));
  }
  options.readers = std::max(options.readers, 1);
  options.max_batch = std::max<size_t>(options.max_batch, 1);
  options.retention_batch = std::max(options.retention_batch, 1);
  return std::unique_ptr<PostgresStore>(
      new PostgresStore(std::move(options), std::move(connection)));
}

PostgresStore::PostgresStore(PostgresStoreOptions options,
                             std::unique_ptr<Connection> writer)
    : options_(std::move(options)), writer_connection_(std::move(writer)) {
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  callbacks_ = std::thread([this] { CallbackLoop(); });
  writer_ = std::thread([this] { WriterLoop(); });
  for (int i = 0; i < options_.readers; ++i) {
    readers_.emplace_back([this, i] { ReaderLoop(i); });
  }
  maintenance_ = std::thread([this] { MaintenanceLoop(); });
  signals_ = std::thread([this] { SignalLoop(); });
}

std::string PostgresStore::Describe() const {
  return absl::StrCat("PostgreSQL ", internal::RedactUrl(options_.url),
                      " (schema v", internal::SchemaVersion(), ", replica ",
                      options_.replica_name, ")");
}

PostgresStore::~PostgresStore() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    drain_deadline_ = absl::Now() + options_.drain_timeout;
  }
  writer_cv_.SignalAll();
  reader_cv_.SignalAll();
  stop_cv_.SignalAll();
  WakeSignals();
  signals_.join();
  writer_.join();
  for (std::thread& reader : readers_) reader.join();
  maintenance_.join();
  bool all_committed = false;
  {
    absl::MutexLock lock(&mu_);
    all_committed = all_committed_;
  }
  // Every task this replica held is committed as given up or ended: it
  // leaves the replicas at once rather than be found lost after its lease.
  if (all_committed) {
    absl::StatusOr<std::unique_ptr<Connection>> connection =
        Connection::Connect(options_.url, options_.connect_timeout);
    if (connection.ok()) {
      (*connection)
          ->Run("DELETE FROM remex_replicas WHERE name = $1",
                {options_.replica_name})
          .IgnoreError();
    }
  }
  {
    absl::MutexLock lock(&mu_);
    callbacks_stopping_ = true;
  }
  callback_cv_.SignalAll();
  callbacks_.join();
  if (wake_fd_ >= 0) close(wake_fd_);
}

void PostgresStore::ReportError(absl::string_view operation) {
  if (options_.observer != nullptr) {
    options_.observer->OnDatabaseError(operation);
  }
}

bool PostgresStore::CanCommit() const {
  return can_commit_.load(std::memory_order_acquire);
}

void PostgresStore::Defer(absl::AnyInvocable<void()> callback) {
  {
    absl::MutexLock lock(&mu_);
    deferred_.push_back(std::move(callback));
  }
  callback_cv_.Signal();
}

void PostgresStore::Insert(TaskSnapshot task, bool run_here, InsertDone done) {
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      refused = absl::UnavailableError("the store is closing");
    } else if (!can_commit_.load(std::memory_order_acquire)) {
      refused = absl::UnavailableError(
          absl::StrCat("the store cannot commit: ", last_error_));
    } else {
      Write write;
      write.task = std::move(task);
      write.insert = true;
      write.run_here = run_here;
      write.insert_done = std::move(done);
      write.enqueued = absl::Now();
      writes_.push_back(std::move(write));
    }
  }
  if (!refused.ok()) {
    Defer([done = std::move(done), refused]() mutable { done(refused); });
    return;
  }
  writer_cv_.Signal();
}

void PostgresStore::Update(TaskSnapshot task, absl::Time expire_at,
                           bool release, UpdateDone done) {
  {
    absl::MutexLock lock(&mu_);
    Write write;
    write.task = std::move(task);
    write.expire_at = expire_at;
    write.release = release;
    write.update_done = std::move(done);
    write.enqueued = absl::Now();
    writes_.push_back(std::move(write));
  }
  writer_cv_.Signal();
}

void PostgresStore::Erase(std::string id, executor::Visibility visibility,
                          EraseDone done) {
  Read read = [this, id = std::move(id), visibility = std::move(visibility),
               done = std::move(done)](Connection* connection,
                                       const absl::Status& status) mutable {
    if (connection == nullptr) {
      done(ReadUnavailable(status));
      return;
    }
    absl::StatusOr<Result> erased = connection->Exec(
        kEraseStatement,
        {id, visibility.sees_all_tasks ? "true" : "false", visibility.owner});
    if (!erased.ok()) {
      ReportError("read");
      done(erased.status().code() == absl::StatusCode::kUnavailable
               ? ReadUnavailable(erased.status())
               : erased.status());
      return;
    }
    done(erased->GetInt(0, 0) == 0 ? NotFound(id) : absl::OkStatus());
  };
  {
    absl::MutexLock lock(&mu_);
    reads_.push_back(std::move(read));
  }
  reader_cv_.Signal();
}

void PostgresStore::Get(std::string id, executor::Visibility visibility,
                        GetDone done) {
  {
    absl::MutexLock lock(&mu_);
    gets_.push_back({std::move(id), std::move(visibility), std::move(done)});
  }
  reader_cv_.Signal();
}

void PostgresStore::RequestCancel(std::string id,
                                  executor::Visibility visibility,
                                  GetDone done) {
  Read read = [this, id = std::move(id), visibility = std::move(visibility),
               done = std::move(done)](Connection* connection,
                                       const absl::Status& status) mutable {
    if (connection == nullptr) {
      done(ReadUnavailable(status));
      return;
    }
    absl::Status asked =
        connection->Run(CancelStatement(),
                        {id, visibility.sees_all_tasks ? "true" : "false",
                         visibility.owner, MicrosParam(options_.default_ttl)});
    if (!asked.ok()) {
      ReportError("read");
      done(asked.code() == absl::StatusCode::kUnavailable
               ? ReadUnavailable(asked)
               : asked);
      return;
    }
    std::vector<PendingGet> get;
    get.push_back({std::move(id), std::move(visibility), std::move(done)});
    RunGets(*connection, get);
  };
  {
    absl::MutexLock lock(&mu_);
    reads_.push_back(std::move(read));
  }
  reader_cv_.Signal();
}

void PostgresStore::List(executor::ListQuery query,
                         executor::Visibility visibility, ListDone done) {
  uint64_t after = 0;
  if (!query.page_token.empty()) {
    const std::optional<uint64_t> position =
        executor::ParseListPageToken(query.page_token);
    if (!position.has_value() ||
        *position >
            static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      absl::Status invalid = InvalidPageToken(query.page_token);
      Defer([done = std::move(done), invalid]() mutable { done(invalid); });
      return;
    }
    after = *position;
  }
  const int page_size =
      query.page_size <= 0
          ? executor::ListQuery::kDefaultPageSize
          : std::min(query.page_size, executor::ListQuery::kMaxPageSize);
  const int scan = std::max(page_size + 1, kListScan);
  std::vector<Param> params = {
      absl::StrCat(after),
      absl::StrCat(scan),
      query.state.has_value()
          ? Param(absl::StrCat(static_cast<int>(*query.state)))
          : std::nullopt,
      query.function,
      query.pool,
      visibility.sees_all_tasks ? "true" : "false",
      visibility.owner,
      absl::StrCat(page_size + 1)};
  Read read = [this, params = std::move(params), after,
               token = query.page_token, page_size, scan,
               done = std::move(done)](Connection* connection,
                                       const absl::Status& status) mutable {
    if (connection == nullptr) {
      done(ReadUnavailable(status));
      return;
    }
    // The window of rows looked at (w), the matches in it (m), and the
    // window's size and end (one row even when nothing matches).
    static const std::string* const kSql = new std::string(absl::StrCat(
        "WITH w AS MATERIALIZED (SELECT list_position, id, state, function,"
        " pool, owner FROM remex_tasks WHERE list_position > $1::int8"
        " ORDER BY list_position LIMIT $2::int8),"
        " m AS (SELECT id FROM w WHERE ($3::int2 IS NULL OR state = $3::int2)"
        " AND ($4 = '' OR function = $4) AND ($5 = '' OR pool = $5)"
        " AND ($6::bool OR owner = $7) ORDER BY list_position"
        " LIMIT $8::int8)"
        " SELECT ",
        TaskColumns(),
        ", s.scanned, s.last_scanned, s.last_numbered FROM (SELECT"
        " count(*) AS scanned, max(list_position) AS last_scanned,"
        " pg_sequence_last_value(pg_get_serial_sequence('remex_tasks',"
        " 'list_position')::regclass) AS last_numbered FROM w) s"
        " LEFT JOIN (m JOIN remex_tasks t ON t.id = m.id"
        " LEFT JOIN remex_task_inputs i ON i.id = t.id"
        " LEFT JOIN remex_task_results r ON r.id = t.id) ON true"
        " ORDER BY t.list_position"));
    absl::StatusOr<Result> rows = connection->Exec(*kSql, params);
    if (!rows.ok()) {
      ReportError("read");
      done(rows.status().code() == absl::StatusCode::kUnavailable
               ? ReadUnavailable(rows.status())
               : rows.status());
      return;
    }
    executor::ListPage page;
    int64_t scanned = 0;
    std::optional<int64_t> last_scanned;
    std::optional<int64_t> last_numbered;
    size_t matches = 0;
    for (int row = 0; row < rows->rows(); ++row) {
      scanned = rows->GetInt(row, kTaskColumnCount);
      last_scanned = rows->GetOptionalInt(row, kTaskColumnCount + 1);
      last_numbered = rows->GetOptionalInt(row, kTaskColumnCount + 2);
      // A position past the last one numbered is no token any replica
      // made (as the memory store refuses it).
      if (after > static_cast<uint64_t>(last_numbered.value_or(0))) {
        done(InvalidPageToken(token));
        return;
      }
      if (rows->IsNull(row, 0)) continue;
      ++matches;
      if (page.tasks.size() == static_cast<size_t>(page_size)) continue;
      absl::StatusOr<TaskSnapshot> task = RowToTask(*rows, row);
      if (!task.ok()) {
        done(task.status());
        return;
      }
      page.tasks.push_back(*std::move(task));
    }
    if (matches > page.tasks.size()) {
      page.next_page_token =
          executor::ListPageToken(page.tasks.back().list_position);
    } else if (scanned == scan && last_scanned.has_value()) {
      page.next_page_token =
          executor::ListPageToken(static_cast<uint64_t>(*last_scanned));
    }
    done(std::move(page));
  };
  {
    absl::MutexLock lock(&mu_);
    reads_.push_back(std::move(read));
  }
  reader_cv_.Signal();
}

absl::StatusOr<std::vector<TaskSnapshot>> PostgresStore::LoadUnfinished() {
  REMEX_ASSIGN_OR_RETURN(
      std::unique_ptr<Connection> connection,
      Connection::Connect(options_.url, options_.connect_timeout));
  // Tasks no replica holds are claimed as slots free up; those of other
  // replicas stay theirs (or are recovered when their lease runs out).
  REMEX_ASSIGN_OR_RETURN(
      Result rows,
      connection->Exec(
          absl::StrCat("SELECT ", TaskColumns(), " FROM ", kTaskJoins,
                       " WHERE t.state IN (1, 2) AND t.replica = "
                       "$1 ORDER BY t.list_position"),
          {options_.replica_name}));
  std::vector<TaskSnapshot> tasks;
  tasks.reserve(rows.rows());
  for (int row = 0; row < rows.rows(); ++row) {
    REMEX_ASSIGN_OR_RETURN(TaskSnapshot task, RowToTask(rows, row));
    tasks.push_back(std::move(task));
  }
  return tasks;
}

// ---------------------------------------------------------------- writer

absl::Status PostgresStore::CommitBatch(std::vector<Write>& batch,
                                        std::vector<uint64_t>& positions,
                                        bool& maybe_committed) {
  maybe_committed = false;
  positions.assign(batch.size(), 0);
  ArrayLiteral ids, functions, pools, owners, states, priorities, attempts,
      max_attempts, cancels, created, queue_timeouts, run_timeouts, ttls, args,
      inputs, labels, replicas;
  size_t inserts = 0;
  const std::string replica = internal::SafeText(options_.replica_name);
  // Pools given tasks that no replica holds, and tasks that ended: each
  // kind signalled once per statement.
  std::vector<std::string> unclaimed_pools;
  std::vector<std::string> ended;
  auto note_unclaimed = [&unclaimed_pools](const std::string& pool) {
    if (std::find(unclaimed_pools.begin(), unclaimed_pools.end(), pool) ==
        unclaimed_pools.end()) {
      unclaimed_pools.push_back(pool);
    }
  };
  // The last update of each task: it holds everything the earlier ones
  // set (a task's snapshots only move forward).
  absl::flat_hash_map<absl::string_view, size_t> last_update;
  for (size_t i = 0; i < batch.size(); ++i) {
    const Write& write = batch[i];
    if (!write.insert) {
      last_update[write.task.id] = i;
      continue;
    }
    ++inserts;
    const TaskSnapshot& task = write.task;
    const TaskSpec& spec = *task.spec;
    ids.Add(task.id);
    functions.Add(internal::SafeText(spec.function));
    pools.Add(internal::SafeText(spec.pool));
    owners.Add(internal::SafeText(spec.owner));
    states.Add(absl::StrCat(static_cast<int>(task.state)));
    priorities.Add(absl::StrCat(spec.priority));
    attempts.Add(absl::StrCat(task.attempt));
    max_attempts.Add(absl::StrCat(spec.max_attempts));
    cancels.Add(task.cancel_requested ? "t" : "f");
    const Param created_at = internal::TimeParam(task.created_at);
    created_at.has_value()
        ? created.Add(*created_at)
        : created.Add(absl::StrCat(absl::ToUnixMicros(absl::UnixEpoch())));
    const Param queue_timeout = internal::DurationParam(spec.queue_timeout);
    queue_timeout.has_value() ? queue_timeouts.Add(*queue_timeout)
                              : queue_timeouts.AddNull();
    const Param run_timeout = internal::DurationParam(spec.run_timeout);
    run_timeout.has_value() ? run_timeouts.Add(*run_timeout)
                            : run_timeouts.AddNull();
    ttls.Add(absl::StrCat(absl::ToInt64Microseconds(spec.ttl)));
    args.Add(DumpJson(spec.args));
    inputs.Add(internal::HexEncode(spec.input));
    Json label_object = Json::object();
    for (const auto& [key, value] : spec.labels) {
      label_object[internal::SafeText(key)] = internal::SafeText(value);
    }
    labels.Add(DumpJson(label_object));
    if (write.run_here) {
      replicas.Add(replica);
    } else {
      replicas.AddNull();
      note_unclaimed(internal::SafeText(spec.pool));
    }
  }
  std::vector<Param> insert_params;
  if (inserts > 0) {
    ArrayLiteral notifications;
    for (const std::string& payload :
         internal::Payloads('q', unclaimed_pools)) {
      notifications.Add(payload);
    }
    unclaimed_pools.clear();
    insert_params = {
        ids.Take(),      functions.Take(),      pools.Take(),
        owners.Take(),   states.Take(),         priorities.Take(),
        attempts.Take(), max_attempts.Take(),   cancels.Take(),
        created.Take(),  queue_timeouts.Take(), run_timeouts.Take(),
        ttls.Take(),     args.Take(),           inputs.Take(),
        labels.Take(),   replicas.Take(),       notifications.Take()};
  }
  std::vector<Param> update_params;
  if (!last_update.empty()) {
    ArrayLiteral u_ids, u_states, u_attempts, u_cancels, u_started, u_finished,
        u_expire, u_codes, u_messages, u_results, u_outputs, u_releases;
    std::vector<size_t> order;
    order.reserve(last_update.size());
    for (const auto& [id, index] : last_update) order.push_back(index);
    // In batch order: rows are locked in a stable order.
    std::sort(order.begin(), order.end());
    for (size_t index : order) {
      const Write& write = batch[index];
      const TaskSnapshot& task = write.task;
      const bool terminal = executor::IsTerminal(task.state);
      u_ids.Add(task.id);
      u_releases.Add(write.release ? "t" : "f");
      if (terminal) ended.push_back(task.id);
      if (write.release && task.spec != nullptr) {
        note_unclaimed(internal::SafeText(task.spec->pool));
      }
      u_states.Add(absl::StrCat(static_cast<int>(task.state)));
      u_attempts.Add(absl::StrCat(task.attempt));
      u_cancels.Add(task.cancel_requested ? "t" : "f");
      auto add_time = [](ArrayLiteral& array, absl::Time time) {
        const Param param = internal::TimeParam(time);
        param.has_value() ? array.Add(*param) : array.AddNull();
      };
      add_time(u_started, task.started_at);
      add_time(u_finished, task.finished_at);
      add_time(u_expire, terminal && write.expire_at != absl::InfiniteFuture()
                             ? write.expire_at
                             : absl::InfinitePast());
      if (terminal && task.outcome != nullptr) {
        u_codes.Add(absl::StrCat(static_cast<int>(task.outcome->error.code)));
        u_messages.Add(internal::SafeText(task.outcome->error.message));
        u_results.Add(DumpJson(task.outcome->result));
        u_outputs.Add(internal::HexEncode(task.outcome->output));
      } else {
        u_codes.Add("0");
        u_messages.Add("");
        u_results.AddNull();
        u_outputs.AddNull();
      }
    }
    ArrayLiteral notifications;
    // A NOTIFY takes a database-wide lock at commit, which serializes the
    // commits of every writer: ends are sent only while a replica listens.
    if (ends_heard_.load(std::memory_order_relaxed)) {
      for (const std::string& payload : internal::EndedPayloads(ended)) {
        notifications.Add(payload);
      }
    }
    for (const std::string& payload :
         internal::Payloads('q', unclaimed_pools)) {
      notifications.Add(payload);
    }
    update_params = {u_ids.Take(),         u_states.Take(),  u_attempts.Take(),
                     u_cancels.Take(),     u_started.Take(), u_finished.Take(),
                     u_expire.Take(),      u_codes.Take(),   u_messages.Take(),
                     u_results.Take(),     u_outputs.Take(), replica,
                     notifications.Take(), u_releases.Take()};
  }

  static const std::string* const kInsert =
      new std::string(internal::InsertStatement());
  static const std::string* const kUpdate =
      new std::string(internal::UpdateStatement());
  Connection& connection = *writer_connection_;
  // One kind of write: one statement, its own transaction.
  if (last_update.empty() || inserts == 0) {
    maybe_committed = true;
    if (inserts > 0) {
      absl::StatusOr<Result> rows = connection.Exec(*kInsert, insert_params);
      if (!rows.ok()) {
        maybe_committed =
            rows.status().code() == absl::StatusCode::kUnavailable;
        return rows.status();
      }
      FillPositions(*rows, batch, positions);
      return absl::OkStatus();
    }
    absl::Status updated = connection.Run(*kUpdate, update_params);
    if (!updated.ok()) {
      maybe_committed = updated.code() == absl::StatusCode::kUnavailable;
    }
    return updated;
  }
  // Both: inserts first (an update may be of a task inserted in this
  // batch), in one transaction.
  REMEX_RETURN_IF_ERROR(connection.Run("BEGIN"));
  auto body = [&]() -> absl::Status {
    REMEX_ASSIGN_OR_RETURN(Result rows,
                           connection.Exec(*kInsert, insert_params));
    FillPositions(rows, batch, positions);
    return connection.Run(*kUpdate, update_params);
  };
  absl::Status status = body();
  if (!status.ok()) {
    if (!connection.Broken()) connection.Run("ROLLBACK").IgnoreError();
    return status;
  }
  maybe_committed = true;
  status = connection.Run("COMMIT");
  if (!status.ok()) {
    maybe_committed = status.code() == absl::StatusCode::kUnavailable;
  }
  return status;
}

absl::StatusOr<bool> PostgresStore::FoundCommitted(
    const std::vector<Write>& batch, std::vector<uint64_t>& positions) {
  ArrayLiteral ids;
  bool any = false;
  for (const Write& write : batch) {
    if (!write.insert) continue;
    ids.Add(write.task.id);
    any = true;
  }
  // Updates alone are committed again: they are idempotent.
  if (!any) return false;
  REMEX_ASSIGN_OR_RETURN(
      Result rows,
      writer_connection_->Exec("SELECT id, list_position FROM remex_tasks"
                               " WHERE id = ANY($1::text[])",
                               {ids.Take()}));
  // The batch was one transaction: all of it or nothing.
  if (rows.rows() == 0) return false;
  FillPositions(rows, batch, positions);
  return true;
}

void PostgresStore::AnswerCommitted(std::vector<Write>& batch,
                                    const std::vector<uint64_t>& positions) {
  for (size_t i = 0; i < batch.size(); ++i) {
    Write& write = batch[i];
    if (write.insert) {
      if (positions[i] == 0) {
        write.insert_done(absl::AlreadyExistsError(absl::StrCat(
            "task id ", common::Quote(write.task.id), " is already stored")));
      } else {
        write.insert_done(positions[i]);
      }
    } else if (write.update_done) {
      write.update_done();
    }
  }
}

void PostgresStore::FillPositions(const Result& rows,
                                  const std::vector<Write>& batch,
                                  std::vector<uint64_t>& positions) {
  absl::flat_hash_map<absl::string_view, uint64_t> by_id;
  for (int row = 0; row < rows.rows(); ++row) {
    if (rows.IsNull(row, 0)) continue;  // the insert's notifications
    by_id[rows.Get(row, 0)] = static_cast<uint64_t>(rows.GetInt(row, 1));
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    if (!batch[i].insert) continue;
    auto it = by_id.find(batch[i].task.id);
    // 0: the id was taken (ON CONFLICT skipped it).
    positions[i] = it == by_id.end() ? 0 : it->second;
  }
}

void PostgresStore::LoseDatabase(const absl::Status& error) {
  std::vector<Write> failed;
  bool was_up = false;
  {
    absl::MutexLock lock(&mu_);
    last_error_ = std::string(error.message());
    was_up = can_commit_.exchange(false, std::memory_order_acq_rel);
    std::deque<Write> kept;
    for (Write& write : writes_) {
      if (write.insert) {
        failed.push_back(std::move(write));
      } else {
        kept.push_back(std::move(write));
      }
    }
    writes_ = std::move(kept);
  }
  if (options_.observer != nullptr) {
    options_.observer->OnDatabaseError("commit");
    if (was_up) options_.observer->OnCanCommit(false);
  }
  if (was_up) {
    log::Error("store_connection_lost",
               absl::StrCat("store: cannot commit (", error.message(),
                            "): submits fail until the database is back"),
               {{"connection", "writer"}, {"error", error.message()}});
  }
  const absl::Status unavailable = absl::UnavailableError(
      absl::StrCat("the store cannot commit: ", error.message()));
  for (Write& write : failed) write.insert_done(unavailable);
}

void PostgresStore::Reconnect() {
  absl::Duration backoff = kFirstBackoff;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      const absl::Time deadline =
          std::min(drain_deadline_, absl::Now() + backoff);
      // Closing with nothing left to commit, or out of time: no reconnect.
      auto give_up = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ && (writes_.empty() || absl::Now() >= drain_deadline_);
      };
      while (!give_up() && absl::Now() < deadline) {
        stop_cv_.WaitWithDeadline(&mu_, deadline);
      }
      if (give_up()) return;
    }
    backoff = std::min(backoff * 2, kMaxBackoff);
    writer_connection_.reset();
    absl::StatusOr<std::unique_ptr<Connection>> connection =
        Connection::Connect(options_.url, options_.connect_timeout);
    if (!connection.ok()) {
      ReportError("connect");
      absl::MutexLock lock(&mu_);
      last_error_ = std::string(connection.status().message());
      continue;
    }
    writer_connection_ = *std::move(connection);
    std::vector<std::string> doubtful;
    {
      absl::MutexLock lock(&mu_);
      doubtful.swap(doubtful_inserts_);
    }
    if (!doubtful.empty()) {
      ArrayLiteral ids;
      for (const std::string& id : doubtful) ids.Add(id);
      absl::StatusOr<Result> deleted =
          writer_connection_->Exec(kDeleteIdsStatement, {ids.Take()});
      if (!deleted.ok()) {
        ReportError("commit");
        absl::MutexLock lock(&mu_);
        doubtful_inserts_.insert(doubtful_inserts_.end(), doubtful.begin(),
                                 doubtful.end());
        continue;
      }
      if (deleted->GetInt(0, 0) > 0) {
        log::Warn("store_in_doubt_deleted",
                  absl::StrCat("store: deleted ", deleted->GetInt(0, 0),
                               " task(s) whose commit was in doubt and whose "
                               "submits were refused"),
                  {{"tasks", deleted->GetInt(0, 0)}});
      }
    }
    can_commit_.store(true, std::memory_order_release);
    log::Info("store_reconnected", "store: connected again: committing",
              {{"connection", "writer"}});
    if (options_.observer != nullptr) {
      options_.observer->OnReconnect();
      options_.observer->OnCanCommit(true);
    }
    return;
  }
}

void PostgresStore::WriterLoop() {
  std::vector<Write> batch;
  std::vector<uint64_t> positions;
  for (;;) {
    batch.clear();
    {
      absl::MutexLock lock(&mu_);
      while (writes_.empty() && !stopping_) writer_cv_.Wait(&mu_);
      if (writes_.empty() || (stopping_ && absl::Now() >= drain_deadline_)) {
        break;
      }
      size_t bytes = 0;
      while (!writes_.empty() && batch.size() < options_.max_batch &&
             bytes < kMaxBatchBytes) {
        bytes += WriteBytes(writes_.front());
        batch.push_back(std::move(writes_.front()));
        writes_.pop_front();
      }
    }
    absl::Time first = absl::InfiniteFuture();
    for (const Write& write : batch) first = std::min(first, write.enqueued);
    bool maybe_committed = false;
    absl::Status status = CommitBatch(batch, positions, maybe_committed);
    if (!status.ok() && status.code() == absl::StatusCode::kUnavailable) {
      // The connection was lost (while idle, say: the database restarted).
      // Once more on a new connection before anyone is told, after asking
      // whether a transaction in doubt committed after all.
      absl::StatusOr<std::unique_ptr<Connection>> connection =
          Connection::Connect(options_.url, options_.connect_timeout);
      if (connection.ok()) {
        writer_connection_ = *std::move(connection);
        absl::StatusOr<bool> committed = false;
        if (maybe_committed) committed = FoundCommitted(batch, positions);
        if (!committed.ok()) {
          status = committed.status();
        } else if (*committed) {
          status = absl::OkStatus();
        } else {
          status = CommitBatch(batch, positions, maybe_committed);
        }
      }
    }
    if (status.ok()) {
      const absl::Time now = absl::Now();
      if (options_.observer != nullptr) {
        options_.observer->OnCommit(batch.size(), now - first);
      }
      // Answered on the callback thread, so that the writer commits the
      // next batch meanwhile: under load the callbacks (tasks launched,
      // waiters told) cost as much as a commit.
      Defer([batch = std::move(batch), positions]() mutable {
        AnswerCommitted(batch, positions);
      });
      continue;
    }
    // Failed: the inserts are told UNAVAILABLE (with the others pending),
    // the updates go back to the front, in order, for after the
    // reconnect.
    {
      absl::MutexLock lock(&mu_);
      for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
        if (it->insert && maybe_committed) {
          doubtful_inserts_.push_back(it->task.id);
        }
        writes_.push_front(std::move(*it));
      }
    }
    LoseDatabase(status);
    Reconnect();
  }
  // Stopped: what is left could not be committed in time.
  std::deque<Write> left;
  {
    absl::MutexLock lock(&mu_);
    left.swap(writes_);
    writer_done_ = true;
    all_committed_ = left.empty() && can_commit_.load();
  }
  size_t dropped_updates = 0;
  size_t failed_inserts = 0;
  const absl::Status closing =
      absl::UnavailableError("the store closed before the task was committed");
  for (Write& write : left) {
    if (write.insert) {
      ++failed_inserts;
      write.insert_done(closing);
    } else {
      ++dropped_updates;
    }
  }
  if (!left.empty()) {
    log::Warn("store_closed_with_losses",
              absl::StrCat("store: closed with ", failed_inserts,
                           " submit(s) refused and ", dropped_updates,
                           " task update(s) not committed"),
              {{"refused_submits", failed_inserts},
               {"dropped_updates", dropped_updates}});
  }
  writer_connection_.reset();
}

// ---------------------------------------------------------------- readers

absl::Status PostgresStore::EnsureReader(
    std::unique_ptr<Connection>& connection, absl::Time& last_attempt,
    absl::Time& last_used) {
  const absl::Time now = absl::Now();
  // A connection idle for a while may have been closed by a restart of the
  // database: checked (one round trip) rather than failing a read on it.
  if (connection != nullptr && !connection->Broken() &&
      now - last_used > kIdleCheck) {
    if (!connection->Run("SELECT 1").ok()) connection.reset();
  }
  last_used = now;
  if (connection != nullptr && !connection->Broken()) return absl::OkStatus();
  connection.reset();
  // While the writer cannot commit either, the database is away: reads
  // fail at once between attempts.
  if (!can_commit_.load(std::memory_order_acquire) &&
      now - last_attempt < kReaderRetry) {
    return absl::UnavailableError("the database is away");
  }
  last_attempt = now;
  absl::StatusOr<std::unique_ptr<Connection>> connected =
      Connection::Connect(options_.url, options_.connect_timeout);
  if (!connected.ok()) {
    ReportError("connect");
    return connected.status();
  }
  connection = *std::move(connected);
  return absl::OkStatus();
}

void PostgresStore::RunGets(Connection& connection,
                            std::vector<PendingGet>& gets) {
  ArrayLiteral ids;
  for (const PendingGet& get : gets) ids.Add(get.id);
  absl::StatusOr<Result> rows = connection.Exec(GetStatement(), {ids.Take()});
  if (!rows.ok()) {
    ReportError("read");
    const absl::Status error =
        rows.status().code() == absl::StatusCode::kUnavailable
            ? ReadUnavailable(rows.status())
            : rows.status();
    for (PendingGet& get : gets) get.done(error);
    return;
  }
  absl::flat_hash_map<absl::string_view, int> by_id;
  for (int row = 0; row < rows->rows(); ++row) by_id[rows->Get(row, 0)] = row;
  for (PendingGet& get : gets) {
    auto it = by_id.find(get.id);
    if (it == by_id.end()) {
      get.done(NotFound(get.id));
      continue;
    }
    absl::StatusOr<TaskSnapshot> task = RowToTask(*rows, it->second);
    if (task.ok() && !get.visibility.Sees(*task->spec)) {
      get.done(NotFound(get.id));
      continue;
    }
    get.done(std::move(task));
  }
}

void PostgresStore::ReaderLoop(int index) {
  std::unique_ptr<Connection> connection;
  absl::Time last_attempt = absl::InfinitePast();
  absl::Time last_used = absl::Now();
  for (;;) {
    std::vector<PendingGet> gets;
    Read read;
    {
      absl::MutexLock lock(&mu_);
      while (gets_.empty() && reads_.empty() && !stopping_) {
        reader_cv_.Wait(&mu_);
      }
      if (gets_.empty() && reads_.empty()) break;
      if (!gets_.empty()) {
        while (!gets_.empty() && gets.size() < kMaxGetBatch) {
          gets.push_back(std::move(gets_.front()));
          gets_.pop_front();
        }
      } else {
        read = std::move(reads_.front());
        reads_.pop_front();
      }
    }
    absl::Status status = EnsureReader(connection, last_attempt, last_used);
    if (!status.ok()) {
      if (read) {
        read(nullptr, status);
      } else {
        const absl::Status error = ReadUnavailable(status);
        for (PendingGet& get : gets) get.done(error);
      }
      continue;
    }
    if (read) {
      read(connection.get(), absl::OkStatus());
    } else {
      RunGets(*connection, gets);
    }
  }
}

// ----------------------------------------------------------- maintenance

absl::Status PostgresStore::DeleteExpired(Connection& connection) {
  const std::string batch = absl::StrCat(options_.retention_batch);
  // The same thread writes the heartbeat: a backlog of expired tasks is
  // deleted over several rounds rather than let the lease run out.
  const absl::Time give_way =
      absl::Now() +
      std::min(options_.heartbeat_interval / 2, options_.retention_interval);
  for (;;) {
    if (absl::Now() >= give_way) return absl::OkStatus();
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return absl::OkStatus();
    }
    REMEX_RETURN_IF_ERROR(connection.Run("BEGIN"));
    auto round = [&]() -> absl::StatusOr<int64_t> {
      // One replica at a time: the others skip this round.
      REMEX_ASSIGN_OR_RETURN(
          Result locked,
          connection.Exec("SELECT pg_try_advisory_xact_lock($1::bigint)",
                          {absl::StrCat(internal::kRetentionLockKey)}));
      if (!locked.GetBool(0, 0)) return 0;
      REMEX_ASSIGN_OR_RETURN(Result deleted,
                             connection.Exec(kRetentionStatement, {batch}));
      return deleted.GetInt(0, 0);
    };
    absl::StatusOr<int64_t> deleted = round();
    if (!deleted.ok()) {
      if (!connection.Broken()) connection.Run("ROLLBACK").IgnoreError();
      return deleted.status();
    }
    REMEX_RETURN_IF_ERROR(connection.Run("COMMIT"));
    if (*deleted < options_.retention_batch) return absl::OkStatus();
  }
}

absl::Status PostgresStore::Heartbeat(Connection& connection) {
  REMEX_RETURN_IF_ERROR(
      connection.Run(kHeartbeatStatement, {options_.replica_name}));
  REMEX_ASSIGN_OR_RETURN(
      Result live,
      connection.Exec(kLiveReplicasStatement,
                      {MicrosParam(options_.lease),
                       absl::StrCat(internal::kEndsListenerLockKey)}));
  live_replicas_.store(std::max<int64_t>(1, live.GetInt(0, 0)),
                       std::memory_order_relaxed);
  ends_heard_.store(live.GetInt(0, 1) > 0, std::memory_order_relaxed);
  if (options_.observer != nullptr) {
    options_.observer->OnLiveReplicas(live_replicas_.load());
  }
  return absl::OkStatus();
}

absl::Status PostgresStore::RecoverLostReplicas(Connection& connection) {
  REMEX_RETURN_IF_ERROR(connection.Run("BEGIN"));
  auto round = [&]() -> absl::StatusOr<std::optional<Result>> {
    // One replica at a time: the others skip this round.
    REMEX_ASSIGN_OR_RETURN(
        Result locked,
        connection.Exec("SELECT pg_try_advisory_xact_lock($1::bigint)",
                        {absl::StrCat(internal::kLeaseLockKey)}));
    if (!locked.GetBool(0, 0)) return std::nullopt;
    REMEX_ASSIGN_OR_RETURN(
        Result recovered,
        connection.Exec(RecoverLostStatement(),
                        {MicrosParam(options_.lease), options_.replica_name,
                         MicrosParam(options_.default_ttl)}));
    return std::optional<Result>(std::move(recovered));
  };
  absl::StatusOr<std::optional<Result>> recovered = round();
  if (!recovered.ok()) {
    if (!connection.Broken()) connection.Run("ROLLBACK").IgnoreError();
    return recovered.status();
  }
  REMEX_RETURN_IF_ERROR(connection.Run("COMMIT"));
  if (!recovered->has_value() || (*recovered)->GetInt(0, 0) == 0) {
    return absl::OkStatus();
  }
  const Result& row = **recovered;
  double silent_seconds = 0;
  if (!absl::SimpleAtod(row.Get(0, 1), &silent_seconds)) silent_seconds = 0;
  const int64_t ended = row.GetInt(0, 2);
  const int64_t requeued = row.GetInt(0, 3);
  log::Warn("replicas_lost",
            absl::StrCat("store: ", row.GetInt(0, 0),
                         " replica(s) lost (no heartbeat for ",
                         absl::FormatDuration(absl::Seconds(silent_seconds)),
                         ", lease ", absl::FormatDuration(options_.lease),
                         "): ", requeued, " running task(s) queued again, ",
                         ended, " ended"),
            {{"replicas", row.GetInt(0, 0)},
             {"silent_for", absl::Seconds(silent_seconds)},
             {"lease", options_.lease},
             {"requeued", requeued},
             {"ended", ended}});
  if (options_.observer != nullptr) {
    options_.observer->OnReplicaLost(absl::Seconds(silent_seconds), ended);
    if (requeued > 0) options_.observer->OnRequeued(requeued);
  }
  return absl::OkStatus();
}

void PostgresStore::MaintenanceLoop() {
  std::unique_ptr<Connection> connection;
  absl::Time last_attempt = absl::InfinitePast();
  absl::Time last_used = absl::Now();
  absl::Time next_retention = absl::Now();
  absl::Time next_heartbeat = absl::Now() + options_.heartbeat_interval;
  // Since when this replica's heartbeats have gone through without a gap
  // (Open wrote the first). Others are found lost only after a lease of
  // that: after an outage of the database (or of this replica's link to
  // it) every heartbeat is old, and the others need a lease to write theirs
  // again before their tasks are taken from them.
  absl::Time heartbeating_since = absl::Now();
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      const absl::Time wake = std::min(next_retention, next_heartbeat);
      while (!stopping_ && absl::Now() < wake) {
        stop_cv_.WaitWithDeadline(&mu_, wake);
      }
      if (stopping_) break;
    }
    if (!EnsureReader(connection, last_attempt, last_used).ok()) {
      ReportError("heartbeat");
      heartbeating_since = absl::InfiniteFuture();
      next_retention = next_heartbeat = absl::Now() + kReaderRetry;
      continue;
    }
    const absl::Time now = absl::Now();
    if (now >= next_heartbeat || heartbeating_since == absl::InfiniteFuture()) {
      next_heartbeat = now + options_.heartbeat_interval;
      if (Heartbeat(*connection).ok()) {
        heartbeating_since = std::min(heartbeating_since, now);
      } else {
        ReportError("heartbeat");
        heartbeating_since = absl::InfiniteFuture();
      }
    }
    if (now >= next_retention) {
      next_retention = now + options_.retention_interval;
      if (now - heartbeating_since >= options_.lease &&
          !RecoverLostReplicas(*connection).ok()) {
        ReportError("lease");
      }
      if (!DeleteExpired(*connection).ok()) ReportError("retention");
    }
  }
}

// ----------------------------------------------------------------- signals

bool PostgresStore::Shared() const {
  return live_replicas_.load(std::memory_order_relaxed) > 1;
}

void PostgresStore::WakeSignals() {
  const uint64_t one = 1;
  if (wake_fd_ >= 0 && write(wake_fd_, &one, sizeof(one)) < 0) {
    // EAGAIN: the counter is full, so the thread is woken anyway.
  }
}

void PostgresStore::Attach(executor::StoreRunner* runner) {
  {
    absl::MutexLock lock(&runner_mu_);
    runner_ = runner;
  }
  if (runner != nullptr) MarkBacklog();
}

void PostgresStore::MarkBacklog() {
  {
    absl::MutexLock lock(&signal_mu_);
    backlog_all_ = true;
    any_backlog_.store(true, std::memory_order_relaxed);
  }
  claim_wanted_.store(true);
  WakeSignals();
}

void PostgresStore::OnSlotFreed(const std::string& pool) {
  if (!any_backlog_.load(std::memory_order_relaxed)) return;
  {
    absl::MutexLock lock(&signal_mu_);
    if (!backlog_all_ && !backlog_.contains(pool)) return;
  }
  if (!claim_wanted_.exchange(true)) WakeSignals();
}

void PostgresStore::Claim(Connection& connection) {
  absl::MutexLock runner_lock(&runner_mu_);
  if (runner_ == nullptr) return;
  std::vector<std::pair<std::string, int>> slots = runner_->FreeSlots();
  for (const auto& [pool, free] : slots) {
    {
      absl::MutexLock lock(&signal_mu_);
      if (!backlog_all_ && !backlog_.contains(pool)) continue;
      // Until a claim finds fewer than it asked for, the pool may have
      // more waiting.
      backlog_.insert(pool);
    }
    if (free <= 0) continue;
    absl::StatusOr<Result> rows = connection.Exec(
        ClaimStatement(), {internal::SafeText(options_.replica_name),
                           internal::SafeText(pool), absl::StrCat(free)});
    if (!rows.ok()) {
      ReportError("claim");
      if (connection.Broken()) break;
      continue;
    }
    std::vector<TaskSnapshot> tasks;
    tasks.reserve(static_cast<size_t>(rows->rows()));
    for (int row = 0; row < rows->rows(); ++row) {
      absl::StatusOr<TaskSnapshot> task = RowToTask(*rows, row);
      if (task.ok()) {
        tasks.push_back(*std::move(task));
      } else {
        log::Error("store_bad_row",
                   absl::StrCat("store: cannot read a claimed task: ",
                                task.status().message()));
      }
    }
    if (rows->rows() < free) {
      absl::MutexLock lock(&signal_mu_);
      backlog_.erase(pool);
    }
    if (!tasks.empty()) runner_->RunClaimed(std::move(tasks));
  }
  absl::MutexLock lock(&signal_mu_);
  backlog_all_ = false;
  any_backlog_.store(!backlog_.empty(), std::memory_order_relaxed);
}

void PostgresStore::HandleSignals(const std::vector<std::string>& payloads) {
  std::vector<std::string> ended;
  std::vector<std::string> cancels;
  bool unclaimed = false;
  for (const std::string& payload : payloads) {
    std::vector<std::string> words = absl::StrSplit(
        absl::string_view(payload).substr(std::min<size_t>(2, payload.size())),
        ' ', absl::SkipEmpty());
    switch (payload.empty() ? '\0' : payload[0]) {
      case 'e':
        std::move(words.begin(), words.end(), std::back_inserter(ended));
        break;
      case 'c': {
        // "c ID REPLICA": the replica's name may hold spaces.
        const size_t space = payload.find(' ', 2);
        if (space != std::string::npos &&
            payload.substr(space + 1) ==
                internal::SafeText(options_.replica_name)) {
          cancels.push_back(payload.substr(2, space - 2));
        }
        break;
      }
      case 'q': {
        absl::MutexLock lock(&signal_mu_);
        for (std::string& pool : words) backlog_.insert(std::move(pool));
        any_backlog_.store(true, std::memory_order_relaxed);
        unclaimed = true;
        break;
      }
      default:
        break;
    }
  }
  if (unclaimed) claim_wanted_.store(true);
  if (ended.empty() && cancels.empty()) return;
  absl::MutexLock runner_lock(&runner_mu_);
  if (runner_ == nullptr) return;
  if (!ended.empty()) runner_->OnEnded(std::move(ended));
  for (const std::string& id : cancels) runner_->OnCancelRequested(id);
}

void PostgresStore::SignalLoop() {
  std::unique_ptr<Connection> connection;
  absl::Duration backoff = kFirstBackoff;
  absl::Time next_poll = absl::Now();
  // Whether this connection LISTENs to the ends, and since when nobody here
  // has waited for one (it stops listening after a while of that).
  bool listening_to_ends = false;
  absl::Time ends_unwanted_since = absl::InfiniteFuture();
  // Whether the last connect failed (a line when it fails, one when back).
  bool listener_lost = false;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) break;
    }
    if (connection == nullptr || connection->Broken()) {
      listening_to_ends = false;
      connection.reset();
      absl::StatusOr<std::unique_ptr<Connection>> connected =
          Connection::Connect(options_.url, options_.connect_timeout);
      // A claim need not wait for its own flush to disk: the start or end
      // of a claimed task, committed synchronously by the writer, flushes
      // it first. (Lost only if the database itself crashes within that
      // moment: then the task is claimed again, and may run twice.)
      absl::Status listening =
          connected.ok()
              ? (*connected)
                    ->Run(absl::StrCat("SET synchronous_commit = off; LISTEN ",
                                       internal::kChannel))
              : connected.status();
      if (!listening.ok()) {
        ReportError("listen");
        if (!listener_lost) {
          listener_lost = true;
          log::Warn(
              "store_connection_lost",
              absl::StrCat("store: cannot listen (", listening.message(),
                           "): claims and ends wait for the database"),
              {{"connection", "listener"}, {"error", listening.message()}});
        }
        absl::MutexLock lock(&mu_);
        const absl::Time deadline = absl::Now() + backoff;
        while (!stopping_ && absl::Now() < deadline) {
          stop_cv_.WaitWithDeadline(&mu_, deadline);
        }
        backoff = std::min(backoff * 2, kMaxBackoff);
        continue;
      }
      if (listener_lost) {
        listener_lost = false;
        log::Info("store_reconnected", "store: listening again",
                  {{"connection", "listener"}});
      }
      connection = *std::move(connected);
      backoff = kFirstBackoff;
      // Signals sent while nobody listened are lost: look at everything.
      MarkBacklog();
      absl::MutexLock runner_lock(&runner_mu_);
      if (runner_ != nullptr) runner_->OnEnded({});
    }
    if (absl::Now() >= next_poll) {
      next_poll = absl::Now() + options_.claim_poll;
      MarkBacklog();
    }
    if (ends_wanted_.load() != listening_to_ends) {
      ListenToEnds(*connection, listening_to_ends, ends_unwanted_since);
    }
    if (absl::Now() >= recheck_ends_at_) {
      recheck_ends_at_ = absl::InfiniteFuture();
      absl::MutexLock runner_lock(&runner_mu_);
      if (runner_ != nullptr) runner_->OnEnded({});
    }
    if (claim_wanted_.exchange(false)) Claim(*connection);
    if (connection->Broken()) continue;
    absl::StatusOr<std::vector<std::string>> payloads =
        connection->WaitForNotifications(
            std::max(absl::ZeroDuration(), next_poll - absl::Now()), wake_fd_);
    uint64_t wakes = 0;
    if (read(wake_fd_, &wakes, sizeof(wakes)) < 0) {
      // EAGAIN: nobody woke it.
    }
    if (!payloads.ok()) {
      ReportError("listen");
      connection.reset();
      continue;
    }
    HandleSignals(*payloads);
  }
}

void PostgresStore::ListenForEnds(bool on) {
  if (!on) {
    ends_wanted_.store(false);
  } else if (!ends_wanted_.exchange(true)) {
    WakeSignals();
  }
}

void PostgresStore::ListenToEnds(Connection& connection, bool& listening,
                                 absl::Time& unwanted_since) {
  if (listening) {
    // Waiters come and go: not listening only after a quiet while.
    const absl::Time now = absl::Now();
    if (unwanted_since == absl::InfiniteFuture()) unwanted_since = now;
    if (now - unwanted_since < kEndsLinger) return;
    if (connection
            .Run(absl::StrCat("UNLISTEN ", internal::kEndedChannel,
                              "; SELECT pg_advisory_unlock_shared(",
                              internal::kEndsListenerLockKey, ")"))
            .ok()) {
      listening = false;
    }
    return;
  }
  unwanted_since = absl::InfiniteFuture();
  if (!connection
           .Run(absl::StrCat("LISTEN ", internal::kEndedChannel,
                             "; SELECT pg_advisory_lock_shared(",
                             internal::kEndsListenerLockKey, ")"))
           .ok()) {
    ReportError("listen");
    return;
  }
  listening = true;
  // The other replicas see the lock at their next heartbeat: until then
  // they may not signal ends. The waited tasks are looked up again after
  // that (and once now, for the ends committed before the LISTEN).
  recheck_ends_at_ = absl::Now() + 2 * options_.heartbeat_interval;
  // Ends committed before the LISTEN took effect were not heard: look the
  // waited tasks up once.
  absl::MutexLock runner_lock(&runner_mu_);
  if (runner_ != nullptr) runner_->OnEnded({});
}

void PostgresStore::CallbackLoop() {
  for (;;) {
    absl::AnyInvocable<void()> callback;
    {
      absl::MutexLock lock(&mu_);
      while (deferred_.empty() && !callbacks_stopping_) callback_cv_.Wait(&mu_);
      if (deferred_.empty()) return;
      callback = std::move(deferred_.front());
      deferred_.pop_front();
    }
    callback();
  }
}

}  // namespace remex::store
