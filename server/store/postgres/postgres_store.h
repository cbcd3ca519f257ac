// PostgresStore: the durable Store (design.md, "Stores"), on libpq.
//
// Tasks live in three tables (server/store/postgres/schema.cc): the narrow,
// often-updated remex_tasks row, the insert-only inputs and the insert-only
// results. One writer thread owns one connection and commits what is
// pending in one transaction (group commit: a multi-row statement per kind
// of write); a callback thread answers each committed batch while the
// writer commits the next; `readers` threads with a connection each answer
// Get, List, Erase and cancels of tasks held elsewhere; a maintenance
// thread deletes expired tasks, writes this replica's heartbeat and
// re-queues the tasks of replicas whose lease ran out; a signal thread
// LISTENs for the other replicas' signals (ends, cancels, unclaimed work)
// and claims queued tasks for this replica's free slots.
//
// Replicas signal each other with NOTIFY on one channel (statements.h),
// sent by the statement that commits what they announce (so a signal is
// never heard before its cause is visible), at most once per group commit
// and kind: a transaction that NOTIFYs takes a database-wide lock at
// commit, which serializes such commits.
#ifndef REMEX_SERVER_STORE_POSTGRES_POSTGRES_STORE_H_
#define REMEX_SERVER_STORE_POSTGRES_POSTGRES_STORE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/executor/store.h"
#include "server/executor/task.h"
#include "server/executor/task_query.h"

namespace remex::store {

namespace internal {
class Connection;
class Result;
}  // namespace internal

struct PostgresStoreOptions {
  // Anything libpq accepts (a postgresql:// URI or key=value pairs).
  std::string url;
  // Written on the rows of the tasks this replica runs, and as its
  // heartbeat's name.
  std::string replica_name;
  // Told of commits, errors and reconnects. Not owned; may be null; must
  // outlive the store.
  executor::StoreObserver* observer = nullptr;
  // Task writes (inserts and updates) per transaction, at most.
  size_t max_batch = 1024;
  // Connections (and threads) answering Get, List and Erase.
  int readers = 2;
  // How often expired tasks are deleted, and how many per transaction.
  absl::Duration retention_interval = absl::Seconds(1);
  int retention_batch = 1000;
  absl::Duration connect_timeout = absl::Seconds(5);
  // How often this replica's heartbeat is written.
  absl::Duration heartbeat_interval = absl::Seconds(2);
  // A replica whose heartbeat is older than this is lost: its tasks are
  // queued again (or end WORKER_LOST when their attempts are spent).
  absl::Duration lease = absl::Seconds(10);
  // Retention of tasks ended here in SQL (a cancel, a lost replica) when
  // the task sets no ttl: the server's default.
  absl::Duration default_ttl = absl::Minutes(10);
  // How often the signal thread claims without having heard of work (in
  // case a signal was missed).
  absl::Duration claim_poll = absl::Seconds(1);
  // How long the destructor goes on committing what is pending.
  absl::Duration drain_timeout = absl::Seconds(5);
};

// Thread-safe (see executor::Store). Owns its connections and threads; the
// destructor commits what is pending (for drain_timeout at most), then
// fails the inserts still pending with UNAVAILABLE and drops the updates
// (logged; their callbacks are destroyed without running: they were not
// committed).
//
// When the database goes away (a statement fails or the connection is
// lost), the store cannot commit until the writer reconnects (it retries
// every 100 ms, doubling to 2 s): inserts then fail at once with
// UNAVAILABLE, updates wait and are committed after the reconnect, reads
// fail with UNAVAILABLE.
//
// A batch whose connection was lost is first tried once more on a new
// connection (a database restarted while the store idled costs no
// submit); if the loss came when it may have committed, the new
// connection first asks whether its rows are there (then it did, and its
// inserts succeed). Only when that fails too is the store down: the
// batch's inserts fail with UNAVAILABLE (their callers must never hear OK
// twice, nor OK for a task not stored) and, if they may have committed,
// their rows are deleted first thing after the reconnect, so that an
// UNAVAILABLE insert is never left stored. Its updates are kept, in
// order, and committed after the reconnect.
class PostgresStore final : public executor::Store {
 public:
  // Connects, applies the migrations under an advisory lock, refuses a
  // schema newer than this build knows, and starts the threads. Errors are
  // one line naming the URL without its password.
  static absl::StatusOr<std::unique_ptr<PostgresStore>> Open(
      PostgresStoreOptions options);

