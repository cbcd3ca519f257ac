// Where tasks live beyond the executor's memory: the Store interface that a
// durable store (the PostgreSQL store, server/store/postgres/) implements.
//
// The memory store is the executor's own TaskTable: an executor without a
// Store (ExecutorOptions::store null, `--store memory`) answers every call
// inline from its table and pays nothing for this interface. With a Store,
// the table holds the tasks this process accepted or recovered (its working
// set, and a cache of finished ones); the Store holds every task, and the
// executor
//  - answers Submit only once the task's row is committed (Insert),
//  - commits a task's end before any waiter hears of it (Update),
//  - asks the Store for what its table does not hold (Get, List, Erase),
//  - at start re-queues what the Store holds unfinished for this replica
//    (LoadUnfinished),
//  - and, when other replicas share the Store, runs the queued tasks it
//    claims for its free slots and hears of ends and cancels from the
//    others (StoreRunner).
#ifndef REMEX_SERVER_EXECUTOR_STORE_H_
#define REMEX_SERVER_EXECUTOR_STORE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/executor/task.h"
#include "server/executor/task_query.h"

namespace remex::executor {

// What a store tells an observer (the metrics). Implementations must be
// thread-safe and must not block: the calls come from the store's threads.
class StoreObserver {
 public:
  virtual ~StoreObserver() = default;
  // A transaction of `tasks` task writes (inserts and updates) committed
  // `latency` after the first of them was handed to the store.
  virtual void OnCommit(size_t tasks, absl::Duration latency) = 0;
  // A statement or a connection failed; `operation` names what was tried
  // ("commit", "read", "connect", "retention").
  virtual void OnDatabaseError(absl::string_view operation) = 0;
  // The store connected again after losing its database.
  virtual void OnReconnect() = 0;
  // Tasks found running at start (or on a lost replica) and queued again.
  virtual void OnRequeued(int64_t tasks) = 0;
  // A queued task became runnable `lag` after its row was committed.
  virtual void OnClaimLag(absl::Duration lag) = 0;
  // Whether the store can commit now (false while its database is away).
  virtual void OnCanCommit(bool can_commit) = 0;
  // Replicas whose heartbeat is within the lease (this one included).
  virtual void OnLiveReplicas(int64_t replicas) = 0;
  // A replica's heartbeat was `silent_for` old (older than the lease): its
  // running tasks were queued again (counted by OnRequeued) or ended
  // WORKER_LOST (`lost_tasks`).
  virtual void OnReplicaLost(absl::Duration silent_for, int64_t lost_tasks) = 0;
};

// What a store shared by replicas asks of the executor of one of them.
// Implemented by the executor; called from the store's threads (one at a
// time), never while the store holds a lock. Must not block.
class StoreRunner {
 public:
  virtual ~StoreRunner() = default;
  // Per pool name, how many more tasks it could start now (idle workers
  // less the tasks queued for them); pools without room may be left out.
  virtual std::vector<std::pair<std::string, int>> FreeSlots() = 0;
  // QUEUED tasks this replica claimed (their rows now name it), to run as
  // if accepted here.
  virtual void RunClaimed(std::vector<TaskSnapshot> tasks) = 0;
  // Tasks that ended (committed), on any replica: wake who waits for them
  // here. An empty `ids`: notifications may have been missed (the store
  // reconnected), look at every task waited for.
  virtual void OnEnded(std::vector<std::string> ids) = 0;
  // Another replica asked to cancel task `id`, which this replica runs.
  virtual void OnCancelRequested(const std::string& id) = 0;
};

// A durable home for tasks.
//
// Thread-safe: every method may be called from any thread and returns
// without waiting on the database (except LoadUnfinished, called once at
// start). Callbacks run exactly once, on one of the store's threads, never
// on the caller's; they must be quick and must not block, and may call the
// store's methods (which only enqueue: the executor writes a task's next
// state from the callback of its previous one). Writes of one task are
// committed in the order they were made. The store outlives every callback it
// holds: its destructor runs (or fails with UNAVAILABLE) what is still pending
// before it returns.
class Store {
 public:
  virtual ~Store() = default;

