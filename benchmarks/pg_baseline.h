// What remex-bench does with a PostgreSQL database: fresh schemas for each
// durable run, the bare-PostgreSQL baseline (the durable store's own insert
// and update statements, run by a plain libpq client), and the table
// statistics of the steady-load check. See BENCHMARKS.md, "Durable store".
#ifndef REMEX_BENCHMARKS_PG_BASELINE_H_
#define REMEX_BENCHMARKS_PG_BASELINE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace remex::bench {

// `url` (a postgresql:// URI or key=value pairs) with its search_path set
// to `schema`, so that remex's unqualified table names land there.
// INVALID_ARGUMENT if `url` already sets `options`.
absl::StatusOr<std::string> WithSearchPath(const std::string& url,
                                           const std::string& schema);

// A schema of its own (remex_bench_<pid>_<n>) in the database at `url`,
// created empty and dropped (CASCADE) by the destructor: every durable run
// starts from empty tables and leaves nothing behind, and remex tables the
// database may hold elsewhere are never touched. Thread-compatible.
class FreshSchema {
 public:
  static absl::StatusOr<std::unique_ptr<FreshSchema>> Create(
      const std::string& url);
  ~FreshSchema();
  FreshSchema(const FreshSchema&) = delete;
  FreshSchema& operator=(const FreshSchema&) = delete;

  const std::string& name() const { return name_; }
  // The database's URL with search_path = name(): what remex-server's
  // --store gets.
  const std::string& url() const { return schema_url_; }

 private:
  FreshSchema(std::string base_url, std::string name, std::string schema_url)
      : base_url_(std::move(base_url)),
        name_(std::move(name)),
        schema_url_(std::move(schema_url)) {}

  const std::string base_url_;
  const std::string name_;
  const std::string schema_url_;
};

// One line about the database: its version, and the settings that decide
// what a commit costs (synchronous_commit, fsync, wal_sync_method,
// commit_delay).
absl::StatusOr<std::string> DescribeDatabase(const std::string& url);

// A plain libpq client running the durable store's statements (the same
// text, prepared and with parameters encoded as the store encodes them) on
// the store's tables (created with the store's migrations) in `schema_url`,
// with synchronous_commit on. One connection; thread-compatible.
class BarePostgres {
 public:
  static absl::StatusOr<std::unique_ptr<BarePostgres>> Open(
      const std::string& schema_url);
  ~BarePostgres();
  BarePostgres(const BarePostgres&) = delete;
  BarePostgres& operator=(const BarePostgres&) = delete;

  // Sequential round trips, after `warmup` unmeasured ones; microseconds
  // each. A round trip is one task's insert (one row, its own transaction),
  // or with `with_end` that and then the task's end (the update statement,
  // one row, a second transaction): what a durable task costs at least.
  absl::StatusOr<std::vector<double>> RoundTrips(int64_t warmup,
                                                 int64_t samples,
                                                 bool with_end);

  // `tasks` tasks with `window` in flight, as the store's writer would
  // commit them (seconds). Each transaction holds the ends of the tasks
  // the previous one inserted and as many new tasks as the window and the
  // store's batch limit (1024 writes) leave room for: in a steady state
  // window/2 inserts and window/2 ends per commit, both statements in one
  // transaction as the store writes them. With `inserts_only`, each
  // transaction inserts `window` tasks (at most 1024) and nothing ends:
  // the ceiling of the insert alone.
  absl::StatusOr<double> Throughput(int64_t tasks, int64_t window,
                                    bool inserts_only);

  // The alternative the store did not take: `tasks` inserts of the same
  // rows, each its own prepared one-row INSERT, sent `per_commit` at a time
  // in libpq's pipeline mode (one implicit transaction per sync), on a
  // connection of its own (seconds).
  absl::StatusOr<double> PipelinedInserts(int64_t tasks, int64_t per_commit);

 private:
  struct Impl;
  explicit BarePostgres(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One remex table's size and tuples, from pg_total_relation_size and
// pg_stat_user_tables (whose counts lag by up to a second or so).
struct TableStats {
  std::string table;
  int64_t total_bytes = 0;
  int64_t live_tuples = 0;
  int64_t dead_tuples = 0;
  int64_t autovacuums = 0;
  // Seconds since the last autovacuum of the table; -1: none yet.
  double last_autovacuum_age_s = -1;
};

// Samples the remex tables of one schema. One connection; thread-compatible.
class TableSampler {
 public:
  static absl::StatusOr<std::unique_ptr<TableSampler>> Open(
      const std::string& schema_url, const std::string& schema);
  ~TableSampler();
  TableSampler(const TableSampler&) = delete;
  TableSampler& operator=(const TableSampler&) = delete;

  // remex_tasks, remex_task_inputs, remex_task_results, in that order.
  absl::StatusOr<std::vector<TableStats>> Sample();

 private:
  struct Impl;
  explicit TableSampler(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace remex::bench

#endif  // REMEX_BENCHMARKS_PG_BASELINE_H_