  PostgresStore(const PostgresStore&) = delete;
  PostgresStore& operator=(const PostgresStore&) = delete;
  ~PostgresStore() override;

  void Insert(executor::TaskSnapshot task, bool run_here,
              InsertDone done) override;
  void Update(executor::TaskSnapshot task, absl::Time expire_at, bool release,
              UpdateDone done) override;
  void RequestCancel(std::string id, executor::Visibility visibility,
                     GetDone done) override;
  void Erase(std::string id, executor::Visibility visibility,
             EraseDone done) override;
  void Get(std::string id, executor::Visibility visibility,
           GetDone done) override;
  void List(executor::ListQuery query, executor::Visibility visibility,
            ListDone done) override;
  absl::StatusOr<std::vector<executor::TaskSnapshot>> LoadUnfinished() override;
  void Attach(executor::StoreRunner* runner) override
      ABSL_LOCKS_EXCLUDED(runner_mu_, signal_mu_);
  void OnSlotFreed(const std::string& pool) override
      ABSL_LOCKS_EXCLUDED(signal_mu_);
  bool Shared() const override;
  void ListenForEnds(bool on) override;
  bool CanCommit() const override;

  // One line for the server's log: the URL without its password, the
  // schema version and the replica's name.
  std::string Describe() const;

 private:
  struct Write {
    executor::TaskSnapshot task;
    bool insert = false;
    bool run_here = true;  // inserts
    bool release = false;  // updates
    absl::Time expire_at;  // updates
    InsertDone insert_done;
    UpdateDone update_done;
    absl::Time enqueued;
  };
  struct PendingGet {
    std::string id;
    executor::Visibility visibility;
    GetDone done;
  };
  // A read other than Get, run by a reader on its connection (null when the
  // reader cannot connect: the read then fails with `status`).
  using Read =
      absl::AnyInvocable<void(internal::Connection*, const absl::Status&)>;

  PostgresStore(PostgresStoreOptions options,
                std::unique_ptr<internal::Connection> writer);

  // Threads.
  void WriterLoop();
  void ReaderLoop(int index);
  void MaintenanceLoop();
  void CallbackLoop();
  void SignalLoop();

  // The writer's parts. Commits `batch` in one transaction; on success
  // fills `positions` (by index in `batch`, inserts only).
  absl::Status CommitBatch(std::vector<Write>& batch,
                           std::vector<uint64_t>& positions,
                           bool& maybe_committed);
  // After a failure: marks the store unable to commit and fails the
  // pending inserts.
  void LoseDatabase(const absl::Status& error) ABSL_LOCKS_EXCLUDED(mu_);
  // Reconnects the writer (with backoff) until it succeeds or the store
  // stops; then deletes the rows of inserts that failed at COMMIT.
  void Reconnect() ABSL_LOCKS_EXCLUDED(mu_);
  // Tells the observer, if any, that `operation` failed.
  void ReportError(absl::string_view operation);
  // Runs `callback` on the callback thread (for answers given at once:
  // callbacks never run on the caller's thread).
  void Defer(absl::AnyInvocable<void()> callback) ABSL_LOCKS_EXCLUDED(mu_);

  // The readers' parts.
  void RunGets(internal::Connection& connection, std::vector<PendingGet>& gets);
  // A reader's connection, checked after idling and reconnected if lost
  // (at most twice a second).
  absl::Status EnsureReader(std::unique_ptr<internal::Connection>& connection,
                            absl::Time& last_attempt, absl::Time& last_used);

  // The maintenance thread's parts.
  absl::Status DeleteExpired(internal::Connection& connection);
  // Writes the heartbeat and counts the live replicas.
  absl::Status Heartbeat(internal::Connection& connection);
  // Re-queues (or ends) the tasks of replicas whose lease ran out.
  absl::Status RecoverLostReplicas(internal::Connection& connection);

  // The signal thread's parts. Claims queued tasks for the free slots of
  // the pools that may have some waiting, and runs them.
  void Claim(internal::Connection& connection) ABSL_LOCKS_EXCLUDED(runner_mu_);
  // Acts on NOTIFY payloads.
  void HandleSignals(const std::vector<std::string>& payloads)
      ABSL_LOCKS_EXCLUDED(runner_mu_, signal_mu_);
  // LISTENs to the ends (or stops, a while after they are no longer
  // wanted).
  void ListenToEnds(internal::Connection& connection, bool& listening,
                    absl::Time& unwanted_since) ABSL_LOCKS_EXCLUDED(runner_mu_);
  // Every pool may have queued tasks waiting (after a missed signal).
  void MarkBacklog() ABSL_LOCKS_EXCLUDED(signal_mu_);
  // Wakes the signal thread.
  void WakeSignals();

