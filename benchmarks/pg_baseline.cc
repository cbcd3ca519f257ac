#include "pg_baseline.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/store/postgres/pg.h"
#include "server/store/postgres/schema.h"
#include "server/store/postgres/statements.h"

namespace remex::bench {
namespace {

using store::internal::ArrayLiteral;
using store::internal::Connection;
using store::internal::InsertStatement;
using store::internal::Param;
using store::internal::Result;
using store::internal::UpdateStatement;

constexpr absl::Duration kConnectTimeout = absl::Seconds(10);
// The store's default PostgresStoreOptions::max_batch: writes per
// transaction, at most.
constexpr int64_t kStoreMaxBatch = 1024;

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The parameters of the insert statement for new no-op tasks, as the
// store fills them for Submit("echo") with no args: QUEUED, attempt 0, no
// timeouts, the server's default ttl, args null, no input, no labels.
std::vector<Param> InsertParams(const std::vector<std::string>& ids) {
  ArrayLiteral id, function, pool, owner, state, priority, attempt,
      max_attempts, cancel, created, queue_timeout, run_timeout, ttl, args,
      input, labels, replica;
  const std::string now = absl::StrCat(absl::ToUnixMicros(absl::Now()));
  for (const std::string& task : ids) {
    id.Add(task);
    function.Add("echo");
    pool.Add("default");
    owner.Add("");
    state.Add("1");
    priority.Add("0");
    attempt.Add("0");
    max_attempts.Add("1");
    cancel.Add("f");
    created.Add(now);
    queue_timeout.AddNull();
    run_timeout.AddNull();
    ttl.Add("0");
    args.Add("null");
    input.Add("");
    labels.Add("{}");
    replica.Add("remex-bench");
  }
  return {id.Take(),      function.Take(),      pool.Take(),
          owner.Take(),   state.Take(),         priority.Take(),
          attempt.Take(), max_attempts.Take(),  cancel.Take(),
          created.Take(), queue_timeout.Take(), run_timeout.Take(),
          ttl.Take(),     args.Take(),          input.Take(),
          labels.Take(),  replica.Take(),       "{}"};
}

// The parameters of the update statement for the ends of no-op tasks:
// SUCCEEDED on attempt 1, result null, no output, kept for an hour; their
// ids notified, as the store does.
std::vector<Param> EndParams(const std::vector<std::string>& ids) {
  ArrayLiteral id, state, attempt, cancel, started, finished, expire, code,
      message, result, output, release, notifications;
  const absl::Time now = absl::Now();
  const std::string now_us = absl::StrCat(absl::ToUnixMicros(now));
  const std::string expire_us =
      absl::StrCat(absl::ToUnixMicros(now + absl::Hours(1)));
  for (const std::string& task : ids) {
    id.Add(task);
    state.Add("3");
    attempt.Add("1");
    cancel.Add("f");
    started.Add(now_us);
    finished.Add(now_us);
    expire.Add(expire_us);
    code.Add("0");
    message.Add("");
    result.Add("null");
    output.Add("");
    release.Add("f");
  }
  for (const std::string& payload : store::internal::EndedPayloads(ids)) {
    notifications.Add(payload);
  }
  return {id.Take(),
          state.Take(),
          attempt.Take(),
          cancel.Take(),
          started.Take(),
          finished.Take(),
          expire.Take(),
          code.Take(),
          message.Take(),
          result.Take(),
          output.Take(),
          "remex-bench",
          notifications.Take(),
          release.Take()};
}

// Connects to the database at `url`.
absl::StatusOr<std::unique_ptr<Connection>> Connect(const std::string& url) {
  return Connection::Connect(url, kConnectTimeout);
}

// A libpq identifier: remex-bench makes its own names, so this only checks.
bool IsPlainIdentifier(absl::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<std::string> WithSearchPath(const std::string& url,
                                           const std::string& schema) {
  if (absl::StrContains(url, "options=")) {
    return absl::InvalidArgumentError(
        "--store: the URL sets `options`; remex-bench sets its own "
        "(search_path, for a fresh schema per run): drop them");
  }
  if (absl::StartsWith(url, "postgresql://") ||
      absl::StartsWith(url, "postgres://")) {
    // '=' percent-encoded inside the query parameter's value.
    return absl::StrCat(url, absl::StrContains(url, "?") ? "&" : "?",
                        "options=-csearch_path%3D", schema);
  }
  return absl::StrCat(url, " options='-csearch_path=", schema, "'");
}

absl::StatusOr<std::unique_ptr<FreshSchema>> FreshSchema::Create(
    const std::string& url) {
  static std::atomic<int> next{0};
  const std::string name =
      absl::StrCat("remex_bench_", getpid(), "_", next.fetch_add(1));
  std::string schema_url;
  {
    absl::StatusOr<std::string> with_path = WithSearchPath(url, name);
    if (!with_path.ok()) return with_path.status();
    schema_url = *std::move(with_path);
  }
  absl::StatusOr<std::unique_ptr<Connection>> connection = Connect(url);
  if (!connection.ok()) return connection.status();
  if (absl::Status status =
          (*connection)
              ->Run(absl::StrCat("DROP SCHEMA IF EXISTS ", name,
                                 " CASCADE; CREATE "
                                 "SCHEMA ",
                                 name));
      !status.ok()) {
    return absl::Status(
        status.code(),
        absl::StrCat("cannot create schema ", name, ": ", status.message()));
  }
  return std::unique_ptr<FreshSchema>(
      new FreshSchema(url, name, std::move(schema_url)));
}

FreshSchema::~FreshSchema() {
  if (!IsPlainIdentifier(name_)) return;
  absl::StatusOr<std::unique_ptr<Connection>> connection = Connect(base_url_);
  absl::Status dropped =
      connection.ok()
          ? (*connection)
                ->Run(absl::StrCat("DROP SCHEMA IF EXISTS ", name_, " CASCADE"))
          : connection.status();
  if (!dropped.ok()) {
    std::fprintf(stderr, "remex-bench: cannot drop schema %s: %s\n",
                 name_.c_str(), std::string(dropped.message()).c_str());
  }
}

absl::StatusOr<std::string> DescribeDatabase(const std::string& url) {
  absl::StatusOr<std::unique_ptr<Connection>> connection = Connect(url);
  if (!connection.ok()) return connection.status();
  absl::StatusOr<Result> rows =
      (*connection)
          ->Exec(
              "SELECT current_setting('server_version'),"
              " current_setting('synchronous_commit'), "
              "current_setting('fsync'),"
              " current_setting('wal_sync_method'), "
              "current_setting('commit_delay')");
  if (!rows.ok()) return rows.status();
  return absl::StrCat("PostgreSQL ", rows->Get(0, 0), ", synchronous_commit ",
                      rows->Get(0, 1), ", fsync ", rows->Get(0, 2),
                      ", wal_sync_method ", rows->Get(0, 3), ", commit_delay ",
                      rows->Get(0, 4));
}

// ------------------------------------------------------------ BarePostgres

struct BarePostgres::Impl {
  std::string url;
  std::unique_ptr<Connection> connection;
  std::string insert = InsertStatement();
  std::string update = UpdateStatement();
  int64_t next_id = 0;

  std::vector<std::string> NewIds(int64_t n) {
    std::vector<std::string> ids;
    ids.reserve(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      // 21 characters, as the server's ids.
      ids.push_back(absl::StrFormat("bench%016d", next_id++));
    }
    return ids;
  }
  absl::Status Insert(const std::vector<std::string>& ids) {
    absl::StatusOr<Result> rows = connection->Exec(insert, InsertParams(ids));
    if (!rows.ok()) return rows.status();
    // One row per task, and one for the notifications.
    if (rows->rows() != static_cast<int>(ids.size()) + 1) {
      return absl::InternalError(
          absl::StrCat("inserted ", rows->rows() - 1, " rows of ", ids.size()));
    }
    return absl::OkStatus();
  }
  absl::Status End(const std::vector<std::string>& ids) {
    return connection->Run(update, EndParams(ids));
  }
};

BarePostgres::BarePostgres(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
BarePostgres::~BarePostgres() = default;

absl::StatusOr<std::unique_ptr<BarePostgres>> BarePostgres::Open(
    const std::string& schema_url) {
  auto impl = std::make_unique<Impl>();
  impl->url = schema_url;
  absl::StatusOr<std::unique_ptr<Connection>> connection = Connect(schema_url);
  if (!connection.ok()) return connection.status();
  impl->connection = *std::move(connection);
  if (absl::Status status = store::internal::Migrate(*impl->connection);
      !status.ok()) {
    return status;
  }
  if (absl::Status status =
          impl->connection->Run("SET synchronous_commit = on");
      !status.ok()) {
    return status;
  }
  return std::unique_ptr<BarePostgres>(new BarePostgres(std::move(impl)));
}

absl::StatusOr<std::vector<double>> BarePostgres::RoundTrips(int64_t warmup,
                                                             int64_t samples,
                                                             bool with_end) {
  std::vector<double> micros;
  micros.reserve(static_cast<size_t>(samples));
  for (int64_t i = 0; i < warmup + samples; ++i) {
    const int64_t start = NowNanos();
    const std::vector<std::string> ids = impl_->NewIds(1);
    if (absl::Status status = impl_->Insert(ids); !status.ok()) return status;
    if (with_end) {
      if (absl::Status status = impl_->End(ids); !status.ok()) return status;
    }
    if (i >= warmup) micros.push_back((NowNanos() - start) / 1e3);
  }
  return micros;
}

absl::StatusOr<double> BarePostgres::Throughput(int64_t tasks, int64_t window,
                                                bool inserts_only) {
  Connection& connection = *impl_->connection;
  const int64_t start = NowNanos();
  if (inserts_only) {
    const int64_t per_commit = std::min(window, kStoreMaxBatch);
    for (int64_t done = 0; done < tasks; done += per_commit) {
      if (absl::Status status =
              impl_->Insert(impl_->NewIds(std::min(per_commit, tasks - done)));
          !status.ok()) {
        return status;
      }
    }
    return (NowNanos() - start) / 1e9;
  }
  // Tasks whose insert committed in the previous transaction: they end in
  // this one. The rest of the window is free for new tasks, up to half of
  // it at once (the steady state of a window where every task waits for
  // two commits) and within the store's batch limit.
  std::vector<std::string> inserted;
  int64_t started = 0;
  int64_t ended = 0;
  while (ended < tasks) {
    const int64_t room = std::min(
        {window - static_cast<int64_t>(inserted.size()), (window + 1) / 2,
         kStoreMaxBatch - static_cast<int64_t>(inserted.size()),
         tasks - started});
    std::vector<std::string> fresh = impl_->NewIds(std::max<int64_t>(0, room));
    started += static_cast<int64_t>(fresh.size());
    const bool both = !fresh.empty() && !inserted.empty();
    if (both) {
      if (absl::Status status = connection.Run("BEGIN"); !status.ok()) {
        return status;
      }
    }
    // Inserts first, as the store does (an end may be of a task inserted
    // in the same batch).
    if (!fresh.empty()) {
      if (absl::Status status = impl_->Insert(fresh); !status.ok()) {
        return status;
      }
    }
    if (!inserted.empty()) {
      if (absl::Status status = impl_->End(inserted); !status.ok()) {
        return status;
      }
    }
    if (both) {
      if (absl::Status status = connection.Run("COMMIT"); !status.ok()) {
        return status;
      }
    }
    ended += static_cast<int64_t>(inserted.size());
    inserted = std::move(fresh);
  }
  return (NowNanos() - start) / 1e9;
}

namespace {

// libpq's message for a failed call on `conn`, as a Status.
absl::Status PqError(absl::string_view what, PGconn* conn) {
  return absl::InternalError(absl::StrCat(
      what, ": ", absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn))));
}

// Reads the results of `queries` pipelined statements and their sync.
absl::Status ReadPipeline(PGconn* conn, int64_t queries) {
  for (int64_t i = 0; i < queries; ++i) {
    PGresult* result = PQgetResult(conn);
    const ExecStatusType status = PQresultStatus(result);
    PQclear(result);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
      return PqError("pipelined insert", conn);
    }
    PQclear(PQgetResult(conn));  // the NULL that ends each statement
  }
  PGresult* sync = PQgetResult(conn);
  const bool synced = PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
  PQclear(sync);
  return synced ? absl::OkStatus() : PqError("pipeline sync", conn);
}

}  // namespace

absl::StatusOr<double> BarePostgres::PipelinedInserts(int64_t tasks,
                                                      int64_t per_commit) {
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(
      PQconnectdb(impl_->url.c_str()), &PQfinish);
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return PqError("connect", conn.get());
  }
  PQclear(PQexec(conn.get(), "SET synchronous_commit = on"));
  // The columns and encodings of the store's insert, one row.
  const std::string insert = absl::StrCat(
      "INSERT INTO remex_tasks (id, function, pool, owner, state, priority,"
      " attempt, max_attempts, cancel_requested, created_at,"
      " queue_timeout_us, run_timeout_us, ttl_us) VALUES ($1, $2, $3, $4,"
      " $5::int2, $6::int, $7::int, $8::int, $9::bool, ",
      store::internal::Timestamp("$10::int8"),
      ", $11::int8, $12::int8, $13::int8)"
      " ON CONFLICT (id) DO NOTHING RETURNING id, list_position");
  PGresult* prepared =
      PQprepare(conn.get(), "insert", insert.c_str(), 13, nullptr);
  const bool ok = PQresultStatus(prepared) == PGRES_COMMAND_OK;
  PQclear(prepared);
  if (!ok) return PqError("prepare", conn.get());
  if (PQenterPipelineMode(conn.get()) != 1) {
    return PqError("pipeline mode", conn.get());
  }
  const int64_t start = NowNanos();
  for (int64_t done = 0; done < tasks; done += per_commit) {
    const std::vector<std::string> ids =
        impl_->NewIds(std::min(per_commit, tasks - done));
    const std::string now = absl::StrCat(absl::ToUnixMicros(absl::Now()));
    for (const std::string& id : ids) {
      const char* values[13] = {
          id.c_str(), "echo", "default",   "",      "1",     "0", "0",
          "1",        "f",    now.c_str(), nullptr, nullptr, "0"};
      if (PQsendQueryPrepared(conn.get(), "insert", 13, values, nullptr,
                              nullptr, 0) != 1) {
        return PqError("send", conn.get());
      }
    }
    if (PQpipelineSync(conn.get()) != 1) return PqError("sync", conn.get());
    if (absl::Status status =
            ReadPipeline(conn.get(), static_cast<int64_t>(ids.size()));
        !status.ok()) {
      return status;
    }
  }
  return (NowNanos() - start) / 1e9;
}