  // Gets the list position of a committed task, or UNAVAILABLE when the
  // store cannot commit now (the task was not stored).
  using InsertDone = absl::AnyInvocable<void(absl::StatusOr<uint64_t>)>;
  using UpdateDone = absl::AnyInvocable<void()>;
  using EraseDone = absl::AnyInvocable<void(absl::Status)>;
  using GetDone = absl::AnyInvocable<void(absl::StatusOr<TaskSnapshot>)>;
  using ListDone = absl::AnyInvocable<void(absl::StatusOr<ListPage>)>;

  // Stores a task the executor just accepted: `task` is QUEUED, attempt 0,
  // with its id, spec (owner included) and created_at; its list_position is
  // ignored. With `run_here` the task is this replica's to run; without,
  // any replica may claim it (StoreRunner::RunClaimed). Tasks inserted
  // together are committed in one transaction (group commit). `done` gets
  // the task's list position, assigned by the store in commit order, or
  // UNAVAILABLE at once while the store cannot commit.
  virtual void Insert(TaskSnapshot task, bool run_here, InsertDone done) = 0;

  // Records the new state of a task this replica runs: it started
  // (RUNNING, attempt, started_at), was queued again (QUEUED) or ended
  // (terminal state, finished_at, outcome; kept until `expire_at`, ignored
  // unless terminal). With `release` (QUEUED only) this replica gives the
  // task up: any replica may claim it. Never fails: retried, across
  // reconnects, until committed (or dropped, if another replica took the
  // task over when this one's lease ran out); `done` (may be empty) runs
  // then.
  virtual void Update(TaskSnapshot task, absl::Time expire_at, bool release,
                      UpdateDone done) = 0;

  // Asks for the end of task `id`, which this replica does not hold, if
  // `visibility` sees it: a task no replica has claimed ends CANCELLED at
  // once; the replica that holds one is told to cancel it. `done` gets the
  // task as stored then (still RUNNING, cancel_requested, in the second
  // case), or NOT_FOUND.
  virtual void RequestCancel(std::string id, Visibility visibility,
                             GetDone done) = 0;

  // Deletes task `id` if `visibility` sees it; NOT_FOUND if there is no
  // such task (or it is not seen), UNAVAILABLE while the store cannot
  // commit.
  virtual void Erase(std::string id, Visibility visibility, EraseDone done) = 0;

  // The stored task `id` if `visibility` sees it, else NOT_FOUND.
  virtual void Get(std::string id, Visibility visibility, GetDone done) = 0;

  // A page of the stored tasks `visibility` sees that match `query`, in
  // list order (as Executor::List, with page tokens made by ListPageToken;
  // INVALID_ARGUMENT for another token).
  virtual void List(ListQuery query, Visibility visibility, ListDone done) = 0;

  // The stored tasks this replica held when it stopped (QUEUED or RUNNING,
  // under its name), in list order. Called once, at start, before any
  // other method.
  virtual absl::StatusOr<std::vector<TaskSnapshot>> LoadUnfinished() = 0;

  // Starts claiming queued tasks for `runner`'s free slots and telling it
  // of ends and cancels; with nullptr, stops (a drain): no claim starts
  // once it returns. REQUIRES: `runner` outlives the store or a later
  // Attach(nullptr).
  virtual void Attach(StoreRunner* runner) = 0;
  // A slot of `pool` was freed: claim for it if work may be waiting.
  // Cheap: called at each task's end.
  virtual void OnSlotFreed(const std::string& pool) = 0;
  // Whether other replicas share the store now (their heartbeat is within
  // the lease): a replica alone keeps every task it accepts.
  virtual bool Shared() const = 0;
  // Whether the runner has callers waiting for tasks it does not hold: only
  // then is it told of the ends committed elsewhere (StoreRunner::OnEnded),
  // as hearing them costs the database. Turned on, the store first tells
  // it OnEnded({}) once it listens (so an end committed before is not
  // missed). Cheap, never blocks: may be called under the runner's locks.
  virtual void ListenForEnds(bool on) = 0;

  // False while the store cannot commit (its database is away): Insert
  // then fails at once.
  virtual bool CanCommit() const = 0;
};

}  // namespace remex::executor

#endif  // REMEX_SERVER_EXECUTOR_STORE_H_