  // Runs the callbacks of a committed `batch`: inserts get their
  // positions (0: ALREADY_EXISTS), updates their done.
  static void AnswerCommitted(std::vector<Write>& batch,
                              const std::vector<uint64_t>& positions);
  // Fills `positions` (by index in `batch`, inserts only) from `rows` of
  // (id, list_position); 0 for an insert whose id is not among them.
  static void FillPositions(const internal::Result& rows,
                            const std::vector<Write>& batch,
                            std::vector<uint64_t>& positions);
  // Whether the batch's transaction committed after all, after it failed
  // in doubt, asked on the new connection: fills `positions` if it did.
  absl::StatusOr<bool> FoundCommitted(const std::vector<Write>& batch,
                                      std::vector<uint64_t>& positions);

  const PostgresStoreOptions options_;
  // Only the writer thread uses it (and the constructor, before it starts).
  std::unique_ptr<internal::Connection> writer_connection_;

  std::atomic<bool> can_commit_{true};
  // Replicas whose heartbeat is within the lease, this one included.
  std::atomic<int64_t> live_replicas_{1};
  // An eventfd that wakes the signal thread.
  int wake_fd_ = -1;

  // Held while the signal thread calls runner_ (and claims for it), so
  // that Attach(nullptr) returns only once no call is in progress.
  absl::Mutex runner_mu_ ABSL_ACQUIRED_BEFORE(signal_mu_);
  executor::StoreRunner* runner_ ABSL_GUARDED_BY(runner_mu_) = nullptr;

  absl::Mutex signal_mu_;
  // Pools that may have unclaimed queued tasks; all of them when
  // backlog_all_.
  absl::flat_hash_set<std::string> backlog_ ABSL_GUARDED_BY(signal_mu_);
  bool backlog_all_ ABSL_GUARDED_BY(signal_mu_) = true;
  // !backlog_.empty() || backlog_all_, read without the lock.
  std::atomic<bool> any_backlog_{true};
  // Set to make the signal thread claim.
  std::atomic<bool> claim_wanted_{true};
  // Whether the executor waits for tasks held elsewhere (ListenForEnds).
  std::atomic<bool> ends_wanted_{false};
  // Whether any replica listens to the ends (read at each heartbeat).
  std::atomic<bool> ends_heard_{false};
  // Only the signal thread uses it: when to look the waited tasks up once
  // more after it began to listen to ends.
  absl::Time recheck_ends_at_ = absl::InfiniteFuture();

  mutable absl::Mutex mu_;
  std::deque<Write> writes_ ABSL_GUARDED_BY(mu_);
  // Ids of inserts whose transaction failed at COMMIT: deleted after the
  // reconnect (their callers were told UNAVAILABLE).
  std::vector<std::string> doubtful_inserts_ ABSL_GUARDED_BY(mu_);
  std::deque<PendingGet> gets_ ABSL_GUARDED_BY(mu_);
  std::deque<Read> reads_ ABSL_GUARDED_BY(mu_);
  std::deque<absl::AnyInvocable<void()>> deferred_ ABSL_GUARDED_BY(mu_);
  // Set by the destructor: new writes fail, the threads finish.
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Past it, the writer gives up on what is pending.
  absl::Time drain_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool writer_done_ ABSL_GUARDED_BY(mu_) = false;
  // Set by the writer when it stopped with every write committed.
  bool all_committed_ ABSL_GUARDED_BY(mu_) = false;
  // Set once the other threads are joined: the callback thread finishes.
  bool callbacks_stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Why the store cannot commit, for the inserts it refuses.
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  // Each thread kind waits on its own: writes_, gets_/reads_, deferred_,
  // and stopping_ (everyone).
  absl::CondVar writer_cv_;
  absl::CondVar reader_cv_;
  absl::CondVar callback_cv_;
  absl::CondVar stop_cv_;

  std::thread writer_;
  std::vector<std::thread> readers_;
  std::thread maintenance_;
  std::thread callbacks_;
  std::thread signals_;
};

}  // namespace remex::store

#endif  // REMEX_SERVER_STORE_POSTGRES_POSTGRES_STORE_H_