// ------------------------------------------------------------ TableSampler

struct TableSampler::Impl {
  std::unique_ptr<Connection> connection;
  std::string schema;
};

TableSampler::TableSampler(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
TableSampler::~TableSampler() = default;

absl::StatusOr<std::unique_ptr<TableSampler>> TableSampler::Open(
    const std::string& schema_url, const std::string& schema) {
  auto impl = std::make_unique<Impl>();
  absl::StatusOr<std::unique_ptr<Connection>> connection = Connect(schema_url);
  if (!connection.ok()) return connection.status();
  impl->connection = *std::move(connection);
  impl->schema = schema;
  return std::unique_ptr<TableSampler>(new TableSampler(std::move(impl)));
}

absl::StatusOr<std::vector<TableStats>> TableSampler::Sample() {
  // A fresh snapshot of the statistics each time (they are cached for the
  // transaction otherwise, and this connection never ends one explicitly).
  if (absl::Status status =
          impl_->connection->Run("SELECT pg_stat_clear_snapshot()");
      !status.ok()) {
    return status;
  }
  absl::StatusOr<Result> rows = impl_->connection->Exec(
      "SELECT relname, pg_total_relation_size(relid), n_live_tup,"
      " n_dead_tup, autovacuum_count,"
      " coalesce(extract(epoch FROM now() - last_autovacuum)::float8, -1)"
      " FROM pg_stat_user_tables WHERE schemaname = $1"
      " AND relname IN ('remex_tasks', 'remex_task_inputs',"
      " 'remex_task_results')",
      {impl_->schema});
  if (!rows.ok()) return rows.status();
  std::vector<TableStats> stats;
  for (const char* table :
       {"remex_tasks", "remex_task_inputs", "remex_task_results"}) {
    TableStats one;
    one.table = table;
    for (int row = 0; row < rows->rows(); ++row) {
      if (rows->Get(row, 0) != table) continue;
      one.total_bytes = rows->GetInt(row, 1);
      one.live_tuples = rows->GetInt(row, 2);
      one.dead_tuples = rows->GetInt(row, 3);
      one.autovacuums = rows->GetInt(row, 4);
      double age = -1;
      if (absl::SimpleAtod(rows->Get(row, 5), &age)) {
        one.last_autovacuum_age_s = age;
      }
    }
    stats.push_back(std::move(one));
  }
  return stats;
}

}  // namespace remex::bench
