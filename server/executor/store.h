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
//  - and at start re-queues what the Store holds unfinished
//    (LoadUnfinished).
#ifndef REMEX_SERVER_EXECUTOR_STORE_H_
#define REMEX_SERVER_EXECUTOR_STORE_H_

#include <cstddef>
#include <cstdint>
#include <string>
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
  // ignored. Tasks inserted together are committed in one transaction
  // (group commit). `done` gets the task's list position, assigned by the
  // store in commit order, or UNAVAILABLE at once while the store cannot
  // commit.
  virtual void Insert(TaskSnapshot task, InsertDone done) = 0;

  // Records the new state of a stored task: it started (RUNNING, attempt,
  // started_at), was queued again (QUEUED) or ended (terminal state,
  // finished_at, outcome; kept until `expire_at`, ignored unless
  // terminal). Never fails: retried, across reconnects, until committed;
  // `done` (may be empty) runs then.
  virtual void Update(TaskSnapshot task, absl::Time expire_at,
                      UpdateDone done) = 0;

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

  // Every stored task that is not terminal, in list order. Called once, at
  // start, before any other method.
  virtual absl::StatusOr<std::vector<TaskSnapshot>> LoadUnfinished() = 0;

  // False while the store cannot commit (its database is away): Insert
  // then fails at once.
  virtual bool CanCommit() const = 0;
};

}  // namespace remex::executor

#endif  // REMEX_SERVER_EXECUTOR_STORE_H_
